"""Undefined figures: the reasons a figure has no value, and how such a figure is shown.

Why one module: a figure whose denominator is zero (0 of 0) is neither 1.0 nor 0.0 but undefined, and the terminal,
report, JSON, CSV and baseline all hold the same reason string (``"n/a (0 detections)"``) in its place. The
measuring code writes these reasons and the reporting code recognises them, so both read them from here.
"""

from __future__ import annotations

from typing import Any

NA_PREFIX = "n/a"
"""Every reason starts with it: a figure that is a string starting with ``"n/a"`` is undefined, not a number."""
NA_NO_DETECTIONS = "n/a (0 detections)"
"""Why precision is undefined: the candidate found no box (0 of 0). Shown as is (terminal, report, JSON, CSV,
baseline), never as 1.0 or 0.0."""
NA_NO_REFERENCE = "n/a (0 reference detections)"
"""Why recall, the count ratio and agreement mAP are undefined: the reference found no box to find."""
NA_NO_PREDICTIONS = "n/a (no predicted boxes on the val split: 0 of 0)"
"""How dataset precision reads when the validator scored no box (ultralytics reports 0.0)."""
NA_NO_LABELS = "n/a (no labelled boxes on the val split: 0 of 0)"
"""How dataset recall reads when the val split has no labelled box to find."""


def is_undefined(value: Any) -> bool:
    """An undefined figure as recorded: its reason, ``"n/a (...)"``."""
    return isinstance(value, str) and value.startswith(NA_PREFIX)


def defined(x: float | None) -> float | None:
    """A figure for JSON and gates: NaN (undefined, e.g. the reference found no boxes) becomes None."""
    return None if x is None or x != x else float(x)


def shown(value: Any, fmt: str) -> str:
    """A figure as text: numbers through ``fmt``, an undefined one as its reason (``"n/a (0 detections)"``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt.format(value)
    return str(value) if value is not None else "-"

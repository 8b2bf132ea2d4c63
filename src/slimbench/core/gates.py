"""A gate's verdict as one line: the text every limit check (suite thresholds, INT8 accuracy) fails with.

Kept in core so the config, the measurements and the suite's checks all word a broken limit the same way without
importing each other.
"""

from __future__ import annotations

import math
from typing import Literal


def violation(
    variant: str,
    label: str,
    value: float | None,
    limit: float | None,
    kind: Literal["max", "min"],
    fmt: str = "{:,.4g}",
    note: str = "",
    undefined: str | None = None,
) -> str | None:
    """One line such as ``"pruned: params 1,234,567 > max 1,200,000"`` when a limit is broken, else None.

    A limit of None is not gated. A value of None against a limit is a violation: ``undefined`` says why it has no
    value (``"n/a (0 detections)"``), else it reads "not measured".
    """
    if limit is None:
        return None
    tail = f" ({note})" if note else ""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{variant}: {label} {undefined or 'not measured'}, {kind} {fmt.format(limit)}{tail}"
    if kind == "max" and value > limit:
        return f"{variant}: {label} {fmt.format(value)} > max {fmt.format(limit)}{tail}"
    if kind == "min" and value < limit:
        return f"{variant}: {label} {fmt.format(value)} < min {fmt.format(limit)}{tail}"
    return None


def kept(
    variant: str,
    label: str,
    value: float,
    limit: float,
    kind: Literal["max", "min"],
    fmt: str = "{:,.4g}",
    note: str = "",
) -> str:
    """The line of a limit kept, for a pass that must not read as a plain one (the speed gate's close pass):
    ``"pruned: speed ratio 0.486 <= max 0.500 (close: ...)"``."""
    tail = f" ({note})" if note else ""
    sign = "<=" if kind == "max" else ">="
    return f"{variant}: {label} {fmt.format(value)} {sign} {kind} {fmt.format(limit)}{tail}"

"""The accuracy figures of a run as a small table for the terminal summary.

Why here and not in report/: the suite session (bench/) prints it through :meth:`Accuracy.summary_lines`, and bench/
sits below report/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized
from typing import Any


def accuracy_lines(
    accuracy: Mapping[str, Mapping[str, Any]], reference: str, conf: float, agreement_images: Callable[[], Sized]
) -> list[str]:
    """The recorded accuracy figures (variant -> its ``accuracy`` record) as a small table for the terminal summary
    ("" cells: not measured); ``reference`` is the reference variant's name, ``conf`` the suite's, and
    ``agreement_images`` lists the agreement images (called only when a dataset figure is shown)."""
    rows = [(n, a) for n, a in accuracy.items() if a]
    if not rows:
        return []
    first = next((a for _, a in rows if "data" in a), None)
    lines = []
    if first is not None:
        lines.append(
            f"accuracy: mAP on {first['data']}, {first['val_images']} images at {first['val_imgsz']}px "
            f"({first['device']}); agreement with {reference}'s boxes at conf "
            f"{conf} on {len(agreement_images())} image(s)"
        )
    else:
        lines.append(f"accuracy: agreement with {reference}'s boxes at conf {conf}")
    cols = [
        ("mAP50", "map50"),
        ("mAP50-95", "map50_95"),
        ("P", "precision"),
        ("R", "recall"),
        ("drop", "map50_95_drop"),
        ("agr mAP50", "agreement_map50"),
        ("agr R", "agreement_recall"),
        ("agr P", "agreement_precision"),
    ]
    if any("map50_95_nms_free" in a for _, a in rows):  # a one-to-one (NMS-free) head was validated too
        cols[2:2] = [("NF mAP50", "map50_nms_free"), ("NF 50-95", "map50_95_nms_free")]
        lines.append("NF: NMS-free, the one-to-one head's boxes without NMS")
    lines.append(f"{'variant':<16}" + "".join(f"{label:>10}" for label, _ in cols))
    for name, a in rows:
        cells = [a.get(key) for _, key in cols]
        text = "".join(
            f"{v:>10.3f}" if isinstance(v, float) else f"{'n/a':>10}" if isinstance(v, str) else f"{'':>10}"
            for v in cells
        )
        lines.append(f"{name:<16}{text}".rstrip())
    return lines

"""mAP50, mAP50-95, precision and recall of a model on a dataset's val split, by ultralytics' own validator.

Why a wrapper: the suite runs the validator once per variant and session, offline: no plots, no JSON, no font or
dataset download, scratch files in the suite's cache folder (never ``runs/`` in the user's working directory), and a
precision or recall whose denominator is zero reads undefined (None), not ultralytics' 0.0.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ultralytics import YOLO

    from slimbench.measure.datasets import Dataset, Names

VAL_BATCH = 16
"""Validator batch size (ultralytics' default); it does not change the figures."""


@contextlib.contextmanager
def _offline_dataset_check() -> Iterator[None]:
    """ultralytics' dataset check fetches a plot font from the internet when it is not cached; no plot is drawn
    here, so the check is skipped and validation never touches the network."""
    import ultralytics.data.utils as data_utils

    original = getattr(data_utils, "check_font", None)
    if original is None:
        yield
        return
    data_utils.check_font = lambda *a, **k: None
    try:
        yield
    finally:
        data_utils.check_font = original


def write_val_yaml(ds: Dataset, names: Names, out_dir: Path, limit: int | None = None) -> Path:
    """A self-contained YAML for the validator: absolute val paths, the model's names, ``train`` = val.

    Why not the user's file: it may lack ``train`` (the validator insists on one) or hold a ``download`` script,
    and smoke mode needs the first ``limit`` images only (a list file).
    """
    import yaml

    val: list[str] = [str(e) for e in ds.val]
    key = hashlib.sha256(json.dumps([val, names, limit, str(ds.yaml)]).encode()).hexdigest()[:16]
    folder = out_dir / key
    folder.mkdir(parents=True, exist_ok=True)
    if limit is not None:
        listing = folder / "val.txt"
        listing.write_text("".join(f"{p}\n" for p in ds.images[:limit]), encoding="utf-8")
        val = [str(listing)]
    spec = {"path": str(ds.root), "train": val, "val": val, "names": {int(k): v for k, v in names.items()}}
    target = folder / "data.yaml"
    target.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return target


def has_nms_free_head(model: YOLO) -> bool:
    """Whether the detector's head has one-to-one towers (YOLO26, YOLOv10-style end-to-end heads): those predict
    without NMS, and ultralytics validates them with ``nms=False`` (one-to-many with NMS otherwise)."""
    net = getattr(model, "model", model)
    layers = getattr(net, "model", None)
    head = layers[-1] if layers is not None and len(layers) else None
    return getattr(head, "one2one_cv2", None) is not None


def run_validator(
    model: YOLO,
    data: str | Path,
    imgsz: int,
    device: str = "cpu",
    workdir: Path | None = None,
    batch: int = VAL_BATCH,
    nms_free: bool = False,
) -> dict[str, Any]:
    """mAP50, mAP50-95, precision and recall of ``model`` on ``data``'s val split, by ultralytics' validator.

    Runs on a copy (the validator fuses the model in place), writes nothing outside ``workdir`` (a temp folder,
    removed afterwards) and never downloads. ``predictions`` counts the boxes the validator scored: with none,
    precision is undefined (0 of 0, None), where ultralytics reports 0.0; mAP and recall stay 0, which is what
    finding none of the labelled boxes is worth. ``labels`` counts the labelled boxes: with none, recall is
    undefined (None). ``nms_free``: through the one-to-one head without NMS (ultralytics' ``nms=False``; only for
    a model with that head, :func:`has_nms_free_head`), else ultralytics' default (the one-to-many head and NMS).
    """
    net = copy.deepcopy(model)
    parent = Path(workdir) if workdir is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    seen = {"predictions": 0, "labels": 0}

    def count_predictions(validator: Any) -> None:  # the stats are cleared once the metrics are computed
        stats = validator.metrics.stats
        seen["predictions"] = sum(len(c) for c in stats.get("conf", []))
        seen["labels"] = sum(len(c) for c in stats.get("target_cls", []))

    net.add_callback("on_val_batch_end", count_predictions)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=parent, prefix="val-") as tmp, _offline_dataset_check():
        m = net.val(
            data=str(data),
            imgsz=imgsz,
            batch=batch,
            device=device,
            plots=False,
            save_json=False,
            save_txt=False,
            verbose=False,
            project=tmp,
            name="val",
            exist_ok=True,
            **({"nms": False} if nms_free else {}),
        )
    return {
        "map50": float(m.box.map50),
        "map50_95": float(m.box.map),
        "precision": float(m.box.mp) if seen["predictions"] else None,
        "recall": float(m.box.mr) if seen["labels"] else None,
        "predictions": seen["predictions"],
        "labels": seen["labels"],
        "seconds": round(time.perf_counter() - t0, 2),
    }

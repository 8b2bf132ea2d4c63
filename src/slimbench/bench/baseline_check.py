"""A variant's baseline entry measured from the session's (cached) figures, and its check against the gate.

The one part of the baseline that reads the run's :class:`~slimbench.bench.session.SuiteSession`: the session holds
the gate (:mod:`slimbench.bench.baseline_gate`) but never imports this module, so no import circle forms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slimbench.bench.baseline_store import finite, undefined
from slimbench.core.errors import SlimbenchError
from slimbench.core.metric_specs import DATASET_ACCURACY_KEYS

if TYPE_CHECKING:
    from slimbench.bench.baseline_gate import Outcome
    from slimbench.bench.figures import VariantFigures
    from slimbench.bench.session import SuiteSession

ACCURACY_KEYS = (*DATASET_ACCURACY_KEYS, "agreement_map50", "agreement_recall", "agreement_precision")
"""Keys of the session's ``accuracy`` figures (``figures[name].accuracy[key]``) kept here."""


def measure(session: SuiteSession, name: str) -> dict[str, Any]:
    """This run's baseline entry for a variant: its settings and metrics, from the session's (cached) figures."""
    from slimbench.model.checkpoint import sha256_of
    from slimbench.model.detections import agreement

    s = session.settings
    v = session.config.variants[name]
    st = session.static(name)
    metrics: dict[str, float] = {
        "params": st["params"],
        "gflops": st["gflops"],
        "file_size_mb": st["file_size_mb"],
        "normalized_size_mb": st["normalized_size_mb"],
        "total_channels": st["total_channels"],
        "zeroed_channels": st["total_zeroed_channels"],
        "channels_removed_pct": st["channels_removed_pct"],
    }
    ref = session.reference.name
    for image in session.image_paths:
        dets = session.detections(name, image)
        metrics[f"detections[{image}]"] = dets.count
        if not v.is_reference:
            agr = agreement(session.detections(ref, image), dets, s.match_iou)
            metrics[f"agreement_recall[{image}]"] = agr.shown("recall")
            metrics[f"agreement_precision[{image}]"] = agr.shown("precision")
    deployment = session.figures[name].deployment
    for key in ("onnx_params", "onnx_weights_mb"):
        if finite(deployment.get(key)):
            metrics[key] = deployment[key]
    # smoke mode validates on a few images: the code path, not a figure to compare or store
    accuracy = {} if session.smoke else session.figures[name].accuracy
    for key in ACCURACY_KEYS:
        if finite(accuracy.get(key)):
            metrics[key] = float(accuracy[key])
        elif undefined(accuracy.get(key)):
            metrics[key] = accuracy[key]
    settings: dict[str, Any] = {
        "imgsz": s.imgsz,
        "conf": s.conf,
        "iou": s.iou,
        "match_iou": s.match_iou,
        "reference": ref,
        "images": {image: sha256_of(p) for image, p in session.image_paths.items()},
    }
    if "data" in accuracy:  # what the mAP figures depend on: the dataset, how many val images, at which size
        settings["accuracy_data"] = (
            f"{accuracy.get('data')}; {accuracy.get('val_images')} images at {accuracy.get('val_imgsz')}px"
        )
    if "agreement_images" in accuracy:
        settings["agreement_data"] = f"{accuracy.get('agreement_images')} agreement images"
    metrics.update(_matrix_metrics(session.figures[name], settings))
    return {"checkpoint_sha256": sha256_of(v.path), "settings": settings, "metrics": metrics}


def _matrix_metrics(figures: VariantFigures, settings: dict[str, Any]) -> dict[str, float]:
    """The deployment matrix's deterministic figures: the INT8 file's weights, and each cell's agreement and mAP
    (cell ``ort-int8``, ``ov-fp32``...). INT8 figures depend on the calibration set, added to ``settings``."""
    out: dict[str, float] = {}
    int8 = figures.int8
    for key in ("int8_weights_mb", "int8_convs"):
        if finite(int8.get(key)):
            out[key] = float(int8[key])
    if int8.get("calibration_sha256"):
        settings["calibration"] = int8["calibration_sha256"]
    for cell, acc in figures.matrix_accuracy.items():
        for family, key in (("cell_agreement_map50", "agreement_map50"), ("cell_map50_95", "map50_95")):
            if finite(acc.get(key)):
                out[f"{family}[{cell}]"] = float(acc[key])
    return out


def check_variant(session: SuiteSession, name: str) -> Outcome:
    """Measure a variant, compare it with the stored baseline and record the outcome in the session's figures."""
    gate = session.baseline
    if gate is None:
        raise SlimbenchError("no baseline gate in this session (the suite plugin sets one up)")
    outcome = gate.check(name, measure(session, name))
    for key, value in outcome.as_dict().items():
        session.figures[name].baseline[key] = value
    return outcome

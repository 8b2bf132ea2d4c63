"""Shared fixtures for the unit and integration tests: tiny detector checkpoints built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest
import tiny_models

# pytester's in-process runs drop the modules first imported inside them, so a matplotlib module imported there
# comes back as a second copy with other classes ("Single argument to subplot must be a three-digit integer, not
# GridSpec"). Importing pyplot here, before any inline run, keeps one copy for the whole session.
matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402,F401


@dataclass(frozen=True)
class TinySet:
    """Checkpoints (FP16, ultralytics format) and a scene image in one temp folder."""

    root: Path
    original: Path
    pruned: Path  # same architecture at width 0.125: fewer channels, params, GFLOPs
    copy: Path  # the original saved again: identical detections
    masked: Path  # the original with channels zeroed, same shape
    masked_channels: int
    blind: Path  # the original with class logits far below any threshold: detects nothing
    scene: Path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinySet:
    from slimbench.model.checkpoint import save_detector

    root = tmp_path_factory.mktemp("tiny")
    original = tiny_models.build_detector("yolov8n.yaml", nc=2)
    masked, n = tiny_models.masked_copy(original)
    return TinySet(
        root=root,
        original=save_detector(original, root / "original.pt"),
        pruned=save_detector(tiny_models.build_detector("yolov8n.yaml", nc=2, width=0.125), root / "pruned.pt"),
        copy=save_detector(original, root / "copy.pt"),
        masked=save_detector(masked, root / "masked.pt"),
        masked_channels=n,
        blind=save_detector(tiny_models.build_detector("yolov8n.yaml", nc=2, class_bias=-20.0), root / "blind.pt"),
        scene=tiny_models.write_scene(root / "scene.jpg", 160),
    )

"""The pruner never hangs and refuses what it cannot handle: one line, exit code 2, before any graph is built."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
import torch_pruning as tp
from torch import nn
from ultralytics.nn.tasks import DetectionModel, OBBModel, PoseModel, RTDETRDetectionModel, SegmentationModel

from slimbench.cli import main
from slimbench.model.checkpoint import save_detector
from slimbench.pruning.deadline import DeadlineExceeded, run_with_deadline
from slimbench.pruning.structural import prune_detection_model
from slimbench.pruning.support import UnsupportedModelError, check_prunable


def _never_finishes(*args, **kwargs) -> None:  # noqa: ANN002, ANN003 - stands in for any torch-pruning step
    while True:
        time.sleep(0.01)


@pytest.fixture
def graph_never_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch-pruning's group building stuck as it was on yolo11n (get_pruning_group never returning)."""
    monkeypatch.setattr(tp.DependencyGraph, "get_pruning_group", _never_finishes)


def test_a_graph_that_never_finishes_becomes_an_error(graph_never_finishes: None) -> None:
    model = DetectionModel("yolo11n.yaml", nc=3, verbose=False)
    with pytest.raises(DeadlineExceeded, match=r"torch-pruning's dependency graph .* did not finish within .* 1 s"):
        prune_detection_model(model, 0.5, deadline_s=1)


def test_cli_prune_past_the_deadline_exits_2_and_writes_nothing(
    graph_never_finishes: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = save_detector(DetectionModel("yolo26n.yaml", nc=3, verbose=False), tmp_path / "y26.pt")
    out = tmp_path / "pruned.pt"
    assert main(["prune", str(src), "--ratio", "0.5", "--out", str(out), "--deadline", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not finish within its deadline of 1 s" in err[0] and str(src) in err[0]
    assert not out.exists()


def test_deadline_outside_the_main_thread() -> None:
    """No SIGALRM in a worker thread: the step runs in a daemon thread and is abandoned at the deadline."""
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            run_with_deadline(lambda: _never_finishes(), 0.5, "a stuck step")
        except DeadlineExceeded as e:
            caught.append(e)

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    assert len(caught) == 1 and "a stuck step did not finish" in str(caught[0])
    assert run_with_deadline(lambda: 42, 5, "a quick step") == 42


def _bad_models() -> dict[str, tuple[nn.Module, str]]:
    return {
        "segment": (SegmentationModel("yolo11n-seg.yaml", nc=3, verbose=False), r"model\.23 \(Segment\): segmentation"),
        "pose": (PoseModel("yolo26n-pose.yaml", nc=1, verbose=False), r"model\.23 \(Pose26\): pose head"),
        "obb": (OBBModel("yolov8n-obb.yaml", nc=3, verbose=False), r"model\.22 \(OBB\): oriented-box"),
        "rtdetr": (RTDETRDetectionModel("rtdetr-l.yaml", nc=3, verbose=False), r"\(RTDETRDecoder\): RT-DETR"),
    }


class Custom(nn.Module):
    """A block nobody rewrote for torch-pruning."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def test_unsupported_heads_and_blocks_are_named_before_any_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_graph(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        raise AssertionError("the graph must not be built for an unsupported model")

    monkeypatch.setattr(tp.pruner, "BasePruner", no_graph)
    for model, pattern in _bad_models().values():
        with pytest.raises(UnsupportedModelError, match=pattern):
            prune_detection_model(model, 0.5)
    model = DetectionModel("yolo11n.yaml", nc=3, verbose=False)
    layer = model.model[9]
    wrapped = Custom(layer)
    for a in ("i", "f", "type", "np"):
        setattr(wrapped, a, getattr(layer, a))
    model.model[9] = wrapped
    with pytest.raises(UnsupportedModelError, match=r"^model\.9 \(Custom\): unknown block, not supported"):
        prune_detection_model(model, 0.5)
    check_prunable(DetectionModel("yolov8n.yaml", nc=3, verbose=False))  # supported: no error


def test_cli_prune_of_a_segment_checkpoint_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = save_detector(SegmentationModel("yolo11n-seg.yaml", nc=3, verbose=False), tmp_path / "seg.pt")
    out = tmp_path / "p.pt"
    assert main(["prune", str(src), "--ratio", "0.5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("slimbench: error: ") and str(src) in err[0]
    assert "model.23 (Segment): segmentation head is not supported" in err[0]
    assert not out.exists()

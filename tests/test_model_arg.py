"""A model argument no subcommand can use is one stderr line naming it and what is accepted, exit 2, nothing written
(issue #25 item 4): ``make-fixtures``, ``train``, ``sparsify``, ``prune`` and ``finetune``, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from slimbench.cli import main
from slimbench.core.errors import SlimbenchError
from slimbench.model.checkpoint import detector_from_yaml, save_detector

SUBCOMMANDS = ("make-fixtures", "train", "sparsify", "prune", "finetune")
TAKES_YAML = {"make-fixtures", "train"}


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_detector(DetectionModel("yolov8n.yaml", nc=2, verbose=False), tmp_path_factory.mktemp("m") / "n.pt")


def _argv(command: str, model: str, root: Path) -> list[str]:
    """The subcommand with ``model`` and otherwise valid arguments (an existing dataset YAML, fresh outputs)."""
    data = root / "data.yaml"
    out, runs = str(root / "out.pt"), str(root / "runs")
    if command == "make-fixtures":
        return [command, "--quick", "--model", model, "--out", str(root / "fx"), "--workdir", str(root / "work")]
    if command == "train":
        return [command, "--model", model, "--data", str(data), "--out", out, "--project", runs]
    if command == "prune":
        return [command, model, "--ratio", "0.5", "--out", out]
    return [command, model, "--data", str(data), "--out", out, "--project", runs]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(root.rglob("*"))}


def _refused(argv: list[str], root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the command in ``root``; assert exit 2, one stderr line and an unchanged ``root``; return the line."""
    monkeypatch.chdir(root)
    before = _tree(root)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = int(e.code or 0)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2, lines
    assert len(lines) == 1, lines
    assert _tree(root) == before, "a refused model must leave nothing behind"
    return lines[0]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: {0: square}\n")
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")  # the issue's /etc/passwd, kept local
    return tmp_path


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_unknown_model_yaml(
    command: str, workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    line = _refused(_argv(command, "yolo99n.yaml", workspace), workspace, capsys, monkeypatch)
    assert line.startswith("slimbench: error: ") and "yolo99n.yaml" in line
    accepted = "yolov8n.yaml, yolo11n.yaml, yolo26n.yaml" if command in TAKES_YAML else "a detection checkpoint (.pt)"
    assert accepted in line, line
    if command in TAKES_YAML:
        assert "--model yolo99n.yaml: unknown model" in line


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_a_file_that_is_no_model(
    command: str, workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = str(workspace / "passwd")
    line = _refused(_argv(command, model, workspace), workspace, capsys, monkeypatch)
    assert f"{model}: not a model this command takes; expected " in line
    accepted = "yolov8n.yaml, yolo11n.yaml, yolo26n.yaml" if command in TAKES_YAML else "a detection checkpoint (.pt)"
    assert accepted in line, line
    assert ("a detection checkpoint (.pt) or a model YAML" in line) == (command == "train")  # train takes both


@pytest.mark.parametrize("command", sorted(set(SUBCOMMANDS) - {"make-fixtures"}))
def test_a_pt_file_that_is_no_checkpoint(
    command: str, workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text file named .pt reaches the checkpoint loader, whose refusal is the line (nothing of it is run)."""
    fake = workspace / "weights.pt"
    fake.write_text("not a pickle\n")
    line = _refused(_argv(command, str(fake), workspace), workspace, capsys, monkeypatch)
    assert f"{fake}: not a loadable ultralytics checkpoint" in line


@pytest.mark.parametrize(
    ("command", "model", "needle"),
    [
        ("train", "yolov8n-seg.yaml", "yolov8n-seg.yaml: a segment model, not a detector"),
        ("train", "data.yaml", "data.yaml: not a model YAML (no backbone and head)"),
        ("make-fixtures", "yolov10n.yaml", "yolov10n.yaml: model.23 (v10Detect): YOLOv10 head is not supported"),
        ("make-fixtures", "n.pt", "n.pt: not a model this command takes; expected a model YAML"),
        ("sparsify", "yolov8n.yaml", "yolov8n.yaml: not a model this command takes; expected a detection checkpoint"),
    ],
)
def test_unfit_models(
    command: str,
    model: str,
    needle: str,
    workspace: Path,
    detector: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Known to ultralytics but not what the subcommand can use: another task's head, a dataset YAML, a head the
    pruner does not handle (make-fixtures would find out after training an hour), a checkpoint where a YAML goes."""
    if model == "n.pt":
        (workspace / "n.pt").write_bytes(detector.read_bytes())
    line = _refused(_argv(command, model, workspace), workspace, capsys, monkeypatch)
    assert needle in line, line


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11s.yaml", "yolo26n.yaml"])
def test_known_yamls_build_offline(cfg: str) -> None:
    net = detector_from_yaml(cfg)
    assert isinstance(net, DetectionModel) and net.yaml["scale"] == cfg[-6]


def test_a_model_yaml_file_builds_and_a_missing_one_is_named(tmp_path: Path) -> None:
    from ultralytics.utils import ROOT

    own = tmp_path / "mine-n.yaml"
    own.write_text((ROOT / "cfg" / "models" / "v8" / "yolov8.yaml").read_text())
    assert sum(p.numel() for p in detector_from_yaml(own).parameters()) > 1_000_000
    with pytest.raises(SlimbenchError, match=r"^.*gone/yolov8n\.yaml: model YAML not found$"):
        detector_from_yaml(tmp_path / "gone" / "yolov8n.yaml")
    with pytest.raises(SlimbenchError, match=r"^https://x/yolov8n\.yaml: not a model YAML"):
        detector_from_yaml("https://x/yolov8n.yaml")  # nothing downloads


def test_a_checkpoint_still_trains_past_the_check(
    workspace: Path, detector: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check lets a detection checkpoint and a known YAML through to training (``train`` records instead)."""
    from slimbench.pruning import training

    seen: list[str] = []

    def record(model: str, data: str, **kw) -> training.TrainOutcome:
        seen.append(str(model))
        return training.TrainOutcome(best=detector, metrics={}, last=detector)

    monkeypatch.setattr(training, "train", record)
    for i, model in enumerate((str(detector), "yolo26n.yaml")):
        argv = _argv("train", model, workspace)
        argv[argv.index("--out") + 1] = str(workspace / f"out{i}.pt")
        assert main(argv) == 0, capsys.readouterr().err
    assert seen == [str(detector), "yolo26n.yaml"]


@pytest.mark.parametrize("model", ["yolo99n.yaml", "/etc/passwd"])
def test_the_issue_commands_in_a_fresh_process(model: str, tmp_path: Path) -> None:
    """The issue's own commands through the console entry point: one line, exit 2, no traceback, nothing written."""
    proc = subprocess.run(
        [sys.executable, "-m", "slimbench.cli", "make-fixtures", "--quick", "--model", model],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"slimbench: error: --model {model}: ") and "yolov8n.yaml" in proc.stderr
    assert list(tmp_path.iterdir()) == []

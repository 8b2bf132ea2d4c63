"""``make-fixtures --continue-from DIR``: a further round of Network Slimming on a set make-fixtures wrote, measured
against that set's original (iterative pruning), and its refusals of a set it cannot continue."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from slimbench.cli import main
from slimbench.model.checkpoint import sha256_of


def _quick(out: Path, work: Path, *extra: str) -> int:
    return main(["make-fixtures", "--quick", "--out", str(out), "--workdir", str(work), *extra])


@pytest.fixture(scope="module")
def first_round(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick set without a control: the first round."""
    root = tmp_path_factory.mktemp("round1")
    assert _quick(root / "set", root / "work", "--no-control") == 0
    return root / "set"


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.slow
def test_a_further_round_prunes_the_fine_tuned_model_and_keeps_the_original(first_round: Path, tmp_path: Path) -> None:
    """Round 2 starts from round 1's fine-tuned model, keeps round 1's original byte for byte as the reference,
    prunes further, and records round 1 whole; round 3 records both."""
    one = _manifest(first_round)
    assert _quick(tmp_path / "r2", tmp_path / "w2", "--continue-from", str(first_round)) == 0
    two = _manifest(tmp_path / "r2")
    assert two["round"] == 2 and f"--continue-from {first_round}" in two["created_by"]
    assert two["variants"]["original"]["sha256"] == one["variants"]["original"]["sha256"]
    assert sha256_of(tmp_path / "r2" / "models" / "original.pt") == one["variants"]["original"]["sha256"]
    assert two["start"]["sha256"] == one["variants"]["finetuned"]["sha256"]
    assert two["start"]["path"] == str(first_round / "models" / "finetuned.pt")
    assert two["variants"]["pruned"]["params"] < one["variants"]["finetuned"]["params"]
    assert two["variants"]["finetuned"]["params"] == two["variants"]["pruned"]["params"]
    # round 1's record, whole but for what the line shares; the line's figures stay at the top
    (earlier,) = two["earlier_rounds"]
    assert earlier["variants"] == one["variants"] and earlier["pruning"] == one["pruning"]
    assert earlier["folder"] == str(first_round) and "earlier_rounds" not in earlier
    assert two["original_training"] == {**one["original_training"], "reused": True}
    assert two["dataset"] == one["dataset"]
    # round 2 sparsified round 1's fine-tuned model: its "before" is that model's scales, not the original's
    assert two["sparse"]["gamma_before"]["channels"] == one["sparse"]["gamma_after"]["channels"] - (
        one["pruning"]["prunable_channels_before"] - one["pruning"]["prunable_channels_after"]
    )
    assert two["plan"]["control"] is False and "control" not in two and "train original" not in two["stage_seconds"]
    assert two["line_seconds"] == pytest.approx(one["total_seconds"] + two["total_seconds"], abs=0.2)
    assert "train original" in two["earlier_rounds"][0]["stage_seconds"]  # so the line's time includes it
    assert _quick(tmp_path / "r3", tmp_path / "w3", "--continue-from", str(tmp_path / "r2")) == 0
    three = _manifest(tmp_path / "r3")
    assert three["round"] == 3 and [r["round"] for r in three["earlier_rounds"][1:]] == [2]
    assert three["earlier_rounds"][0]["variants"] == one["variants"]
    assert three["variants"]["pruned"]["params"] < two["variants"]["finetuned"]["params"]


@pytest.mark.slow
def test_a_further_round_may_overwrite_the_set_it_continues(first_round: Path, tmp_path: Path) -> None:
    """``--out`` the same folder with ``--force``: the earlier checkpoints are copied before anything is written."""
    folder = tmp_path / "set"
    shutil.copytree(first_round, folder, ignore=shutil.ignore_patterns(".build"))
    before = _manifest(folder)
    assert _quick(folder, tmp_path / "w", "--continue-from", str(folder), "--force") == 0
    after = _manifest(folder)
    assert after["round"] == 2 and after["earlier_rounds"][0]["variants"] == before["variants"]
    assert after["variants"]["original"]["sha256"] == before["variants"]["original"]["sha256"]


def _refused(capsys: pytest.CaptureFixture[str], out: Path, work: Path, *argv: str, quick: bool = True) -> str:
    args = ["make-fixtures", *(["--quick"] if quick else []), "--out", str(out), "--workdir", str(work), *argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not (out / "manifest.json").exists() and not (out / "models").exists()
    return err


@pytest.mark.slow  # its first round is a quick build
def test_a_set_that_cannot_be_continued_is_refused_in_one_line(
    first_round: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    err = _refused(capsys, out, work, "--continue-from", str(tmp_path / "nowhere"))
    assert "nowhere/manifest.json" in err and "no manifest.json" in err
    # built on the quick data: a full plan would train on other data
    err = _refused(capsys, out, work, "--continue-from", str(first_round), quick=False)
    assert "built on other synthetic data: train 16 (here 1000), val 8 (here 250), imgsz 128 (here 256)" in err
    err = _refused(capsys, out, work, "--continue-from", str(first_round), "--model", "yolo11n.yaml")
    assert "built from yolov8n.yaml, not yolo11n.yaml" in err
    original = first_round / "models" / "original.pt"
    err = _refused(capsys, out, work, "--continue-from", str(first_round), "--original", str(original))
    assert "--original and --continue-from" in err
    # a checkpoint that is not the one its manifest pins is never unpickled
    tampered = tmp_path / "tampered"
    shutil.copytree(first_round, tampered, ignore=shutil.ignore_patterns(".build"))
    with (tampered / "models" / "finetuned.pt").open("ab") as f:
        f.write(b"\0")
    err = _refused(capsys, out, work, "--continue-from", str(tampered))
    assert "finetuned.pt: sha256 mismatch (pinned " in err and err.endswith("refusing to unpickle a changed checkpoint")
    (tampered / "manifest.json").write_text("{not json")
    assert "manifest.json: make-fixtures manifest is not JSON (" in _refused(
        capsys, out, work, "--continue-from", str(tampered)
    )


def test_a_recorded_latency_plan_gives_the_same_shares_without_timing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--plan-from MANIFEST``: the sparsity stage takes the shares a ``--target-latency`` build recorded, and times
    nothing (a plan timed again plans another cut); a file without a plan, or one naming a layer the model lacks, is
    refused in one line before any work."""
    from ultralytics.nn.tasks import DetectionModel

    from slimbench.model.checkpoint import save_detector
    from slimbench.pruning import latency_target, pipeline

    start = save_detector(DetectionModel("yolo11n.yaml", nc=3, verbose=False), tmp_path / "o.pt")
    shares = {"model.2.cv1": 0.75, "model.23.cv2.0.0": 0.0, "model.9.cv1": 0.25}
    recorded = {"target": 0.8, "runtime": "torch", "measured": 0.7985, "shares": shares}
    manifest = tmp_path / "built" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"latency_plan": recorded}))

    def no_timing(*args, **kw):
        raise AssertionError("a recorded plan is not timed again")

    monkeypatch.setattr(latency_target, "prune_to_latency", no_timing)
    plan = pipeline.FixturePlan(latency_plan_from=str(manifest))
    pairs, record = pipeline._latency_shares(start, plan, lambda _: None)
    assert dict(pairs) == shares and record == {**recorded, "recorded_in": str(manifest)}
    recipe = pipeline._prox_recipe(plan, pairs)  # as a measured plan's shares: their mean for any unit left out
    assert recipe.layer_targets == pairs and recipe.target == pytest.approx(1.0 / 3)

    manifest.write_text(json.dumps({"latency_plan": {**recorded, "shares": {**shares, "model.99.cv1": 0.5}}}))
    with pytest.raises(pipeline.SlimbenchError, match=r"--plan-from: the plan names model\.99\.cv1"):
        pipeline._latency_shares(start, plan, lambda _: None)
    manifest.write_text(json.dumps({"variants": {}}))
    with pytest.raises(pipeline.SlimbenchError, match="records no latency plan"):
        pipeline._latency_shares(start, plan, lambda _: None)
    out, work = tmp_path / "out", tmp_path / "work"
    err = _refused(capsys, out, work, "--plan-from", str(manifest), "--original", str(start), quick=False)
    assert "records no latency plan" in err and not (work / "data").exists()  # before the dataset is built
    for extra in (["--target-latency", "0.8"], ["--target", "0.5"], ["--quick"]):
        err = _refused(capsys, out, work, "--plan-from", str(manifest), *extra, quick=False)
        assert err.endswith("--plan-from: the recorded plan sets every share; drop --quick/--target*/--layer-target")

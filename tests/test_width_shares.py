"""``make-fixtures --widths-from CHECKPOINT``: the sparsity shares that take a model to a pruned copy's widths, on
every family, and their refusals of a checkpoint that is not such a copy."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
from torch import nn

from slimbench.cli import main
from slimbench.core.errors import SlimbenchError
from slimbench.pruning.width_shares import bn_widths, shares_to_widths

FAMILIES = ["yolov8n.yaml", "yolo11n.yaml", "yolo26n.yaml"]


def _model(cfg: str) -> nn.Module:
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel(cfg, nc=3, verbose=False)


def _pruned(model: nn.Module) -> nn.Module:
    """A copy pruned by the latency planner's width tool, each unit to one of three shares (none, half, 3/4)."""
    from slimbench.pruning.latency_target import pruned_to_widths
    from slimbench.pruning.sparsity import kept_width

    def width_of(unit: object) -> int:
        share = (0.0, 0.5, 0.75)[sum(map(ord, unit.name)) % 3]
        return min(unit.width, kept_width(unit.width, share, 8))

    return pruned_to_widths(SimpleNamespace(model=model), width_of, 8).model


@pytest.mark.parametrize("cfg", FAMILIES)
def test_the_shares_push_exactly_what_the_pruned_copy_lost(cfg: str) -> None:
    """The sparsity stage's targets under these shares zero, in every BatchNorm, as many channels as the pruned copy
    removed there, and the width tool pruning by them reaches the copy's widths."""
    from slimbench.pruning.latency_target import pruned_to_widths
    from slimbench.pruning.sparsity import kept_width, targeted_weights, unit_share

    start = _model(cfg)
    target = _pruned(start)
    have, want = bn_widths(start), bn_widths(target)
    assert sum(have.values()) > sum(want.values())  # the copy is really narrower
    shares = dict(shares_to_widths(start, target, 8))
    assert all(0.0 <= v < 1.0 for v in shares.values()) and any(v > 0 for v in shares.values())
    names = {m: n for n, m in start.named_modules()}
    pushed = targeted_weights(start, 0.6, per_layer=True, round_to=8, layer_shares=shares)
    lost = {names[bn]: int(w.sum()) for bn, w in pushed.items()}
    assert lost == {n: have[n] - want[n] for n in have}
    again = pruned_to_widths(
        SimpleNamespace(model=start), lambda u: min(u.width, kept_width(u.width, unit_share(u.name, 0, shares), 8)), 8
    ).model
    assert bn_widths(again) == want


def test_a_checkpoint_that_is_not_a_pruned_copy_is_refused_in_one_line() -> None:
    start = _model("yolo11n.yaml")
    with pytest.raises(SlimbenchError, match=r"^W: not a pruned copy of this architecture \(model\.\S+ is in only one"):
        shares_to_widths(start, _model("yolov8n.yaml"), 8, where="W")
    with pytest.raises(SlimbenchError, match=r"^W: model\.\S+\.bn has \d+ channels, more than the \d+ here$"):
        shares_to_widths(start, _model("yolo11s.yaml"), 8, where="W")
    odd = copy.deepcopy(start)
    odd.model[0].bn = nn.BatchNorm2d(12)  # 16 -> 12: steps of 8 reach 8 or 16
    with pytest.raises(SlimbenchError, match=r"^W: model\.0\.bn keeps 12 of 16 channels, which steps of 8 do not"):
        shares_to_widths(start, odd, 8, where="W")
    deep = copy.deepcopy(start)
    deep.model[7].bn = nn.BatchNorm2d(16)  # 256 -> 16: 94% of the unit, over the 90% the build removes
    with pytest.raises(SlimbenchError, match=r"^W: model\.7\.bn keeps 16 of 256 channels, more than the 90% of a unit"):
        shares_to_widths(start, deep, 8, where="W")
    attention = copy.deepcopy(start)
    qkv = next(n for n, m in attention.named_modules() if n.endswith("attn.qkv"))
    attention.get_submodule(qkv).bn = nn.BatchNorm2d(8)
    with pytest.raises(SlimbenchError, match=rf"^W: {qkv}\.bn is narrower, but the pruner keeps that layer whole$"):
        shares_to_widths(start, attention, 8, where="W")


def test_the_shares_become_the_plans_layer_shares_before_any_work(tmp_path: Path) -> None:
    """The pipeline turns ``widths_from`` into the plan's per-layer shares (so the manifest records the cut), from a
    YAML-built start as from a checkpoint."""
    from slimbench.model.checkpoint import load_detector, save_detector
    from slimbench.pruning import pipeline

    start = _model("yolo11n.yaml")
    copy_pt = save_detector(_pruned(start), tmp_path / "cut.pt")
    plan = pipeline.FixturePlan(model_cfg="yolo11n.yaml", widths_from=str(copy_pt))
    built = pipeline._widths_plan(plan, None)
    assert built.sparsity_layer_shares == shares_to_widths(start, load_detector(copy_pt).model, 8)
    assert pipeline._prox_recipe(built).layer_targets == built.sparsity_layer_shares
    assert pipeline._widths_plan(pipeline.FixturePlan(), None) == pipeline.FixturePlan()


def _refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> str:
    out, work = tmp_path / "out", tmp_path / "work"
    assert main(["make-fixtures", "--out", str(out), "--workdir", str(work), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not out.exists() and not (work / "data").exists()  # before the dataset is built
    return err


def test_make_fixtures_refuses_an_unfit_widths_checkpoint_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from slimbench.model.checkpoint import save_detector

    v8 = save_detector(_model("yolov8n.yaml"), tmp_path / "v8.pt")
    err = _refused(capsys, tmp_path, "--model", "yolo11n.yaml", "--widths-from", str(v8))
    assert f"--widths-from {v8}: not a pruned copy of this architecture" in err
    err = _refused(capsys, tmp_path, "--widths-from", str(tmp_path / "missing.pt"))
    assert "--widths-from" in err and "missing.pt" in err
    for extra in (["--target", "0.5"], ["--plan-from", str(tmp_path / "m.json")], ["--quick"]):
        err = _refused(capsys, tmp_path, "--widths-from", str(v8), *extra)
        assert err.endswith(
            "the checkpoint's widths set every share; drop --quick/--plan-from/--target*/--layer-target"
        )


def test_make_fixtures_passes_the_widths_checkpoint_to_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from slimbench.model.checkpoint import save_detector
    from slimbench.pruning import pipeline

    plans = []
    monkeypatch.setattr(
        pipeline,
        "make_fixtures",
        lambda out, plan, workdir, **kw: plans.append(plan) or {"variants": {}, "original_training": {}},
    )
    cut = save_detector(_model("yolov8n.yaml"), tmp_path / "cut.pt")
    assert main(["make-fixtures", "--out", str(tmp_path / "fx"), "--widths-from", str(cut)]) == 0
    assert plans[0].widths_from == str(cut) and plans[0].sparsity_layer_shares == ()  # the pipeline computes them
    assert pipeline.FixturePlan().widths_from is None

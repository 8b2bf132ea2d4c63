"""Every bad input to the slimbench command: one line naming the file and the problem, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import ClassificationModel, DetectionModel

from slimbench.cli import main
from slimbench.model.checkpoint import save_detector


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_detector(DetectionModel("yolov8n.yaml", nc=2, verbose=False), tmp_path_factory.mktemp("m") / "n.pt")


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        rc = main(args)
    except SystemExit as e:  # argparse errors
        rc = int(e.code or 0)
    err = capsys.readouterr().err.strip()
    return rc, err


def _assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


def test_prune_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.pt"
    rc, err = _run(["prune", str(tmp_path / "nope.pt"), "--ratio", "0.5", "--out", str(out)], capsys)
    _assert_one_line_error(rc, err, "nope.pt", "not found")
    assert not out.exists()


def test_prune_truncated_file(tmp_path: Path, detector: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cut.pt"
    bad.write_bytes(detector.read_bytes()[: detector.stat().st_size // 2])
    out = tmp_path / "out.pt"
    rc, err = _run(["prune", str(bad), "--ratio", "0.5", "--out", str(out)], capsys)
    _assert_one_line_error(rc, err, "cut.pt", "not a loadable")
    assert not out.exists()


def test_prune_not_a_detector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cls = tmp_path / "cls.pt"
    save_detector(ClassificationModel("yolov8n-cls.yaml", nc=3, verbose=False), cls)
    out = tmp_path / "out.pt"
    rc, err = _run(["prune", str(cls), "--ratio", "0.5", "--out", str(out)], capsys)
    _assert_one_line_error(rc, err, "cls.pt", "model.9 (Classify): classification head is not supported")
    assert not out.exists()


@pytest.mark.parametrize("ratio", ["0", "1", "1.5", "-0.2", "half"])
def test_prune_ratio_outside_open_interval(
    tmp_path: Path, detector: Path, ratio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.pt"
    rc, err = _run(["prune", str(detector), "--ratio", ratio, "--out", str(out)], capsys)
    _assert_one_line_error(rc, err, "--ratio", "(0, 1)")
    assert not out.exists()


def test_prune_output_equal_to_input(detector: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = detector.read_bytes()
    rc, err = _run(["prune", str(detector), "--ratio", "0.5", "--out", str(detector)], capsys)
    _assert_one_line_error(rc, err, str(detector), "input")
    assert detector.read_bytes() == before


def test_prune_refuses_to_overwrite_without_force(
    tmp_path: Path, detector: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exists.pt"
    out.write_bytes(b"keep me")
    rc, err = _run(["prune", str(detector), "--ratio", "0.5", "--out", str(out)], capsys)
    _assert_one_line_error(rc, err, "exists.pt", "--force")
    assert out.read_bytes() == b"keep me"


def test_prune_writes_smaller_checkpoint_and_table(
    tmp_path: Path, detector: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.pt"
    assert main(["prune", str(detector), "--ratio", "0.5", "--out", str(out), "--imgsz", "320"]) == 0
    text = capsys.readouterr().out
    assert "parameters" in text and "GFLOPs @ 320" in text and "model.2.cv1.conv" in text
    assert out.stat().st_size < 0.4 * detector.stat().st_size
    assert not list(tmp_path.glob(".*tmp*")), "no temp files left behind"


def test_finetune_missing_dataset(tmp_path: Path, detector: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ft.pt"
    rc, err = _run(["finetune", str(detector), "--data", str(tmp_path / "none.yaml"), "--out", str(out)], capsys)
    _assert_one_line_error(rc, err, "none.yaml", "not found")
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--layer-target", "model.22"], ("--layer-target", "NAME=SHARE", "'model.22'")),
        (["--layer-target", "model.22=1.5"], ("--layer-target", "model.22=1.5")),
        (
            ["--per-layer", "--target", "0.6", "--layer-target", "model.99=0.7"],
            ("--layer-target model.99", "no BatchNorm"),
        ),
        (["--layer-target", "model.22=0.7"], ("--layer-target", "needs --per-layer and --target")),
        (["--method", "subgradient", "--target-latency", "0.5"], ("--target-latency", "only with --method prox")),
        (["--method", "subgradient", "--lrf", "0.1"], ("--lrf", "only with --method prox")),
        (["--lrf", "0"], ("--lrf", "(0, 1]")),
    ],
)
def test_sparsify_layer_target_errors(
    tmp_path: Path, detector: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needles: tuple[str, ...]
) -> None:
    """A mistyped or unusable layer target is one line before any training, not a share applied to nothing."""
    data = tmp_path / "data.yaml"
    data.write_text("path: .\n")
    out = tmp_path / "sparse.pt"
    rc, err = _run(["sparsify", str(detector), "--data", str(data), "--out", str(out), *extra], capsys)
    _assert_one_line_error(rc, err, *needles)
    assert not out.exists()


def _training_recorded(
    tmp_path: Path,
    detector: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list,
    command: str = "sparsify",
) -> tuple[int, dict, Path, str]:
    """``slimbench sparsify`` (or another training ``command``) with ``extra`` options, ``train`` replaced by a
    recorder that copies the start as the run's checkpoint: (exit code, the keywords train got, --out, stderr)."""
    import shutil

    from slimbench.pruning import training

    seen: dict = {}

    def record(model: str, data: str, *, project: str, name: str, **kw) -> training.TrainOutcome:
        seen.update(kw)
        last = Path(project) / name / "last.pt"
        last.parent.mkdir(parents=True)
        shutil.copyfile(model, last)
        return training.TrainOutcome(best=last, metrics={}, last=last)

    monkeypatch.setattr(training, "train", record)
    data = tmp_path / "data.yaml"
    data.write_text("path: .\n")
    out = tmp_path / f"{command}.pt"
    argv = [command, str(detector), "--data", str(data), "--out", str(out), "--project", str(tmp_path / "runs")]
    rc, err = _run([*argv, *extra], capsys)
    return rc, seen, out, err


def test_sparsify_recovery_options_reach_the_trainer(
    tmp_path: Path, detector: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--ramp 0 --lr0 0.01 --lrf 0.1``, make-fixtures' recovery epochs by hand: the recipe holds its targets from
    step one and ultralytics gets the decaying lr (``train`` records instead of training)."""
    extra = ["--ramp", "0", "--lr0", "0.01", "--lrf", "0.1", "--per-layer", "--target", "0.6"]
    rc, seen, out, _ = _training_recorded(tmp_path, detector, monkeypatch, capsys, extra)
    assert rc == 0 and out.is_file()
    assert seen["recipe"].ramp == 0.0 and seen["recipe"].target == 0.6
    assert (seen["lr0"], seen["lrf"]) == (0.01, 0.1)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], {"cache": False, "channels_last": False, "bf16": False}),
        (["--cache", "disk"], {"cache": "disk"}),
        (["--cache", "ram"], {"cache": "ram"}),
        (["--channels-last"], {"channels_last": True}),
        (["--bf16"], {"bf16": True, "channels_last": False}),
    ],
)
def test_training_commands_pass_their_training_options(
    tmp_path: Path,
    detector: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    expected: dict[str, object],
) -> None:
    """``--cache`` reaches ultralytics as its ``cache`` argument (without it every epoch decodes the images) and
    ``--channels-last`` and ``--bf16`` reach ``train`` (without them the usual layout and float32)."""
    rc, seen, out, _ = _training_recorded(tmp_path, detector, monkeypatch, capsys, extra)
    assert rc == 0 and out.is_file()
    for key, value in expected.items():
        assert seen[key] is value if isinstance(value, bool) else seen[key] == value, (key, seen[key])


@pytest.mark.parametrize("option", ["--channels-last", "--bf16"])
def test_cpu_training_options_are_refused_off_the_cpu_before_training(
    tmp_path: Path, detector: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    out, data = tmp_path / "ft.pt", tmp_path / "data.yaml"
    data.write_text("path: .\n")
    argv = ["finetune", str(detector), "--data", str(data), "--out", str(out), option]
    rc, err = _run([*argv, "--device", "0", "--project", str(tmp_path / "runs")], capsys)
    _assert_one_line_error(rc, err, option, "--device 0")
    assert not out.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], {"optimizer": "auto"}),
        (["--optimizer", "SGD", "--lr0", "0.01", "--warmup-epochs", "0"], {"optimizer": "SGD", "lr0": 0.01}),
    ],
)
def test_finetune_optimizer_options_reach_the_trainer(
    tmp_path: Path,
    detector: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    expected: dict,
) -> None:
    """The fine-tune's optimizer, lr and warm-up reach ultralytics; unset, ultralytics' own choice (auto) stands."""
    rc, seen, out, _ = _training_recorded(tmp_path, detector, monkeypatch, capsys, extra, command="finetune")
    assert rc == 0 and out.is_file() and seen["keep_shape"] is True
    assert {k: seen[k] for k in expected} == expected
    assert seen.get("warmup_epochs") == (0.0 if extra else None)
    assert extra or "lr0" not in seen


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--lr0", "0.01"], ("--lr0", "--optimizer auto")),
        (["--optimizer", "Adagrad"], ("--optimizer", "'Adagrad'")),
        (["--optimizer", "SGD", "--lr0", "0"], ("--lr0", "positive")),
    ],
)
def test_finetune_refuses_unfit_optimizer_options_before_training(
    tmp_path: Path,
    detector: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needles: tuple[str, ...],
) -> None:
    rc, seen, out, err = _training_recorded(tmp_path, detector, monkeypatch, capsys, extra, command="finetune")
    _assert_one_line_error(rc, err, *needles)
    assert not seen and not out.exists()


def test_training_commands_refuse_an_unknown_cache(
    tmp_path: Path, detector: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ft.pt"
    argv = ["finetune", str(detector), "--data", str(tmp_path / "d.yaml"), "--out", str(out), "--cache", "gpu"]
    rc, err = _run(argv, capsys)
    _assert_one_line_error(rc, err, "--cache", "'gpu'")
    assert not out.exists()


@pytest.mark.parametrize(("extra", "cap"), [([], 0.9), (["--latency-max-layer-ratio", "0.5"], 0.5)])
def test_sparsify_target_latency_passes_the_layer_cap(
    tmp_path: Path,
    detector: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    cap: float,
) -> None:
    """``sparsify --target-latency`` plans with the per-layer cap it is given (make-fixtures'
    ``latency_max_layer_ratio``), and the plan's shares become the recipe's layer targets (the measured plan and the
    training are replaced by recorders: no timing here)."""
    from slimbench.pruning import latency_sparsity

    planned: dict = {}

    def plan(yolo, target: float, runtime: str, threads: int, step: int, **kw):
        planned.update(target=target, runtime=runtime, step=step, **kw)
        return (("model.2", 0.5), ("model.4", 0.25)), {"measured": target}

    monkeypatch.setattr(latency_sparsity, "latency_plan_shares", plan)
    options = ["--per-layer", "--target-latency", "0.5", "--runtime", "torch", *extra]
    rc, seen, out, _ = _training_recorded(tmp_path, detector, monkeypatch, capsys, options)
    assert rc == 0 and out.is_file()
    assert planned["max_layer_ratio"] == cap and (planned["target"], planned["runtime"]) == (0.5, "torch")
    assert seen["recipe"].layer_targets == (("model.2", 0.5), ("model.4", 0.25))
    assert seen["recipe"].target == pytest.approx(0.375)


def test_console_script_exit_code(tmp_path: Path) -> None:
    """The installed entry point behaves like main(): exit 2 and one stderr line."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slimbench.cli",
            "prune",
            str(tmp_path / "x.pt"),
            "--ratio",
            "0.5",
            "--out",
            str(tmp_path / "y.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"slimbench: error: {tmp_path / 'x.pt'}: checkpoint not found"]


# a plateau at epochs 3-4 (the learning rate still high), a climb, and a second plateau from epoch 8
TWO_PLATEAUS = [0.3, 0.5, 0.505, 0.507, 0.508, 0.6, 0.61, 0.611, 0.6115, 0.6116]


@pytest.mark.parametrize(
    ("curve", "epochs", "extra", "said", "ran"),
    [
        ([0.3, 0.5, 0.505, 0.507, 0.6], 5, [], "converged at epoch 4", 4),
        ([0.3, 0.5, 0.6], 3, [], "not converged: stopped at the cap of 3 epochs", 3),
        (TWO_PLATEAUS, 10, [], "converged at epoch 9", 9),  # not before epoch 6, 60% of the cap
        (TWO_PLATEAUS, 10, ["--min-epochs", "1"], "converged at epoch 4", 4),
        (TWO_PLATEAUS, 10, ["--min-epochs", "10"], "converged at epoch 10", 10),
    ],
)
def test_train_until_converged_stops_by_the_rule(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    curve: list[float],
    epochs: int,
    extra: list[str],
    said: str,
    ran: int,
) -> None:
    """``train --until-converged``: make-fixtures' stopping rule on a user's own training, ``--epochs`` the cap,
    never before ``--min-epochs`` (default 60% of the cap). The trainer is replaced by one that replays a recorded
    curve through the callbacks (no training here)."""
    from types import SimpleNamespace

    from slimbench.pruning import training
    from slimbench.pruning.convergence import METRIC

    replayed: list[float] = []

    def replay(model: str, data: str, *, project: str, name: str, epochs: int, callbacks: dict, **kw):
        trainer = SimpleNamespace(metrics={}, save_dir=Path(project) / name, stop=False)
        trainer.save_dir.mkdir(parents=True)
        for value in curve[:epochs]:
            trainer.metrics = {METRIC: value}
            for hook in callbacks["on_train_epoch_start"] + callbacks["on_fit_epoch_end"]:
                hook(trainer)
            replayed.append(value)
            if trainer.stop:
                break
        best = trainer.save_dir / "best.pt"
        best.write_bytes(b"weights")
        return training.TrainOutcome(best=best, metrics={METRIC: max(replayed)}, last=best)

    monkeypatch.setattr(training, "train", replay)
    data = tmp_path / "data.yaml"
    data.write_text("path: .\n")
    out = tmp_path / "original.pt"
    argv = ["train", "--data", str(data), "--out", str(out), "--project", str(tmp_path / "runs")]
    rule = ["--until-converged", "--patience", "2", "--min-delta", "0.01", "--epochs", str(epochs), *extra]
    assert main([*argv, *rule]) == 0
    text = capsys.readouterr().out
    assert said in text and out.read_bytes() == b"weights"
    assert len(replayed) == ran


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--until-converged", "--epochs", "10", "--min-epochs", "11"], ("--min-epochs 11", "--epochs 10")),
        (["--min-epochs", "5"], ("--min-epochs", "only with --until-converged")),
        (["--patience", "5"], ("--patience", "only with --until-converged")),
        (["--min-delta", "0.01"], ("--min-delta", "only with --until-converged")),
    ],
)
def test_train_refuses_a_rule_it_could_not_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needles: tuple[str, ...]
) -> None:
    """--min-epochs past the cap, or a knob of the rule without --until-converged (it would be ignored): one line,
    exit 2, before any training (nothing written)."""
    data = tmp_path / "data.yaml"
    data.write_text("path: .\n")
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "o.pt"), "--project", str(tmp_path / "runs")]
    assert main([*argv, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(n in err for n in needles), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.yaml"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--target", "1.5"], ("--target", "(0, 1)")),
        (["--layer-target", "model.22"], ("--layer-target", "NAME=SHARE")),
        (["--layer-target", "model.99=0.7"], ("--layer-target", "model.99", "no BatchNorm of yolov8n.yaml")),
        (["--quick", "--target", "0.6"], ("--target", "not with --quick")),
        (["--finetune-epochs", "0"], ("--finetune-epochs", "0")),
        (["--sparsity-epochs", "0"], ("--sparsity-epochs", "0")),
        (["--recovery-epochs", "-1"], ("--recovery-epochs", "-1")),
        (["--target-latency", "0.4", "--target", "0.6"], ("--target-latency", "drop --target")),
        (["--quick", "--target-latency", "0.4"], ("--target-latency", "not with --quick")),
        (["--latency-runtime", "torch"], ("--latency-runtime", "only with --target-latency")),
        (["--latency-max-layer-ratio", "0.5"], ("--latency-max-layer-ratio", "only with --target-latency")),
        (["--channels-last", "--device", "cuda:0"], ("--channels-last", "CPU", "cuda:0")),
        (["--bf16", "--device", "cuda:0"], ("--bf16", "CPU", "cuda:0")),
        (["--target-latency", "0.4", "--latency-max-layer-ratio", "1"], ("--latency-max-layer-ratio", "(0, 1)")),
        (["--finetune-lr0", "0.01"], ("--finetune-lr0", "auto", "SGD")),
        (["--finetune-optimizer", "sgd"], ("--finetune-optimizer", "sgd", "SGD")),
        (["--finetune-optimizer", "SGD", "--finetune-lr0", "0"], ("--finetune-lr0", "0")),
        (["--finetune-warmup-epochs", "-1"], ("--finetune-warmup-epochs", "-1")),
    ],
)
def test_make_fixtures_share_errors(
    tmp_path: Path, args: list[str], needles: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """make-fixtures' share options refuse a bad share, a mistyped layer and the smoke test in one line, exit 2,
    before the dataset or any training: nothing is written under --out or --workdir."""
    out, work = tmp_path / "fx", tmp_path / "work"
    rc, err = _run(["make-fixtures", "--out", str(out), "--workdir", str(work), *args], capsys)
    _assert_one_line_error(rc, err, *needles)
    assert not out.exists() and not work.exists()


def test_make_fixtures_shares_reach_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--target``, ``--layer-target``, ``--target-latency`` and the ``--*-epochs`` become the build's plan
    (uniform share, per-layer shares with a later --layer-target for the same module winning, the latency plan's
    target and runtime, each stage's epochs); without them the bundled plan's stay."""
    from slimbench.pruning import pipeline
    from slimbench.pruning.fixture_plan import FixturePlan

    plans, commands = [], []

    def record(out: Path, plan: FixturePlan, workdir: Path, **kw: object) -> dict:
        plans.append(plan)
        commands.append(kw["command"])
        return {"variants": {}, "original_training": {}}

    monkeypatch.setattr(pipeline, "make_fixtures", record)
    argv = ["make-fixtures", "--out", str(tmp_path / "fx"), "--no-control"]
    layer = ["--layer-target", "model.22=0.7", "--layer-target", "model.9=0.5", "--layer-target", "model.22=0.75"]
    epochs = ["--sparsity-epochs", "8", "--recovery-epochs", "18", "--finetune-epochs", "30"]
    assert _run([*argv, "--target", "0.64", *layer, *epochs], capsys)[0] == 0
    assert _run(argv, capsys)[0] == 0
    assert _run([*argv, "--target-latency", "0.35", "--latency-runtime", "torch"], capsys)[0] == 0
    assert _run([*argv, "--target-latency", "0.4", "--latency-max-layer-ratio", "0.6"], capsys)[0] == 0
    built, default, steered, capped = plans
    assert (steered.sparsity_target_latency, steered.latency_runtime) == (0.35, "torch")
    assert steered.latency_max_layer_ratio == FixturePlan().latency_max_layer_ratio
    assert (capped.latency_max_layer_ratio, capped.latency_runtime) == (0.6, FixturePlan().latency_runtime)
    assert default.sparsity_target_latency is None and default.latency_runtime == FixturePlan().latency_runtime
    assert built.sparsity_target == 0.64 and not built.control and built.epochs_finetune == 30
    assert (built.epochs_sparsity, built.epochs_recovery) == (8, 18)
    bundled = FixturePlan()
    assert default.epochs_finetune == bundled.epochs_finetune
    assert (default.epochs_sparsity, default.epochs_recovery) == (bundled.epochs_sparsity, bundled.epochs_recovery)
    assert built.sparsity_layer_shares == (("model.22", 0.75), ("model.9", 0.5))
    assert default.sparsity_target == FixturePlan().sparsity_target and default.sparsity_layer_shares == ()
    assert _run([*argv, "--channels-last"], capsys)[0] == 0
    assert plans[-1].channels_last and not default.channels_last and not FixturePlan().channels_last
    assert _run([*argv, "--bf16"], capsys)[0] == 0
    assert commands[-1] == "slimbench " + " ".join([*argv, "--bf16"])  # recorded as typed (created_by)
    assert plans[-1].bf16 and not plans[-1].channels_last and not default.bf16 and not FixturePlan().bf16
    recipe = ["--finetune-optimizer", "SGD", "--finetune-lr0", "0.01", "--finetune-warmup-epochs", "0"]
    assert _run([*argv, *recipe, "--final-val-only"], capsys)[0] == 0
    sgd = plans[-1]
    assert (sgd.finetune_optimizer, sgd.finetune_lr0, sgd.finetune_warmup_epochs) == ("SGD", 0.01, 0.0)
    assert not sgd.val_each_epoch and default.val_each_epoch and FixturePlan().val_each_epoch
    assert (default.finetune_optimizer, default.finetune_lr0, default.finetune_warmup_epochs) == ("auto", None, None)

"""The reference build end to end in --quick mode, and the two trainer changes it relies on."""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
import yaml

from slimbench.cli import main
from slimbench.data.synthetic import make_dataset
from slimbench.model.checkpoint import load_detector, sha256_of
from slimbench.pruning.sparsity import SparsityRecipe, batchnorms, bn_gammas, share_below
from slimbench.pruning.structural import count_params
from slimbench.pruning.training import train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "ds", train=16, val=8, imgsz=128, seed=3)


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    return train("yolov8n.yaml", tiny_data, epochs=1, imgsz=128, batch=8, project=runs, name="o", workers=0).best


def _one_epoch(
    model: Path, data: Path, project: Path, name: str, *, bf16: bool = False, channels_last: bool, **callbacks: object
):
    """One epoch of ``train`` on the tiny data, with one callback per ultralytics event named."""
    return train(
        model,
        data,
        epochs=1,
        imgsz=128,
        batch=8,
        project=project,
        name=name,
        workers=0,
        bf16=bf16,
        channels_last=channels_last,
        callbacks={event: [fn] for event, fn in callbacks.items()},
    )


def _first_conv(model: torch.nn.Module) -> torch.nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_channels_last_trains_in_nhwc_and_saves_the_usual_layout(
    trained: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """The model trains with NHWC convolution weights; the checkpoint ultralytics saves (the EMA) is in the usual
    layout, and it loads and predicts as any other."""
    seen: list[bool] = []

    def first_conv_layout(trainer) -> None:
        conv = _first_conv(trainer.model)
        seen.append(conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous())

    outcome = _one_epoch(trained, tiny_data, tmp_path, "nhwc", channels_last=True, on_train_batch_end=first_conv_layout)
    assert seen and all(seen), seen
    saved = load_detector(outcome.last).model
    assert all(p.is_contiguous() for p in saved.parameters())
    assert saved.float().eval()(torch.zeros(1, 3, 128, 128))[0].shape[0] == 1


def test_bf16_trains_in_bfloat16_and_saves_float_weights(
    trained: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``bf16`` the training forward's convolutions run in bfloat16 (CPU autocast through ultralytics' trainer)
    and the loss in float32 with autocast off; the weights stay float32, ultralytics' helper is its own again
    afterwards, and the checkpoint predicts."""
    import ultralytics.engine.trainer as trainer_module
    from ultralytics.nn.tasks import BaseModel

    own = trainer_module.autocast
    dtypes: set[torch.dtype] = set()
    loss_inputs: list[tuple[bool, set[torch.dtype]]] = []
    class_loss = BaseModel.loss

    def spy(self, batch, preds=None):
        if self.training:
            tensors = [t for t in _tensors(preds) if t.is_floating_point()]
            loss_inputs.append((torch.is_autocast_enabled("cpu"), {t.dtype for t in tensors} if tensors else set()))
        return class_loss(self, batch, preds)

    monkeypatch.setattr(BaseModel, "loss", spy)

    def hook_first_conv(trainer) -> None:
        conv = _first_conv(trainer.model)
        conv.register_forward_hook(lambda m, i, out: dtypes.add(out.dtype) if m.training else None)

    outcome = _one_epoch(
        trained, tiny_data, tmp_path, "bf16", bf16=True, channels_last=True, on_pretrain_routine_end=hook_first_conv
    )
    assert dtypes == {torch.bfloat16}, dtypes
    assert loss_inputs and all(entry == (False, {torch.float32}) for entry in loss_inputs), loss_inputs[:3]
    assert trainer_module.autocast is own
    with zipfile.ZipFile(outcome.last) as z:  # plain ultralytics loads it: the loss wrapper is not pickled in
        assert not any(b"cpu_bf16" in z.read(n) for n in z.namelist() if n.endswith(".pkl"))
    saved = load_detector(outcome.last).model.float().eval()
    assert all(p.dtype == torch.float32 for p in saved.parameters())
    assert saved(torch.zeros(1, 3, 128, 128))[0].shape[0] == 1
    assert outcome.metrics and all(v == v for v in outcome.metrics.values())  # validated, no NaN


def _tensors(x: object) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    values = x.values() if isinstance(x, dict) else x if isinstance(x, (list, tuple)) else []
    return [t for v in values for t in _tensors(v)]


@pytest.mark.slow
def test_sparsity_training_shrinks_bn_scales(trained: Path, tiny_data: Path, tmp_path: Path) -> None:
    """Same data, seed and epochs; only the L1 strength differs, so the gamma drop is the penalty's doing."""
    # nbs=batch: an optimizer step per batch (no accumulation); a fixed AdamW lr so a few steps show the drift
    common = {
        "epochs": 2,
        "imgsz": 128,
        "batch": 8,
        "nbs": 8,
        "optimizer": "AdamW",
        "lr0": 0.01,
        "project": tmp_path,
        "workers": 0,
        "seed": 0,
    }
    plain = train(trained, tiny_data, name="plain", sparsity=0.0, **common).best
    sparse = train(trained, tiny_data, name="sparse", sparsity=0.05, **common).best
    g_plain = bn_gammas(load_detector(plain).model)
    g_sparse = bn_gammas(load_detector(sparse).model)
    assert g_plain.shape == g_sparse.shape
    assert g_sparse.mean() < g_plain.mean() - 0.005, (g_sparse.mean(), g_plain.mean())


@pytest.mark.slow
@pytest.mark.parametrize("taylor", [False, True], ids=["magnitude", "taylor"])
def test_proximal_sparsity_drives_targeted_scales_to_zero_in_the_saved_ema(
    trained: Path, tiny_data: Path, tmp_path: Path, taylor: bool
) -> None:
    """The proximal step targets each layer's small scales (weight (max - |g|) / (max - min)) and spares its largest;
    the checkpoint ultralytics saves is the EMA in FP16, so the share below 1% of the layer max is read from it."""
    recipe = SparsityRecipe(lam=100.0, ramp=0.0, threshold=0.01, taylor=taylor)
    out = train(
        trained,
        tiny_data,
        epochs=2,
        imgsz=128,
        batch=8,
        project=tmp_path,
        name="prox",
        recipe=recipe,
        lr0=0.01,
        workers=0,
    )
    start, saved = load_detector(trained).model, load_detector(out.last).model
    share0, share1 = share_below(start, 0.01), share_below(saved, 0.01)
    assert share1 > share0 + 0.2, (share0, share1)
    assert [h["epoch"] for h in out.history] == [1, 2] and out.history[-1]["lambda"] == 100.0
    assert abs(out.history[-1]["share_below"] - share1) < 0.02  # the per-epoch figure is the EMA's
    for b0, b1 in zip(batchnorms(start), batchnorms(saved), strict=True):  # each layer's largest scale survives
        assert b1.weight.float().abs().max() > 0.5 * b0.weight.float().abs().max()


@pytest.mark.slow
def test_layer_targets_sparsify_their_module_harder_in_training(trained: Path, tiny_data: Path, tmp_path: Path) -> None:
    """A per-layer target of 0.5 with the Detect head at 0.75: the saved EMA has about those shares near zero."""
    recipe = SparsityRecipe(
        lam=200.0, ramp=0.0, target=0.5, per_layer=True, round_to=8, layer_targets=(("model.22", 0.75),)
    )
    out = train(
        trained, tiny_data, epochs=2, imgsz=128, batch=8, project=tmp_path, name="heavy", recipe=recipe, lr0=0.01
    )
    saved = load_detector(out.last).model
    head, tower = saved.model[22], saved.model[22].cv2[0][0].bn  # 64 channels: 48 targeted
    zero = int((tower.weight.float().abs() < 0.01 * tower.weight.float().abs().max()).sum())
    assert zero >= 44, zero
    rest = [bn for bn in batchnorms(saved) if not any(bn is m for m in head.modules())]
    below = sum(int((bn.weight.float().abs() < 0.01 * bn.weight.float().abs().max()).sum()) for bn in rest)
    assert below <= 0.55 * sum(bn.num_features for bn in rest), below  # the rest at most half (and its rounding)


def test_latency_shares_and_recovery_reach_the_trainer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """make-fixtures' sparsity stage hands the latency plan's shares to the recipe (their mean for any unit they
    leave out), then trains the recovery epochs from the ramped run's last checkpoint with the same targets held
    from step one, at the recovery lr (no training: ``train`` records)."""

    from ultralytics.nn.tasks import DetectionModel

    from slimbench.model.checkpoint import save_detector
    from slimbench.pruning import pipeline, training

    start = save_detector(DetectionModel("yolo11n.yaml", nc=3, verbose=False), tmp_path / "o.pt")
    calls: list[tuple[Path, dict]] = []

    def record(model: Path, data: Path, *, name: str, **kw) -> training.TrainOutcome:
        calls.append((model, {"name": name, **kw}))
        epochs = [{"epoch": float(i + 1), "share_below": 0.5} for i in range(kw["epochs"])]
        return training.TrainOutcome(
            best=tmp_path / f"{name}_best.pt", metrics={}, last=tmp_path / f"{name}.pt", history=epochs
        )

    monkeypatch.setattr(training, "train", record)
    plan = replace(pipeline.FixturePlan(), epochs_sparsity=3, epochs_recovery=2)
    shares = (("model.23.cv2.0.0", 0.875), ("model.2", 0.5), ("model.9.cv1", 0.25))
    outcome = pipeline._sparsify(start, tmp_path / "data.yaml", plan, {"batch": 8}, lambda _: None, shares)
    (first, ramp), (second, recovery) = calls
    assert ramp["recipe"].layer_targets == shares and ramp["recipe"].target == pytest.approx(0.5416666)
    assert first == start and ramp["lr0"] == plan.sparsity_lr and ramp["epochs"] == 3 and "lrf" not in ramp
    assert second == tmp_path / "sparsity.pt" and recovery["epochs"] == 2
    assert recovery["recipe"] == replace(ramp["recipe"], ramp=0.0)
    assert (recovery["lr0"], recovery["lrf"]) == (plan.recovery_lr, plan.recovery_lrf)
    assert outcome.last == tmp_path / "recovery.pt" and [h["epoch"] for h in outcome.history] == [1, 2, 3, 4, 5]

    calls.clear()
    pipeline._sparsify(start, tmp_path / "data.yaml", replace(plan, epochs_recovery=0), {})
    assert len(calls) == 1 and calls[0][1]["recipe"].layer_targets == ()
    assert calls[0][1]["recipe"].target == plan.sparsity_target
    assert "val" not in ramp and "val" not in recovery and "val" not in calls[0][1]  # every epoch: ultralytics'

    calls.clear()  # validation after the last epoch only: both stages, and the subgradient's one
    pipeline._sparsify(start, tmp_path / "data.yaml", replace(plan, val_each_epoch=False), {}, lambda _: None)
    pipeline._sparsify(
        start, tmp_path / "d.yaml", replace(plan, sparsity_method="subgradient", val_each_epoch=False), {}
    )
    assert [kw["val"] for _, kw in calls] == [False, False, False]


def test_finetune_recipe_from_the_plan_and_its_refusals() -> None:
    """The plan's fine-tune recipe as ultralytics' arguments: auto alone, a named optimizer with its lr and warm-up;
    an lr with auto (ultralytics ignores it without a word) and out-of-range values are refused."""
    from slimbench.core.errors import SlimbenchError
    from slimbench.pruning.fixture_plan import FixturePlan, finetune_recipe, stage_validation

    plan = FixturePlan()
    assert finetune_recipe(plan) == {"optimizer": "auto"} and stage_validation(plan) == {}
    sgd = replace(plan, finetune_optimizer="SGD", finetune_lr0=0.01, finetune_warmup_epochs=0.0, val_each_epoch=False)
    assert finetune_recipe(sgd) == {"optimizer": "SGD", "lr0": 0.01, "warmup_epochs": 0.0}
    assert stage_validation(sgd) == {"val": False}
    assert finetune_recipe(replace(plan, finetune_optimizer="AdamW")) == {"optimizer": "AdamW"}
    for bad, needle in (
        (replace(plan, finetune_lr0=0.01), "auto sets its own lr"),
        (replace(sgd, finetune_lr0=0.0), "must be > 0"),
        (replace(sgd, finetune_warmup_epochs=-1.0), "must be >= 0"),
    ):
        with pytest.raises(SlimbenchError, match=needle):
            finetune_recipe(bad)


def test_latency_plan_gives_the_sparsity_shares(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The plan's kept widths become each group's share, named by its root layer, and the manifest record
    carries the rounds and the plan; no plan for a quick build or without per-layer targets (no timing here: the
    measured pruning is replaced by a fixed result)."""

    from ultralytics.nn.tasks import DetectionModel

    from slimbench.model.checkpoint import save_detector
    from slimbench.pruning import latency_target, pipeline
    from slimbench.pruning.latency_sparsity import latency_plan_shares

    start = save_detector(DetectionModel("yolov8n.yaml", nc=3, verbose=False), tmp_path / "o.pt")
    seen: dict = {}

    def fixed(yolo, target, settings, cache_dir, workdir, log=print):
        seen.update(yolo=yolo, target=target, settings=settings, cache=cache_dir)
        result = latency_target.LatencyResult(0.0, True, 8, target=target, runtime=settings.runtime)
        result.plan = {"model.2": (32, 8), "model.22.cv2.0.0": (64, 64)}
        result.member_bns = {
            "model.2": ["model.2.cv1.bn", "model.4.cv1.bn"],
            "model.22.cv2.0.0": ["model.22.cv2.0.0.bn"],
        }
        result.rounds, result.chosen = [{"planned_for": target, "predicted": target, "measured": 0.44}], 0
        result.params_before, result.params_after = 100, 20
        return yolo, result

    monkeypatch.setattr(latency_target, "prune_to_latency", fixed)
    yolo = load_detector(start)
    shares, record = latency_plan_shares(yolo, 0.43, "torch", 2, 8, cache_dir=tmp_path / "cache", log=lambda _: None)
    assert dict(shares) == {"model.2.cv1": 0.75, "model.4.cv1": 0.75, "model.22.cv2.0.0": 0.0}
    assert seen["target"] == 0.43 and seen["settings"].runtime == "torch" and seen["settings"].threads == 2
    assert seen["settings"].imgsz == 640 and seen["settings"].batch == 1 and seen["cache"] == tmp_path / "cache"
    assert seen["yolo"] is yolo
    assert record["measured"] == 0.44 and record["params_ratio"] == 0.2 and record["plan"]["model.2"] == [32, 8]

    assert pipeline.FixturePlan().sparsity_target_latency is None  # the bundled plan: one share in every layer
    assert pipeline._latency_shares(start, pipeline.FixturePlan(), print) == ((), None)
    plan = replace(pipeline.FixturePlan(), sparsity_target_latency=0.43, latency_max_layer_ratio=0.5)
    planned, record = pipeline._latency_shares(start, plan, lambda _: None)
    assert dict(planned) == dict(shares) and seen["settings"].runtime == "onnxruntime"
    assert seen["settings"].max_layer_ratio == 0.5 and record["max_layer_ratio"] == 0.5
    assert pipeline._latency_shares(start, pipeline.FixturePlan.quick(), print) == ((), None)
    assert pipeline._latency_shares(start, replace(plan, sparsity_per_layer=False), print) == ((), None)
    assert pipeline._latency_shares(start, replace(plan, sparsity_method="subgradient"), print) == ((), None)


def test_a_reused_original_keeps_the_curve_recorded_beside_it(tmp_path: Path) -> None:
    """--original RUN/weights/best.pt of an earlier (interrupted) build: the curve in RUN/convergence.json is
    judged by the plan's rule; a checkpoint with no curve beside it is recorded as trained outside the build."""
    import json

    from slimbench.pruning.pipeline import FixturePlan
    from slimbench.pruning.reference_stage import reused_convergence

    run = tmp_path / "runs" / "original"
    (run / "weights").mkdir(parents=True)
    best = run / "weights" / "best.pt"
    best.write_bytes(b"not read")
    curve = [0.5, 0.7] + [0.8] * 80  # flat from epoch 3: the rule's window closes at 13, its floor at 72
    (run / "convergence.json").write_text(json.dumps(curve))
    record = reused_convergence(tmp_path / "out", best, FixturePlan(), best)
    assert record["reused"] and record["converged"] and record["stopping_epoch"] == 72 == record["min_epochs"]
    assert record["curve_map50_95"] == curve and record["best_map50_95"] == 0.8
    bare = tmp_path / "elsewhere.pt"
    bare.write_bytes(b"x")
    assert reused_convergence(tmp_path / "out", bare, FixturePlan(), bare)["rule"].startswith("unknown")


def test_a_rebuild_from_the_same_original_reuses_its_control_only_when_it_would_train_the_same(
    tmp_path: Path,
) -> None:
    """--original with the manifest of an earlier build in --out: the control it records is reused when the original
    (sha256), the data, the recipe and the epoch budget are the same, and trained again when any of them differs."""
    from slimbench.pruning.pipeline import FixturePlan
    from slimbench.pruning.reference_stage import control_epochs, reused_control

    out = tmp_path / "out"
    out.mkdir()
    given = tmp_path / "original.pt"
    given.write_bytes(b"the original's bytes")
    plan = FixturePlan()
    control = {"epochs": control_epochs(plan), "map50_95": 0.93, "sha256": "c" * 64}

    def write(plan_record: dict, original_sha: str, record: dict | None = control) -> None:
        manifest = {"plan": plan_record, "variants": {"original": {"sha256": original_sha}}}
        (out / "manifest.json").write_text(json.dumps({**manifest, **({"control": record} if record else {})}))

    assert reused_control(out, given, plan) is None  # no manifest yet
    write(asdict(replace(plan, sparsity_target_latency=0.6)), sha256_of(given))  # only the pruning line differs
    assert reused_control(out, given, plan) == {**control, "reused": True}
    write(asdict(plan), "0" * 64)
    assert reused_control(out, given, plan) is None  # another original
    write(asdict(replace(plan, train_images=500)), sha256_of(given))
    assert reused_control(out, given, plan) is None  # other data
    write(asdict(plan), sha256_of(given))
    assert reused_control(out, given, replace(plan, epochs_finetune=30)) is None  # another budget
    assert reused_control(out, given, replace(plan, finetune_optimizer="SGD")) is None  # another recipe
    assert reused_control(out, given, replace(plan, val_each_epoch=False)) is None  # keeps its last epoch, not best
    older = {k: v for k, v in asdict(plan).items() if not k.startswith("finetune_") and k != "val_each_epoch"}
    write(older, sha256_of(given))  # a manifest from before those knobs: it trained with their defaults
    assert reused_control(out, given, plan) == {**control, "reused": True}
    write(asdict(plan), sha256_of(given), record=None)
    assert reused_control(out, given, plan) is None  # built with --no-control


@pytest.mark.slow
@pytest.mark.parametrize("method", ["prox", "subgradient", "train"])
def test_sparsify_and_train_take_a_pruned_checkpoint_as_it_is(
    trained: Path, tiny_data: Path, tmp_path: Path, method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sparsifying a pruned checkpoint (a second round of pruning), or training it on, trains that model, not a model
    rebuilt from its YAML, whose widths are the unpruned ones: ultralytics would load the few tensors that still fit
    and leave the rest at random."""
    pruned = tmp_path / "pruned.pt"
    assert main(["prune", str(trained), "--ratio", "0.5", "--out", str(pruned)]) == 0
    out = tmp_path / "sparse.pt"
    if method == "train":  # `train --model CKPT` goes on training a checkpoint
        args = ["train", "--model", str(pruned)]
    else:
        args = ["sparsify", str(pruned), "--method", method, "--sparsity", "0.001" if method == "subgradient" else "4"]
    args += ["--data", str(tiny_data), "--epochs", "1", "--imgsz", "128", "--batch", "8"]
    capsys.readouterr()
    assert main([*args, "--project", str(tmp_path / "runs"), "--out", str(out)]) == 0
    start, saved = load_detector(pruned).model, load_detector(out).model
    said = f"does not fit its YAML (pruned): trained as it is, {count_params(start):,} parameters"
    assert said in capsys.readouterr().out
    assert count_params(saved) == count_params(start) < 0.4 * count_params(load_detector(trained).model)
    for (name, a), (_, b) in zip(start.state_dict().items(), saved.state_dict().items(), strict=True):
        assert a.shape == b.shape, name
    # trained from the pruned weights, not from random ones: one epoch at a small lr leaves the stem's weights close
    w0, w1 = start.model[0].conv.weight.float(), saved.model[0].conv.weight.float()
    assert not torch.equal(w0, w1) and (w1 - w0).norm() < 0.5 * w0.norm()


@pytest.mark.slow
def test_sparsify_on_other_classes_rebuilds_a_full_model_and_refuses_a_pruned_one(
    trained: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On data with another class count the head must be rebuilt, as ultralytics does: sound for a model that fits its
    YAML, and one line for a pruned one, whose other tensors would not fit."""
    import yaml

    spec = yaml.safe_load(tiny_data.read_text())
    names = dict(spec["names"]) if isinstance(spec["names"], dict) else dict(enumerate(spec["names"]))
    spec["path"] = str(Path(spec.get("path") or tiny_data.parent).resolve())
    spec["names"] = {**names, len(names): "extra", len(names) + 1: "more"}
    spec["nc"] = len(spec["names"])
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(spec))
    pruned = tmp_path / "pruned.pt"
    assert main(["prune", str(trained), "--ratio", "0.5", "--out", str(pruned)]) == 0
    common = ["--data", str(other), "--epochs", "1", "--imgsz", "128", "--batch", "8", "--project", str(tmp_path / "r")]
    capsys.readouterr()
    assert main(["sparsify", str(pruned), *common, "--out", str(tmp_path / "p.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "do not fit a model rebuilt from its YAML" in err, err
    assert not (tmp_path / "p.pt").exists()
    assert main(["sparsify", str(trained), *common, "--out", str(tmp_path / "t.pt")]) == 0
    saved = load_detector(tmp_path / "t.pt").model
    assert saved.nc == len(names) + 2 and count_params(saved) > count_params(load_detector(trained).model)


@pytest.mark.slow
def test_finetune_keeps_the_pruned_shape(trained: Path, tiny_data: Path, tmp_path: Path) -> None:
    pruned = tmp_path / "pruned.pt"
    assert main(["prune", str(trained), "--ratio", "0.5", "--out", str(pruned)]) == 0
    out = tmp_path / "ft.pt"
    assert (
        main(
            [
                "finetune",
                str(pruned),
                "--data",
                str(tiny_data),
                "--epochs",
                "1",
                "--imgsz",
                "128",
                "--batch",
                "8",
                "--project",
                str(tmp_path / "runs"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    p_pruned, p_ft = count_params(load_detector(pruned).model), count_params(load_detector(out).model)
    assert p_ft == p_pruned
    assert p_ft < 0.4 * count_params(load_detector(trained).model)
    # trained for real: weights moved away from the pruned ones
    w0 = next(load_detector(pruned).model.parameters()).float()
    w1 = next(load_detector(out).model.parameters()).float()
    assert not torch.equal(w0, w1)


@pytest.mark.slow
def test_make_fixtures_quick_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole build, with a named fine-tune recipe (SGD) and validation after each stage's last epoch only."""
    out = tmp_path / "fixtures"
    recipe = ["--finetune-optimizer", "SGD", "--finetune-lr0", "0.02", "--finetune-warmup-epochs", "0"]
    argv = ["make-fixtures", "--quick", "--out", str(out), "--workdir", str(tmp_path / "work")]
    assert main([*argv, *recipe, "--final-val-only"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    v = manifest["variants"]
    assert set(v) == {"original", "pruned", "finetuned"}
    for name, rec in v.items():
        path = out / rec["path"]
        assert path.is_file() and sha256_of(path) == rec["sha256"], name
        assert rec["params"] == count_params(load_detector(path).model)
        for key in ("map50", "map50_95", "gflops_at_640", "file_bytes"):
            assert key in rec
    assert v["pruned"]["params"] == v["finetuned"]["params"] < 0.4 * v["original"]["params"]
    assert v["pruned"]["gflops_at_640"] < 0.5 * v["original"]["gflops_at_640"]
    assert v["pruned"]["file_bytes"] < 0.45 * v["original"]["file_bytes"]  # both FP16
    assert manifest["pruning"]["channels_removed_pct"] >= 45
    assert manifest["versions"]["ultralytics"] and manifest["dataset"]["seed"] == 0
    from slimbench.measure.timing import available_cpus

    assert manifest["train_threads"] == available_cpus()  # not ultralytics' cpus - 1 (one idle core on two)
    assert (out / "images" / "scene.jpg").is_file() and (out / "models" / "bn_gamma_hist.png").is_file()
    sparse, pruning = manifest["sparse"], manifest["pruning"]
    plan = manifest["plan"]
    assert sparse["method"] == "prox" and sparse["recovery_epochs"] == plan["epochs_recovery"] == 1
    assert len(sparse["history"]) == plan["epochs_sparsity"] + plan["epochs_recovery"]
    for key in ("gamma_before", "gamma_after"):
        assert 0.0 <= sparse[key]["share_below_threshold"] <= 1.0 and sparse[key]["channels"] > 1000
    assert 0.0 <= sparse["map50_95"] <= 1.0
    assert pruning["method"] == "threshold" and pruning["compensated"] is True
    assert pruning["removed_group_channels"] <= pruning["below_threshold"] <= pruning["group_channels"]
    assert pruning["map50_95_before_finetune"] == v["pruned"]["map50_95"]
    # the original trains until the convergence rule stops it (quick: patience 1, any gain too small: epoch 2 of 3)
    conv = manifest["original_training"]
    assert manifest["schema"] == 2 and conv["converged"] is True and conv["stopping_epoch"] == 2
    assert conv["epochs_trained"] == 2 == len(conv["curve_map50_95"]) and conv["cap_epochs"] == plan["epochs_original"]
    assert conv["best_map50_95"] == max(conv["curve_map50_95"])
    control = manifest["control"]  # the equal-budget control: as many more epochs as the pruning line adds
    assert control["epochs"] == plan["epochs_sparsity"] + plan["epochs_recovery"] + plan["epochs_finetune"]
    assert 0.0 <= control["map50_95"] <= 1.0 and len(control["sha256"]) == 64
    # the recipe reached the fine-tune and the control, validation-only-at-the-end every stage but the original
    assert (plan["finetune_optimizer"], plan["finetune_lr0"], plan["finetune_warmup_epochs"]) == ("SGD", 0.02, 0.0)
    runs = {p.parent.name: yaml.safe_load(p.read_text()) for p in (tmp_path / "work" / "runs").glob("*/args.yaml")}
    assert set(runs) == {"original", "control", "sparsity", "recovery", "finetune"}
    for name in ("finetune", "control"):
        assert (runs[name]["optimizer"], runs[name]["lr0"], runs[name]["warmup_epochs"]) == ("SGD", 0.02, 0.0), name
    assert {name: args["val"] for name, args in runs.items()} == {
        "original": True,
        "control": False,
        "sparsity": False,
        "recovery": False,
        "finetune": False,
    }
    assert all("map50_95" in h for h in sparse["history"])  # each stage's one epoch is its last: validated
    # a second run refuses to overwrite what the first one wrote
    before = (out / "manifest.json").read_bytes()
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "manifest.json").read_bytes() == before


@pytest.mark.slow
def test_make_fixtures_rebuilds_the_later_stages_from_a_given_original(trained: Path, tmp_path: Path) -> None:
    """--original skips training one and keeps the given checkpoint byte for byte (its sha256 pin stays valid)."""
    out = tmp_path / "fixtures"
    argv = ["make-fixtures", "--quick", "--out", str(out), "--workdir", str(tmp_path / "work")]
    assert main([*argv, "--original", str(trained)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["variants"]["original"]["sha256"] == sha256_of(trained) == manifest["original_reused"]["sha256"]
    assert "train original" not in manifest["stage_seconds"] and "sparsity training" in manifest["stage_seconds"]
    assert manifest["variants"]["pruned"]["params"] < manifest["variants"]["original"]["params"]
    assert manifest["original_training"]["reused"] is True and "curve_map50_95" not in manifest["original_training"]
    # rebuilt again into the same folder from its own original: the convergence record is carried over
    first = {**manifest["original_training"]}
    (out / "manifest.json").write_text(json.dumps({**manifest, "original_training": {"stopping_epoch": 41}}))
    kept = out / "original_kept.pt"
    kept.write_bytes((out / manifest["variants"]["original"]["path"]).read_bytes())
    assert main([*argv, "--original", str(kept), "--force"]) == 0
    again = json.loads((out / "manifest.json").read_text())["original_training"]
    assert again == {"stopping_epoch": 41, "reused": True} != first
    before = (out / "manifest.json").read_text()
    assert main([*argv, "--force", "--original", str(tmp_path / "missing.pt")]) == 2
    assert (out / "manifest.json").read_text() == before  # nothing lost


@pytest.mark.slow
@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolo26n.yaml"])
def test_make_fixtures_quick_for_yolo11_and_yolo26(cfg: str, tmp_path: Path) -> None:
    """The whole pipeline for the newer families: train, sparsify, prune, fine-tune with the shape kept (YOLO26's
    end-to-end head included), and validate every variant."""
    out = tmp_path / "fixtures"
    rc = main(["make-fixtures", "--quick", "--model", cfg, "--out", str(out), "--workdir", str(tmp_path / "work")])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["plan"]["model_cfg"] == cfg and f"--model {cfg}" in manifest["created_by"]
    pruning = manifest["pruning"]  # Network Slimming's rule, as for YOLOv8: no fallback to a per-layer ratio
    assert pruning["method"] == "threshold" and pruning["compensated"] is True
    assert 0 < pruning["removed_group_channels"] <= pruning["below_threshold"] <= pruning["group_channels"]
    v = manifest["variants"]
    for name, rec in v.items():
        net = load_detector(out / rec["path"]).model
        assert rec["params"] == count_params(net), name
        assert 0.0 <= rec["map50_95"] <= 1.0, name  # validation ran on every variant
        assert (getattr(net.model[-1], "one2one_cv2", None) is not None) == cfg.startswith("yolo26"), name
    assert v["pruned"]["params"] == v["finetuned"]["params"] < 0.45 * v["original"]["params"]
    assert v["pruned"]["gflops_at_640"] < 0.5 * v["original"]["gflops_at_640"]
    w0 = next(load_detector(out / v["pruned"]["path"]).model.parameters()).float()
    w1 = next(load_detector(out / v["finetuned"]["path"]).model.parameters()).float()
    assert not torch.equal(w0, w1), "fine-tuning must have trained the pruned model"


def test_plan_layer_shares_reach_the_recipe() -> None:
    """``sparsity_layer_shares`` override the uniform share in the layers they name (the sizes between two uniform
    shares); the uniform share stays the target of every other layer."""
    from slimbench.pruning import pipeline

    plan = replace(pipeline.FixturePlan(), sparsity_layer_shares=(("model.22", 0.75),))
    recipe = pipeline._prox_recipe(plan)
    assert recipe.layer_targets == (("model.22", 0.75),) and recipe.target == plan.sparsity_target
    latency = (("model.2", 0.5),)
    assert pipeline._prox_recipe(plan, latency).layer_targets == latency  # a latency plan's shares rule
    assert pipeline._prox_recipe(pipeline.FixturePlan()).layer_targets == ()


@pytest.mark.parametrize(
    ("shares", "knobs", "needle"),
    [
        ((("model.99", 0.75),), {}, "sparsity_layer_shares (--layer-target) model.99"),
        ((("model.22", 1.5),), {}, "model.22=1.5"),
        ((("model.22", 0.75),), {"sparsity_target_latency": 0.5}, "not with sparsity_target_latency"),
        ((("model.22", 0.75),), {"sparsity_method": "subgradient"}, "only with sparsity_method 'prox'"),
        ((("model.22", 0.75),), {"sparsity_per_layer": False}, "needs a per-layer target share"),
    ],
)
def test_plan_layer_shares_refused_before_any_work(tmp_path: Path, shares: tuple, knobs: dict, needle: str) -> None:
    """A mistyped layer or an unusable share stops make_fixtures in one line before the dataset or any training;
    the same shares, well formed, pass the check."""
    import re

    from slimbench.core.errors import SlimbenchError
    from slimbench.pruning import pipeline

    plan = replace(pipeline.FixturePlan.quick(), sparsity_target=0.7, sparsity_per_layer=True)
    pipeline._check_layer_shares(replace(plan, sparsity_layer_shares=(("model.22", 0.75),)), None)
    with pytest.raises(SlimbenchError, match=re.escape(needle)):
        pipeline.make_fixtures(tmp_path / "out", replace(plan, sparsity_layer_shares=shares, **knobs), tmp_path / "w")
    assert not (tmp_path / "w").exists() and not (tmp_path / "out").exists()

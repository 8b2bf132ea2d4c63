"""The reference variants, built end to end: synthetic data -> original -> sparsity -> prune -> fine-tune.

``slimbench make-fixtures`` runs :func:`make_fixtures`; the committed fixtures/models/*.pt and manifest.json are
its output, and the command reproduces them.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import atomic_write_bytes
from slimbench.core.versions import module_version
from slimbench.measure.timing import available_cpus
from slimbench.model.checkpoint import load_detector, save_detector, sha256_of
from slimbench.pruning.fixture_plan import FixturePlan, finetune_recipe, stage_validation
from slimbench.pruning.further_round import EarlierRound, earlier_round
from slimbench.pruning.reference_stage import (
    control_run,
    reused_control,
    reused_convergence,
    train_original,
    validate_map,
)

if TYPE_CHECKING:
    from slimbench.pruning.sparsity import SparsityRecipe

VARIANT_NAMES = ("original", "pruned", "finetuned")


def _library_versions() -> dict[str, str]:
    """What the imported modules say they are (``__version__``), as the manifest has always recorded them."""
    modules = ("torch", "ultralytics", "torch_pruning", "slimbench")
    return {"python": platform.python_version(), **{m: module_version(m) for m in modules}}


def write_sample_images(folder: Path, plan: FixturePlan) -> list[Path]:
    """The scene image for the detection checks and, in ``agreement/``, more scenes for agreement with the reference.

    All deterministic from the plan's seeds; labels are written beside them (the suite does not need them).
    """
    from slimbench.data.synthetic import make_scene

    paths = [
        make_scene(
            folder / "scene.jpg",
            folder / "scene.txt",
            size=plan.scene_size,
            n_objects=plan.scene_objects,
            seed=plan.scene_seed,
        )
    ]
    for i in range(plan.agreement_scenes):
        paths.append(
            make_scene(
                folder / "agreement" / f"scene_{i:02d}.jpg",
                folder / "agreement" / f"scene_{i:02d}.txt",
                size=plan.scene_size,
                n_objects=plan.scene_objects - 6 + (i % 4) * 4,
                seed=plan.scene_seed + 1 + i,
            )
        )
    return paths


def _prox_recipe(plan: FixturePlan, layer_targets: tuple[tuple[str, float], ...] = ()) -> SparsityRecipe:
    """The plan's proximal recipe; ``layer_targets`` (the latency plan's shares) replace ``sparsity_target`` in the
    layers they name, and their mean is the share of any unit they leave out. Without them, the plan's own
    ``sparsity_layer_shares`` replace ``sparsity_target`` in the layers they name."""
    from slimbench.pruning.sparsity import SparsityRecipe

    target = plan.sparsity_target
    if layer_targets:
        target = sum(v for _, v in layer_targets) / len(layer_targets)
    else:
        layer_targets = tuple((str(n), float(v)) for n, v in plan.sparsity_layer_shares)
    return SparsityRecipe(
        lam=plan.sparsity,
        ramp=plan.sparsity_ramp,
        taylor=plan.sparsity_taylor,
        target=target,
        per_layer=plan.sparsity_per_layer,
        round_to=plan.round_to or 1,
        layer_targets=layer_targets,
    )


def _detection_model(checkpoint: Path | None, plan: FixturePlan) -> tuple[Any, str]:
    """The detection model sparsity will start from, and its name: ``checkpoint``, or one built from the plan's
    YAML for the synthetic data's classes (the layers and widths of the original it will train: the class towers'
    width follows the class count)."""
    if checkpoint is not None:
        return load_detector(checkpoint).model, str(checkpoint)
    from ultralytics.nn.tasks import DetectionModel

    from slimbench.data.synthetic import CLASS_NAMES

    return DetectionModel(plan.model_cfg, nc=len(CLASS_NAMES), verbose=False), plan.model_cfg


def _widths_plan(plan: FixturePlan, first: Path | None) -> FixturePlan:
    """``plan`` with ``plan.widths_from``'s shares as its per-layer shares, so the manifest records the cut it
    trained; an unfit checkpoint is refused now, before the original trains."""
    if plan.widths_from is None:
        return plan
    from slimbench.pruning.sparsity import SparsityRecipe
    from slimbench.pruning.width_shares import widths_plan

    cap = min(SparsityRecipe.max_layer_target, plan.max_layer_ratio)  # the most of a unit pushed, and removed
    shares = widths_plan(_detection_model(first, plan)[0], plan.widths_from, plan.round_to or 1, cap)
    return replace(plan, sparsity_layer_shares=shares)


def _check_layer_shares(plan: FixturePlan, original: Path | None) -> None:
    """``plan.sparsity_layer_shares`` refused before any work: a share out of range, no per-layer target to override,
    or a name that holds no BatchNorm of the model (a typo would otherwise target nothing, after an hour's training)."""
    if not plan.sparsity_layer_shares:
        return
    from slimbench.pruning.sparsity import unmatched_layer_targets

    if plan.sparsity_method != "prox":
        raise SlimbenchError("sparsity_layer_shares: only with sparsity_method 'prox'")
    if plan.sparsity_target_latency is not None:
        raise SlimbenchError("sparsity_layer_shares: not with sparsity_target_latency (the plan sets every share)")
    _prox_recipe(plan)  # the recipe's own checks: shares in [0, 1), a per-layer target to override
    model, source = _detection_model(original, plan)
    missing = unmatched_layer_targets(model, [n for n, _ in plan.sparsity_layer_shares])
    if missing:
        where = f"sparsity_layer_shares (--layer-target) {missing[0]}"
        raise SlimbenchError(f"{where}: no BatchNorm of {source} is under that name")


def _sparsify(
    start: Path,
    data: Path,
    plan: FixturePlan,
    common: dict[str, Any],
    log: Any = print,
    layer_targets: tuple[tuple[str, float], ...] = (),
) -> Any:
    """The sparsity stage: the proximal recipe (``plan.sparsity_method == "prox"``), then its recovery epochs, or
    the L1 subgradient. Returns the training outcome whose ``last`` is the sparse model (prox)."""
    from slimbench.pruning.training import train

    if plan.sparsity_method == "prox":
        recipe = _prox_recipe(plan, layer_targets)
        batch = plan.sparsity_batch or plan.batch
        kw = {**common, "batch": batch, **stage_validation(plan)}
        ramped = train(
            start, data, epochs=plan.epochs_sparsity, name="sparsity", recipe=recipe, lr0=plan.sparsity_lr, **kw
        )
        if plan.epochs_recovery <= 0 or ramped.last is None:
            return ramped
        log(f"[make-fixtures] sparsity: {plan.epochs_recovery} recovery epochs, targets held, lr {plan.recovery_lr:g}")
        recovered = train(
            ramped.last,
            data,
            epochs=plan.epochs_recovery,
            name="recovery",
            recipe=replace(recipe, ramp=0.0),  # the targeted channels are at zero already: hold them from step one
            lr0=plan.recovery_lr,
            lrf=plan.recovery_lrf,
            **kw,
        )
        history = ramped.history + [{**h, "epoch": h["epoch"] + plan.epochs_sparsity} for h in recovered.history]
        return replace(recovered, history=history)
    if plan.sparsity_method != "subgradient":
        raise SlimbenchError(f"unknown sparsity method {plan.sparsity_method!r} (prox or subgradient)")
    return train(
        start,
        data,
        epochs=plan.epochs_sparsity,
        name="sparsity",
        sparsity=plan.sparsity,
        **common,
        **stage_validation(plan),
    )


def _prune(net: Any, plan: FixturePlan) -> Any:
    """The prune stage: Network Slimming's threshold rule when the plan sets one, else a ratio."""
    from slimbench.pruning.structural import prune_detection_model
    from slimbench.pruning.threshold import threshold_prune

    if plan.prune_threshold is not None or plan.prune_target_ratio is not None:
        return threshold_prune(
            net,
            plan.prune_threshold if plan.prune_target_ratio is None else None,
            target_ratio=plan.prune_target_ratio,
            max_layer_ratio=plan.max_layer_ratio,
            round_to=plan.round_to,
            compensate=plan.compensate,
        )
    return prune_detection_model(net, plan.ratio, global_pruning=plan.global_pruning, round_to=plan.round_to)


def threshold_record(result: Any) -> dict[str, Any]:
    """The threshold rule's figures for the manifest (empty for ratio pruning)."""
    from slimbench.pruning.threshold import ThresholdResult

    if not isinstance(result, ThresholdResult):
        return {"method": "ratio"}
    return {
        "method": "threshold",
        "threshold_of_layer_max": round(result.threshold, 6),
        "group_channels": result.group_channels,
        "below_threshold": result.below_threshold,
        "removed_group_channels": result.removed,
        "compensated": result.compensated,
    }


def sparse_stage_record(
    original: Path, sparse: Path, plan: FixturePlan, history: list[dict[str, float]], sparse_map: dict[str, float]
) -> dict[str, Any]:
    """The manifest's sparse stage: BN |gamma| statistics before and after, per-epoch progress, the sparse mAP."""
    from slimbench.pruning.sparsity import gamma_stats

    thr = plan.prune_threshold or 0.01
    return {
        "method": plan.sparsity_method,
        "lambda": plan.sparsity,
        "epochs": plan.epochs_sparsity,
        "recovery_epochs": plan.epochs_recovery if plan.sparsity_method == "prox" else 0,
        "gamma_before": gamma_stats(load_detector(original).model, thr),
        "gamma_after": gamma_stats(load_detector(sparse).model, thr),
        "history": [{k: round(v, 5) for k, v in h.items()} for h in history],
        **sparse_map,
    }


def _latency_shares(
    start: Path, plan: FixturePlan, log: Any
) -> tuple[tuple[tuple[str, float], ...], dict[str, Any] | None]:
    """The sparsity shares of the latency plan, when the plan asks for one (prox, per layer), and its record: the
    one recorded in ``plan.latency_plan_from``, else one measured now."""
    if plan.latency_plan_from is not None:
        from slimbench.pruning.latency_sparsity import recorded_plan_shares

        return recorded_plan_shares(Path(plan.latency_plan_from), load_detector(start).model)
    if plan.sparsity_target_latency is None or plan.sparsity_method != "prox" or not plan.sparsity_per_layer:
        return (), None
    from slimbench.pruning.latency_sparsity import latency_plan_shares

    return latency_plan_shares(
        load_detector(start),
        plan.sparsity_target_latency,
        plan.latency_runtime,
        available_cpus(),
        plan.round_to or 1,
        log=log,
        max_layer_ratio=plan.latency_max_layer_ratio,
    )


@dataclass(frozen=True)
class _Reused:
    """A trained original given to make_fixtures, in the shape of a training run's outputs."""

    best: Path
    last: Path
    source: Path


def _reused_original(original: str | Path | None, workdir: Path) -> _Reused | None:
    """Copy a given original into the workdir first (``--force`` may overwrite the file it came from)."""
    if original is None:
        return None
    src = Path(original)
    if not src.is_file():
        raise SlimbenchError(f"{src}: --original does not exist")
    workdir.mkdir(parents=True, exist_ok=True)
    dst = workdir / "original_given.pt"
    shutil.copyfile(src, dst)
    load_detector(dst)  # one clear line now if it is not a detector checkpoint, not after the dataset is built
    return _Reused(best=dst, last=dst, source=src)


def _round_record(earlier: EarlierRound, data: Path, plan: FixturePlan, device: str, workdir: Path) -> dict[str, Any]:
    """A further round's place in the line: its number, the model it started from, and the earlier rounds."""
    rounds = earlier.rounds()
    start = {
        "path": str(earlier.folder / rounds[-1]["variants"]["finetuned"]["path"]),
        "sha256": sha256_of(earlier.start),
    }
    start.update(validate_map(earlier.start, data, plan.imgsz, plan.batch, device, workdir))
    return {"round": len(rounds) + 1, "start": start, "earlier_rounds": rounds}


def make_fixtures(
    out: str | Path,
    plan: FixturePlan,
    workdir: str | Path,
    device: str = "cpu",
    force: bool = False,
    log: Any = print,
    original: str | Path | None = None,
    continue_from: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Build original/pruned/fine-tuned checkpoints, the scene image and manifest.json under ``out``.

    Any family the pruner handles (``plan.model_cfg``: yolov8/yolo11/yolo26, n..x); the bundled set is YOLOv8n.
    ``original``: a trained original to start from instead of training one (kept byte for byte; the manifest
    records its sha256), e.g. to rebuild the later stages without the original's half hour.
    ``continue_from``: a set make-fixtures wrote; this run is a further round on its fine-tuned model, measured
    against its original (kept byte for byte), with no control; the manifest carries the earlier rounds.
    ``command``: the command line that asked for this build, recorded as ``created_by`` (else one derived from
    ``plan``, which names only the choices that change what is built most).
    """
    from slimbench.data.synthetic import make_dataset
    from slimbench.model.static_metrics import count_params, gflops
    from slimbench.pruning.bn_hist import plot_bn_gammas
    from slimbench.pruning.sparsity import bn_gammas
    from slimbench.pruning.training import train

    out, workdir = Path(out), Path(workdir)
    if original is not None and continue_from is not None:
        raise SlimbenchError("--original and --continue-from: a further round's original is the earlier set's")
    reused = _reused_original(original, workdir)
    earlier = earlier_round(continue_from, workdir, plan)
    if earlier is not None:
        plan = replace(plan, control=False)  # an equal-budget control is defined for the first round only
    first = earlier.start if earlier else reused.best if reused else None  # what sparsity starts from, if given
    plan = _widths_plan(plan, first)
    _check_layer_shares(plan, first)
    finetune_recipe(plan)  # an unfit fine-tune recipe is refused now, not after the sparsity stage
    if plan.latency_plan_from is not None:  # refused now, not after an hour of training an original
        from slimbench.pruning.latency_sparsity import recorded_plan_shares

        recorded_plan_shares(Path(plan.latency_plan_from), _detection_model(first, plan)[0])
    targets = [out / "models" / f"{n}.pt" for n in VARIANT_NAMES] + [out / "manifest.json"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise SlimbenchError(f"{existing[0]}: already exists; pass --force to rebuild the fixtures")
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    stages: dict[str, float] = {}

    def stage(name: str, since: float) -> float:
        now = time.time()
        stages[name] = round(now - since, 1)
        log(f"[make-fixtures] {name}: {stages[name]:.0f} s")
        return now

    data = make_dataset(
        workdir / "data", train=plan.train_images, val=plan.val_images, imgsz=plan.imgsz, seed=plan.seed
    )
    write_sample_images(out / "images", plan)
    t = stage("dataset", t0)
    common = {
        "imgsz": plan.imgsz,
        "batch": plan.batch,
        "project": workdir / "runs",
        "device": device,
        "seed": plan.seed,
        "close_mosaic": plan.close_mosaic,
        "channels_last": plan.channels_last,
        "bf16": plan.bf16,
    }
    if earlier is not None:
        original = _Reused(best=earlier.original, last=earlier.original, source=earlier.folder)
        convergence = {**earlier.manifest.get("original_training", {}), "reused": True}
    elif reused is None:
        original, convergence = train_original(data, plan, common)
        t = stage("train original", t)
    else:
        original, convergence = reused, reused_convergence(out, reused.best, plan, reused.source)
    start = earlier.start if earlier is not None else original.best  # what this round sparsifies
    control = reused_control(out, original.best, plan) if plan.control and reused is not None else None
    if control is not None:
        log(f"[make-fixtures] control: reused from {out / 'manifest.json'} (same original, data, recipe and budget)")
    elif plan.control:
        control = control_run(original.best, data, plan, common, workdir, device)
        t = stage("control", t)
    shares, latency_plan = _latency_shares(start, plan, log)
    if latency_plan is not None:
        t = stage("latency plan", t)
    sparse = _sparsify(start, data, plan, common, log, shares)
    sparse_ckpt = sparse.last if plan.sparsity_method == "prox" and sparse.last else sparse.best
    g_before = bn_gammas(load_detector(start).model)
    g_after = bn_gammas(load_detector(sparse_ckpt).model)
    plot_bn_gammas(
        g_before,
        g_after,
        workdir / "runs" / "sparsity" / "bn_gamma_hist.png",
        title=f"BN |gamma| before/after sparsity training ({plan.sparsity_method}, lambda={plan.sparsity})",
    )
    t = stage("sparsity training", t)
    model = load_detector(sparse_ckpt)
    result = _prune(model.model, plan)
    pruned_path = workdir / "pruned.pt"
    save_detector(model, pruned_path)
    t = stage("prune", t)
    finetuned = train(
        pruned_path,
        data,
        epochs=plan.epochs_finetune,
        name="finetune",
        keep_shape=True,
        **common,
        **finetune_recipe(plan),
        **stage_validation(plan),
    )
    ft_params = count_params(load_detector(finetuned.best).model)
    if ft_params != result.params_after:
        raise SlimbenchError(
            f"{finetuned.best}: fine-tuning changed the parameter count "
            f"({result.params_after} -> {ft_params}); the pruned shape was not kept"
        )
    t = stage("fine-tune", t)

    sources = {"original": original.best, "pruned": pruned_path, "finetuned": finetuned.best}
    sparse_record = sparse_stage_record(
        start,
        sparse_ckpt,
        plan,
        sparse.history,
        validate_map(sparse_ckpt, data, plan.imgsz, plan.batch, device, workdir),
    )
    variants: dict[str, Any] = {}
    for name, src in sources.items():
        dst = out / "models" / f"{name}.pt"
        if name == "original" and (reused is not None or earlier is not None):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)  # the reused original, byte for byte (its sha256 pin stays)
        else:
            save_detector(load_detector(src), dst, half=True)  # one format and dtype (FP16), as ultralytics saves
        net = load_detector(dst).model
        variants[name] = {
            "path": str(dst.relative_to(out)),
            "sha256": sha256_of(dst),
            "file_bytes": dst.stat().st_size,
            "params": count_params(net),
            "gflops_at_640": round(gflops(net, plan.gflops_imgsz), 4),
            **validate_map(dst, data, plan.imgsz, plan.batch, device, workdir),
        }
    stage("validate", t)
    hist = workdir / "runs" / "sparsity" / "bn_gamma_hist.png"
    shutil.copyfile(hist, out / "models" / "bn_gamma_hist.png")
    quick = FixturePlan.quick()
    manifest = {
        "schema": 2,
        "created_by": command
        or "slimbench make-fixtures"
        + (" --quick" if replace(plan, model_cfg=FixturePlan.model_cfg, control=quick.control) == quick else "")
        + (f" --model {plan.model_cfg}" if plan.model_cfg != FixturePlan.model_cfg else "")
        + (
            f" --continue-from {earlier.folder}" if earlier is not None else " --no-control" if not plan.control else ""
        ),
        "plan": asdict(plan),
        **({"original_reused": {"sha256": sha256_of(reused.best)}} if reused is not None else {}),
        **(_round_record(earlier, data, plan, device, workdir) if earlier is not None else {}),
        "dataset": {
            "seed": plan.seed,
            "train": plan.train_images,
            "val": plan.val_images,
            "imgsz": plan.imgsz,
        },
        "pruning": {
            "ratio": plan.ratio,
            "global": plan.global_pruning,
            "round_to": plan.round_to,
            "seconds": round(result.seconds, 1),
            "channels_removed_pct": round(result.channels_removed_pct, 2),
            "prunable_channels_before": result.prunable_channels_before,
            "prunable_channels_after": result.prunable_channels_after,
            **threshold_record(result),
            "map50_95_before_finetune": variants["pruned"]["map50_95"],
        },
        "sparse": sparse_record,
        **({"latency_plan": latency_plan} if latency_plan is not None else {}),
        "original_training": convergence,
        **({"control": control} if control is not None else {}),
        "variants": variants,
        "versions": _library_versions(),
        "stage_seconds": stages,
        "total_seconds": round(time.time() - t0, 1),
        "train_threads": available_cpus(),  # torch threads of every training stage (slimbench.pruning.training)
    }
    if earlier is not None:
        manifest["line_seconds"] = round(earlier.line_seconds() + manifest["total_seconds"], 1)
    atomic_write_bytes(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    log(f"[make-fixtures] done in {manifest['total_seconds']:.0f} s -> {out / 'manifest.json'}")
    return manifest

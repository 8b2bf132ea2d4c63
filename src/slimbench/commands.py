"""What each ``slimbench`` subcommand does, once :mod:`slimbench.cli` has parsed its arguments.

One handler per subcommand (``cmd_prune`` for ``slimbench prune``), each taking the parsed namespace and returning the
exit code. Inputs are checked before any work (a typo is one :class:`SlimbenchError` line naming the option), and the
heavy libraries are imported inside the handlers, so ``slimbench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import atomic_copy

if TYPE_CHECKING:
    from slimbench.pruning.convergence import ConvergenceRule


def _refuse_without(option: str, given: bool, knobs: dict[str, Any]) -> None:
    """Refuse the first of ``knobs`` (option -> parsed value, None when not given) set while ``option`` is not: it
    would be ignored."""
    if not given:
        for name, value in knobs.items():
            if value is not None:
                raise SlimbenchError(f"{name}: only with {option}")


def _check_output(out: Path, inputs: Sequence[Path], force: bool) -> None:
    """Refuse an output that is one of the inputs, or that exists when --force was not given."""
    for src in inputs:
        if out.resolve() == Path(src).resolve():
            raise SlimbenchError(f"{out}: output path is the input; choose another --out")
    if out.exists() and not force:
        raise SlimbenchError(f"{out}: already exists; pass --force to overwrite it")


def _check_data(path: Path) -> None:
    if not path.is_file():
        raise SlimbenchError(f"{path}: dataset YAML not found")


_CHECKPOINT = "a detection checkpoint (.pt)"


def _check_model(
    value: str | Path,
    option: str = "",
    *,
    yaml: bool = False,
    checkpoint: bool = True,
    prunable: bool = False,
    loader: Callable[[str], Any] | None = None,
) -> Any:
    """Check a subcommand's model before any work, so a typo is one line naming it and what the subcommand takes,
    not ultralytics' traceback after the dataset is built.

    A .pt goes through the checkpoint loader (file checks before unpickling; ``loader`` defaults to load_detector)
    and is returned loaded; a YAML (``yaml``) is built offline and, with ``prunable``, checked for blocks the pruner
    handles; returns None for it.
    """
    from slimbench.model.checkpoint import MODEL_YAMLS, detector_from_yaml, load_detector

    text = str(value)
    suffix = Path(text).suffix.lower()
    try:
        if yaml and suffix in (".yaml", ".yml"):
            net = detector_from_yaml(text)
            if prunable:
                from slimbench.pruning.support import check_prunable

                check_prunable(net)
            return None
        if checkpoint and suffix == ".pt":
            return (loader or load_detector)(text)
    except SlimbenchError as e:
        named = str(e) if str(e).startswith((text, str(Path(text)))) else f"{text}: {e}"
        raise SlimbenchError(f"{option} {named}" if option else named) from None
    if not checkpoint:
        accepted = f"{MODEL_YAMLS} (a trained checkpoint goes to --original)"
    elif yaml:
        accepted = f"{_CHECKPOINT} or {MODEL_YAMLS}"
    else:
        accepted = f"{_CHECKPOINT}; a model YAML is for `slimbench train --model`"
    raise SlimbenchError(f"{option + ' ' if option else ''}{text}: not a model this command takes; expected {accepted}")


def cmd_init(a: argparse.Namespace) -> int:
    from slimbench.scaffold import InitRequest, next_steps, write

    req = InitRequest(a.dir, tuple(a.variant), a.reference, tuple(a.image), a.force)
    written = write(req, Path.cwd())
    print(f"slimbench init: wrote {len(written)} files into {a.dir}")
    print("\n".join(next_steps(a.dir)))
    return 0


def cmd_make_dataset(a: argparse.Namespace) -> int:
    from slimbench.data.synthetic import make_dataset

    yaml_path = make_dataset(a.out, train=a.train, val=a.val, imgsz=a.imgsz, seed=a.seed)
    print(f"dataset: {yaml_path}")
    return 0


def _run_training(a: argparse.Namespace, model: str, name: str, use_last: bool = False, **kw) -> Path:
    from slimbench.pruning.training import train

    outcome = train(
        model,
        a.data,
        epochs=a.epochs,
        imgsz=a.imgsz,
        batch=a.batch,
        project=a.project,
        name=name,
        device=a.device,
        seed=a.seed,
        cache=a.cache or False,
        channels_last=a.channels_last,
        bf16=a.bf16,
        **kw,
    )
    atomic_copy(outcome.last if use_last and outcome.last else outcome.best, a.out)
    m = outcome.metrics
    print(
        f"{name}: {a.out}  mAP50 {m.get('metrics/mAP50(B)', float('nan')):.3f}  "
        f"mAP50-95 {m.get('metrics/mAP50-95(B)', float('nan')):.3f}"
    )
    return a.out


def cmd_train(a: argparse.Namespace) -> int:
    rule = _convergence_rule(a)
    _check_model(a.model, "--model", yaml=True)
    _check_data(a.data)
    _check_output(a.out, [], a.force)
    if rule is None:
        _run_training(a, a.model, "train")
        return 0
    from slimbench.pruning.convergence import StopWhenConverged, convergence_record, saved_curve

    stopper = StopWhenConverged(rule)
    _run_training(a, a.model, "train", callbacks=stopper.callbacks())
    record = convergence_record(rule, stopper.curve or saved_curve(a.project / "train"))
    if record["converged"]:
        print(f"converged at epoch {record['stopping_epoch']}: {rule.describe()}")
    else:
        print(f"not converged: stopped at the cap of {rule.cap} epochs ({rule.describe()})")
    print(f"best mAP50-95 {record['best_map50_95']} at epoch {record['best_epoch']}; curve: {a.project / 'train'}")
    return 0


def _convergence_rule(a: argparse.Namespace) -> ConvergenceRule | None:
    """--until-converged's rule (None without it); each knob defaults to the bundled plan's, --min-epochs to the
    plan's share of the cap (--epochs). A knob given without --until-converged would be ignored: refused."""
    from slimbench.pruning.convergence import ConvergenceRule
    from slimbench.pruning.fixture_plan import FixturePlan, min_epochs_of

    knobs = {"--patience": a.patience, "--min-delta": a.min_delta, "--min-epochs": a.min_epochs}
    _refuse_without("--until-converged (without it training runs all --epochs)", a.until_converged, knobs)
    if not a.until_converged:
        return None
    plan = FixturePlan()
    min_epochs = a.min_epochs or min_epochs_of(a.epochs, plan.converge_min_fraction)
    if min_epochs > a.epochs:
        raise SlimbenchError(f"--min-epochs {min_epochs}: more than --epochs {a.epochs}, the cap it stops by anyway")
    patience = a.patience if a.patience is not None else plan.converge_patience
    min_delta = a.min_delta if a.min_delta is not None else plan.converge_min_delta
    return ConvergenceRule(patience, min_delta, a.epochs, min_epochs)


def _latency_shares(a: argparse.Namespace, yolo: Any) -> tuple[tuple[str, float], ...]:
    """--target-latency for sparsify: the per-layer shares of the plan that prunes ``yolo`` to that latency on
    --runtime (measured and corrected as ``prune --target-latency`` does; nothing is saved)."""
    from slimbench.measure.timing import available_cpus
    from slimbench.pruning.latency_sparsity import latency_plan_shares
    from slimbench.pruning.latency_table import DEFAULT_CACHE
    from slimbench.runtimes.registry import missing_reason

    why = missing_reason(a.runtime)
    if why:
        raise SlimbenchError(f"--runtime {a.runtime}: {why}")
    shares, record = latency_plan_shares(
        yolo,
        a.target_latency,
        a.runtime,
        available_cpus(),
        a.round_to,
        imgsz=a.imgsz_latency,
        cache_dir=a.latency_cache or DEFAULT_CACHE,
        max_layer_ratio=a.latency_max_layer_ratio,
    )
    print(
        f"latency plan on {a.runtime}: measured {record['measured']:.3f} of the original's forward "
        f"(target {a.target_latency:g}); {len(shares)} layer shares, mean {sum(v for _, v in shares) / len(shares):.2f}"
    )
    return shares


def _layer_targets(a: argparse.Namespace, model: Any, yolo: Any = None) -> tuple[tuple[str, float], ...]:
    """--target-latency's layers, then each --layer-target (a later one wins); a name that holds no BatchNorm of
    the model is refused in one line rather than targeting nothing."""
    from slimbench.pruning.sparsity import unmatched_layer_targets

    if getattr(a, "target_latency", None) is not None:
        if not a.per_layer:
            raise SlimbenchError("--target-latency: needs --per-layer (the plan gives each layer its share)")
        planned = _latency_shares(a, yolo)
        return tuple(dict([*planned, *(a.layer_target or [])]).items())
    pairs = list(a.layer_target or [])
    if pairs and not (a.per_layer and a.target > 0):
        raise SlimbenchError("--layer-target: needs --per-layer and --target > 0")
    missing = unmatched_layer_targets(model, [name for name, _ in a.layer_target or []])
    if missing:
        raise SlimbenchError(f"--layer-target {missing[0]}: no BatchNorm under that module name in {a.model}")
    return tuple(dict(pairs).items())


def cmd_sparsify(a: argparse.Namespace) -> int:
    from slimbench.model.checkpoint import load_detector
    from slimbench.pruning.bn_hist import plot_bn_gammas
    from slimbench.pruning.sparsity import SparsityRecipe, bn_gammas, share_below

    yolo = _check_model(a.model)
    start = yolo.model
    _check_data(a.data)
    _check_output(a.out, [a.model], a.force)
    before, share0 = bn_gammas(start), share_below(start, a.threshold)
    if a.method == "prox":
        layer_targets = _layer_targets(a, start, yolo)
        target = a.target
        if a.target_latency is not None and target <= 0:  # units outside the plan (none, normally) get the mean
            target = sum(v for _, v in layer_targets) / max(1, len(layer_targets))
        recipe = SparsityRecipe(
            lam=a.sparsity,
            ramp=a.ramp,
            threshold=a.threshold,
            taylor=a.taylor,
            target=target,
            per_layer=a.per_layer,
            round_to=a.round_to,
            layer_targets=layer_targets,
        )
        # the last epoch, not ultralytics' "best" (the least sparse one, by fitness)
        lrf = {} if a.lrf is None else {"lrf": a.lrf}
        out = _run_training(a, str(a.model), "sparsity", use_last=True, recipe=recipe, lr0=a.lr0, **lrf)
    elif a.layer_target or a.target_latency is not None:
        raise SlimbenchError("--layer-target/--target-latency: only with --method prox (the subgradient has no shares)")
    elif a.lrf is not None:
        raise SlimbenchError("--lrf: only with --method prox (the subgradient keeps ultralytics' schedule)")
    else:
        out = _run_training(a, str(a.model), "sparsity", sparsity=a.sparsity)
    sparse = load_detector(out).model
    after, share1 = bn_gammas(sparse), share_below(sparse, a.threshold)
    print(f"BN channels below {a.threshold:g} x their layer's max |gamma|: {100 * share0:.1f}% -> {100 * share1:.1f}%")
    hist = plot_bn_gammas(
        before,
        after,
        out.with_suffix(".bn_gamma.png"),
        title=f"BN |gamma| before/after sparsity training ({a.method}, lambda={a.sparsity})",
    )
    print(f"BN scale histogram: {hist}")
    return 0


def cmd_prune(a: argparse.Namespace) -> int:
    from slimbench.model.checkpoint import save_detector
    from slimbench.pruning.report import prune_table
    from slimbench.pruning.structural import DEFAULT_DEADLINE_S, prune_detection_model
    from slimbench.pruning.support import load_prunable
    from slimbench.pruning.threshold import threshold_prune

    if a.target_latency is not None:
        return _prune_to_latency(a)
    yolo = _check_model(a.model, loader=load_prunable)
    _check_output(a.out, [a.model], a.force)
    before = __import__("copy").deepcopy(yolo.model)
    round_to = a.round_to or None
    deadline = a.deadline or DEFAULT_DEADLINE_S
    try:
        if a.threshold is not None:
            result = threshold_prune(
                yolo.model,
                a.threshold,
                max_layer_ratio=a.max_layer_ratio,
                round_to=round_to,
                compensate=not a.no_compensate,
                deadline_s=deadline,
            )
        else:
            result = prune_detection_model(
                yolo.model, a.ratio, global_pruning=a.global_pruning, round_to=round_to, deadline_s=deadline
            )
    except SlimbenchError as e:
        raise SlimbenchError(f"{a.model}: {e}") from e
    save_detector(yolo, a.out, half=not a.fp32)
    print(prune_table(before, yolo.model, result, imgsz=a.imgsz, verbose=a.verbose))
    if a.threshold is not None:
        print(
            f"threshold {a.threshold:g} x layer max |gamma|: {result.below_threshold:,} of {result.group_channels:,} "
            f"channel groups below it, {result.removed:,} removed (cap {a.max_layer_ratio:g} per layer, "
            f"round_to {round_to}); compensation {'off' if a.no_compensate else 'on'}"
        )
    seconds = getattr(result, "seconds", None)
    print(f"pruned checkpoint: {a.out}" + (f"  ({seconds:.1f} s)" if seconds else ""))
    return 0


def _prune_to_latency(a: argparse.Namespace) -> int:
    """``prune --target-latency R --runtime NAME``: plan on a measured latency model, prune, measure, correct."""
    from slimbench.measure.timing import available_cpus
    from slimbench.model.checkpoint import save_detector
    from slimbench.pruning.latency_table import DEFAULT_CACHE
    from slimbench.pruning.latency_target import LatencySettings, prune_to_latency
    from slimbench.pruning.report import latency_table_text
    from slimbench.pruning.support import load_prunable
    from slimbench.runtimes.registry import missing_reason

    why = missing_reason(a.runtime)
    if why:
        raise SlimbenchError(f"--runtime {a.runtime}: {why}")
    yolo = _check_model(a.model, loader=load_prunable)
    _check_output(a.out, [a.model], a.force)
    settings = LatencySettings(
        runtime=a.runtime,
        threads=a.threads or available_cpus(),
        batch=a.batch,
        imgsz=a.imgsz,
        step=a.round_to or 1,
        max_layer_ratio=a.max_layer_ratio,
        deadline_s=a.deadline or LatencySettings.deadline_s,
    )
    cache = a.latency_cache or DEFAULT_CACHE
    with tempfile.TemporaryDirectory(prefix="slimbench-latency-") as work:
        try:
            pruned, result = prune_to_latency(yolo, a.target_latency, settings, cache, Path(work))
        except SlimbenchError as e:
            raise SlimbenchError(f"{a.model}: {e}") from e
    save_detector(pruned, a.out, half=not a.fp32)
    print(latency_table_text(result, verbose=a.verbose))
    print(f"pruned checkpoint: {a.out}")
    return 0


def cmd_finetune(a: argparse.Namespace) -> int:
    from slimbench.model.checkpoint import load_detector
    from slimbench.pruning.fixture_plan import optimizer_args
    from slimbench.pruning.structural import count_params

    params = count_params(_check_model(a.model).model)
    _check_data(a.data)
    _check_output(a.out, [a.model], a.force)
    recipe = optimizer_args(a.optimizer, a.lr0, a.warmup_epochs)
    out = _run_training(a, str(a.model), "finetune", keep_shape=True, **recipe)
    after = count_params(load_detector(out).model)
    if after != params:
        raise SlimbenchError(f"{out}: fine-tuning changed the parameter count ({params} -> {after})")
    print(f"shape kept: {after:,} parameters")
    return 0


def _fixture_shares(a: argparse.Namespace, plan: Any) -> Any:
    """make-fixtures' --target and --layer-target (the bundled plan's uniform share and per-layer shares, so a user
    builds the size they ship), --target-latency (every share from the latency plan), --plan-from (a recorded plan's)
    or --widths-from (a pruned checkpoint's widths); the smoke test (--quick) prunes by its own ratio and takes none."""
    from dataclasses import replace

    knobs = {"--latency-runtime": a.latency_runtime, "--latency-max-layer-ratio": a.latency_max_layer_ratio}
    _refuse_without("--target-latency", a.target_latency is not None, knobs)
    # what a recorded plan or a checkpoint's widths would override: each sets every share itself
    other_shares = a.quick or a.target_latency is not None or a.target is not None or bool(a.layer_target)
    if a.widths_from is not None:
        if other_shares or a.plan_from is not None:
            drop = "--quick/--plan-from/--target*/--layer-target"
            raise SlimbenchError(f"--widths-from: the checkpoint's widths set every share; drop {drop}")
        _check_model(a.widths_from, "--widths-from")
        return replace(plan, widths_from=str(a.widths_from))
    if a.plan_from is not None:
        if other_shares:
            raise SlimbenchError(
                "--plan-from: the recorded plan sets every share; drop --quick/--target*/--layer-target"
            )
        return replace(plan, latency_plan_from=str(a.plan_from))
    if a.target_latency is not None:
        if a.quick:
            raise SlimbenchError("--target-latency: not with --quick (the smoke test prunes by its own ratio)")
        if a.target is not None or a.layer_target:
            raise SlimbenchError("--target-latency: the latency plan sets every share; drop --target/--layer-target")
        cap = plan.latency_max_layer_ratio if a.latency_max_layer_ratio is None else a.latency_max_layer_ratio
        runtime = a.latency_runtime or plan.latency_runtime
        return replace(
            plan, sparsity_target_latency=a.target_latency, latency_runtime=runtime, latency_max_layer_ratio=cap
        )
    if a.target is None and not a.layer_target:
        return plan
    if a.quick:
        raise SlimbenchError("--target/--layer-target: not with --quick (the smoke test prunes by its own ratio)")
    shares = {"sparsity_layer_shares": tuple(dict(a.layer_target or []).items())}
    return replace(plan, **shares, **({} if a.target is None else {"sparsity_target": a.target}))


def cmd_make_fixtures(a: argparse.Namespace) -> int:
    from dataclasses import replace

    from slimbench.pruning.fixture_plan import FixturePlan
    from slimbench.pruning.pipeline import make_fixtures

    if a.model:
        _check_model(a.model, "--model", yaml=True, checkpoint=False, prunable=True)
    if a.original:
        _check_model(a.original, "--original")
    plan = FixturePlan.quick() if a.quick else FixturePlan()
    if a.model:
        plan = replace(plan, model_cfg=a.model)
    if a.no_control:
        plan = replace(plan, control=False)
    for option, name in (("channels_last", "--channels-last"), ("bf16", "--bf16")):
        if getattr(a, option):
            from slimbench.pruning.cpu_bf16 import check_cpu_only

            check_cpu_only(name, a.device)  # before any work, not at the first stage's train()
            plan = replace(plan, **{option: True})
    for stage in ("sparsity", "recovery", "finetune"):  # --STAGE-epochs -> the plan's epochs_STAGE
        if getattr(a, f"{stage}_epochs") is not None:
            plan = replace(plan, **{f"epochs_{stage}": getattr(a, f"{stage}_epochs")})
    for option in ("optimizer", "lr0", "warmup_epochs"):  # --finetune-X -> the plan's finetune_X
        if getattr(a, f"finetune_{option}") is not None:
            plan = replace(plan, **{f"finetune_{option}": getattr(a, f"finetune_{option}")})
    if a.final_val_only:
        plan = replace(plan, val_each_epoch=False)
    plan = _fixture_shares(a, plan)
    workdir = a.workdir or (a.out / ".build")
    manifest = make_fixtures(
        a.out,
        plan,
        workdir,
        device=a.device,
        force=a.force,
        original=a.original,
        continue_from=a.continue_from,
        command=a.command_line,
    )
    for name, v in manifest["variants"].items():
        print(
            f"{name:10s} {v['file_bytes'] / 1e6:6.2f} MB  {v['params']:>10,} params  "
            f"{v['gflops_at_640']:6.2f} GFLOPs@640  mAP50 {v['map50']:.3f}  mAP50-95 {v['map50_95']:.3f}"
        )
    if "round" in manifest:
        first = manifest["earlier_rounds"][0].get("stage_seconds", {})
        whole = "the whole line" if "train original" in first else "the rounds (the original given, not timed)"
        print(f"round {manifest['round']}: {whole} took {manifest['line_seconds'] / 60:.1f} min")
    conv = manifest["original_training"]
    if "stopping_epoch" in conv:
        when = f"converged at epoch {conv['stopping_epoch']}" if conv.get("converged") else "cap reached, not converged"
        print(f"original: {when} ({conv.get('rule', '')})")
    if "control" in manifest:
        c = manifest["control"]
        print(f"control: the original + {c['epochs']} epochs of the fine-tune recipe, mAP50-95 {c['map50_95']:.3f}")
    return 0

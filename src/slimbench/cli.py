"""The ``slimbench`` command: the pruning toolkit's steps, each usable alone.

Every bad input ends as one line ``slimbench: error: ...`` naming the file and the problem, exit code 2, and
nothing written. Outputs are written atomically and never replace an input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import atomic_copy
from slimbench.pruning.pipeline import FixturePlan

_PLAN = FixturePlan()
DEFAULT_DEADLINE_S = 300.0  # slimbench.pruning.structural.DEFAULT_DEADLINE_S (not imported: keeps --help fast)

os.environ.setdefault("YOLO_OFFLINE", "1")


def _number(kind: Callable[[str], float], ok: Callable[[float], bool], wanted: str) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` where ``ok`` holds, else one line saying what was wanted."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value

    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive integer")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_fraction = _number(float, lambda v: 0.0 < v < 1.0, "a number in (0, 1)")  # ratios, thresholds and caps
_non_negative = _number(float, lambda v: v >= 0, "a number >= 0")
_lr_fraction = _number(float, lambda v: 0.0 < v <= 1.0, "a number in (0, 1]")


def _layer_target(text: str) -> tuple[str, float]:
    """An argparse type for ``--layer-target NAME=SHARE``: a module name and a share in [0, 1)."""
    name, sep, value = text.partition("=")
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not sep or not name or not 0.0 <= share < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected NAME=SHARE with a share in [0, 1), e.g. model.22=0.75, got {text!r}"
        )
    return name, share


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


def _train_common(p: argparse.ArgumentParser, epochs: int) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset YAML (YOLO format)")
    p.add_argument("--epochs", type=_positive_int, default=epochs)
    p.add_argument("--imgsz", type=_positive_int, default=_PLAN.imgsz)
    p.add_argument("--batch", type=_positive_int, default=32)
    p.add_argument("--device", default="cpu", help="cpu, 0, cuda:0 ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--project", type=Path, default=Path("runs/slimbench"), help="where ultralytics writes the run")
    p.add_argument("--out", type=Path, required=True, help="where to copy the best checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


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
    _check_model(a.model, "--model", yaml=True)
    _check_data(a.data)
    _check_output(a.out, [], a.force)
    _run_training(a, a.model, "train")
    return 0


def _layer_targets(a: argparse.Namespace, model: Any) -> tuple[tuple[str, float], ...]:
    """--heavy-target's layers, then each --layer-target (a later one wins); a name that holds no BatchNorm of the
    model is refused in one line rather than targeting nothing."""
    from slimbench.pruning.latency_layers import heavy_layer_targets
    from slimbench.pruning.sparsity import unmatched_layer_targets

    pairs = [*(heavy_layer_targets(model, a.heavy_target) if a.heavy_target else ()), *(a.layer_target or [])]
    if pairs and not (a.per_layer and a.target > 0):
        raise SlimbenchError("--layer-target/--heavy-target: need --per-layer and --target > 0")
    missing = unmatched_layer_targets(model, [name for name, _ in a.layer_target or []])
    if missing:
        raise SlimbenchError(f"--layer-target {missing[0]}: no BatchNorm under that module name in {a.model}")
    return tuple(dict(pairs).items())


def cmd_sparsify(a: argparse.Namespace) -> int:
    from slimbench.model.checkpoint import load_detector
    from slimbench.pruning.bn_hist import plot_bn_gammas
    from slimbench.pruning.sparsity import SparsityRecipe, bn_gammas, share_below

    start = _check_model(a.model).model
    _check_data(a.data)
    _check_output(a.out, [a.model], a.force)
    before, share0 = bn_gammas(start), share_below(start, a.threshold)
    if a.method == "prox":
        layer_targets = _layer_targets(a, start)
        recipe = SparsityRecipe(
            lam=a.sparsity,
            ramp=a.ramp,
            threshold=a.threshold,
            taylor=a.taylor,
            target=a.target,
            per_layer=a.per_layer,
            round_to=a.round_to,
            layer_targets=layer_targets,
        )
        # the last epoch, not ultralytics' "best" (the least sparse one, by fitness)
        lrf = {} if a.lrf is None else {"lrf": a.lrf}
        out = _run_training(a, str(a.model), "sparsity", use_last=True, recipe=recipe, lr0=a.lr0, **lrf)
    elif a.layer_target or a.heavy_target:
        raise SlimbenchError("--layer-target/--heavy-target: only with --method prox (the subgradient has no shares)")
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
    from slimbench.pruning.deadline import run_with_deadline
    from slimbench.pruning.report import prune_table
    from slimbench.pruning.structural import prune_detection_model
    from slimbench.pruning.support import load_prunable
    from slimbench.pruning.threshold import threshold_prune

    yolo = _check_model(a.model, loader=load_prunable)
    _check_output(a.out, [a.model], a.force)
    before = __import__("copy").deepcopy(yolo.model)
    round_to = a.round_to or None
    try:
        if a.threshold is not None:
            result = run_with_deadline(
                lambda: threshold_prune(
                    yolo.model,
                    a.threshold,
                    max_layer_ratio=a.max_layer_ratio,
                    round_to=round_to,
                    compensate=not a.no_compensate,
                ),
                a.deadline,
                "threshold pruning (torch-pruning's dependency graph)",
            )
        else:
            result = prune_detection_model(
                yolo.model, a.ratio, global_pruning=a.global_pruning, round_to=round_to, deadline_s=a.deadline
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


def cmd_finetune(a: argparse.Namespace) -> int:
    from slimbench.model.checkpoint import load_detector
    from slimbench.pruning.structural import count_params

    params = count_params(_check_model(a.model).model)
    _check_data(a.data)
    _check_output(a.out, [a.model], a.force)
    out = _run_training(a, str(a.model), "finetune", keep_shape=True)
    after = count_params(load_detector(out).model)
    if after != params:
        raise SlimbenchError(f"{out}: fine-tuning changed the parameter count ({params} -> {after})")
    print(f"shape kept: {after:,} parameters")
    return 0


def cmd_make_fixtures(a: argparse.Namespace) -> int:
    from dataclasses import replace

    from slimbench.pruning.pipeline import FixturePlan, make_fixtures

    if a.model:
        _check_model(a.model, "--model", yaml=True, checkpoint=False, prunable=True)
    if a.original:
        _check_model(a.original, "--original")
    plan = FixturePlan.quick() if a.quick else FixturePlan()
    if a.model:
        plan = replace(plan, model_cfg=a.model)
    workdir = a.workdir or (a.out / ".build")
    manifest = make_fixtures(a.out, plan, workdir, device=a.device, force=a.force, original=a.original)
    for name, v in manifest["variants"].items():
        print(
            f"{name:10s} {v['file_bytes'] / 1e6:6.2f} MB  {v['params']:>10,} params  "
            f"{v['gflops_at_640']:6.2f} GFLOPs@640  mAP50 {v['map50']:.3f}  mAP50-95 {v['map50_95']:.3f}"
        )
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``slimbench prune: error: ...``) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line; training defaults are those of the bundled reference build (FixturePlan)."""
    parser = _OneLineParser(prog="slimbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    p = sub.add_parser("init", help="write a ready benchmark suite into your repository (then: pytest DIR)")
    p.add_argument("dir", type=Path, nargs="?", default=Path("benchmarks"), help="suite folder [benchmarks]")
    p.add_argument(
        "--variant",
        metavar="NAME=PATH",
        action="append",
        required=True,
        help="a checkpoint to compare (pinned by its sha256 in the suite config); repeatable",
    )
    p.add_argument("--reference", metavar="NAME", required=True, help="the variant the others are compared with")
    p.add_argument("--image", metavar="PATH", action="append", default=[], help="sample image; repeatable")
    p.add_argument("--force", action="store_true", help="overwrite a suite already in DIR")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("make-dataset", help="write the deterministic synthetic detection dataset")
    p.add_argument("out", type=Path)
    p.add_argument("--train", type=_positive_int, default=_PLAN.train_images)
    p.add_argument("--val", type=_positive_int, default=_PLAN.val_images)
    p.add_argument("--imgsz", type=_positive_int, default=_PLAN.imgsz)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_dataset)

    p = sub.add_parser("train", help="train a detector from a model YAML (the original)")
    p.add_argument("--model", default="yolov8n.yaml", help="model YAML or checkpoint to start from")
    _train_common(p, epochs=_PLAN.epochs_original)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sparsify", help="Network Slimming: train with an L1 penalty on BatchNorm scales")
    p.add_argument("model", type=Path, help="trained checkpoint (.pt)")
    p.add_argument(
        "--method",
        choices=("prox", "subgradient"),
        default="prox",
        help="prox: SGD + a proximal L1 step on BN scales before the EMA update (default); "
        "subgradient: lambda * sign(gamma) added to the gradients",
    )
    p.add_argument("--sparsity", type=_non_negative, default=1.0, help="L1 strength lambda on BN scales (final)")
    p.add_argument("--ramp", type=float, default=0.5, help="prox: lambda rises over this fraction of the steps")
    p.add_argument("--lr0", type=float, default=0.002, help="prox: SGD learning rate")
    p.add_argument(
        "--lrf",
        type=_lr_fraction,
        help="prox: the lr decays linearly to --lr0 x this over the epochs (default 1: constant); e.g. --ramp 0 "
        "--lr0 0.01 --lrf 0.1 from a sparse checkpoint: recovery epochs with its targets held, as make-fixtures does",
    )
    p.add_argument(
        "--taylor", action="store_true", help="prox: rank channels by |gamma * dL/dgamma| instead of |gamma|"
    )
    p.add_argument(
        "--target",
        type=_non_negative,
        default=0.0,
        help="prox: push only the globally lowest-ranked share of channels, rising to this over --ramp (0: all, "
        "weighted by rank within the layer)",
    )
    p.add_argument(
        "--per-layer",
        action="store_true",
        help="prox with --target: push that share of each layer (keeping multiples of --round-to) instead of a "
        "global ranking, so the high-resolution layers that cost the FLOPs thin out too",
    )
    p.add_argument(
        "--round-to", type=_positive_int, default=8, help="with --per-layer: each layer keeps a multiple of this"
    )
    p.add_argument(
        "--heavy-target",
        type=_fraction,
        help="with --per-layer: this share instead of --target for the layers that cost the CPU latency (stride <= 8, "
        "the Detect head, SPPF's cv1; off for the bundled build)",
    )
    p.add_argument(
        "--layer-target",
        type=_layer_target,
        action="append",
        metavar="NAME=SHARE",
        help="with --per-layer: this share for the module NAME and all inside it (e.g. model.22=0.75); repeatable",
    )
    p.add_argument("--threshold", type=_fraction, default=0.01, help="near zero: |gamma| below this x its layer's max")
    _train_common(p, epochs=_PLAN.epochs_sparsity)
    p.set_defaults(func=cmd_sparsify)

    p = sub.add_parser("prune", help="remove channels for real (torch-pruning, BN-scale importance)")
    p.add_argument("model", type=Path, help="checkpoint to prune (.pt)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--ratio", type=_fraction, help="fraction of prunable channels to remove, in (0, 1)")
    how.add_argument(
        "--threshold",
        type=_fraction,
        help="Network Slimming: remove channels whose |gamma| is below this x their layer's max (e.g. 0.01)",
    )
    p.add_argument("--max-layer-ratio", type=_fraction, default=0.9, help="--threshold: at most this per layer")
    p.add_argument("--no-compensate", action="store_true", help="--threshold: do not fold act(beta) into the consumers")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--global",
        dest="global_pruning",
        action="store_true",
        help="rank channels across layers (default: the same ratio in every layer)",
    )
    p.add_argument("--round-to", type=int, default=8, help="keep channel counts multiples of this (0: off)")
    p.add_argument("--imgsz", type=_positive_int, default=640, help="image size for the GFLOPs figures")
    p.add_argument("--fp32", action="store_true", help="save FP32 (default FP16, as ultralytics saves)")
    p.add_argument("--verbose", action="store_true", help="list every layer, not only the changed ones")
    p.add_argument(
        "--deadline",
        type=_positive_float,
        default=DEFAULT_DEADLINE_S,
        help="seconds allowed for torch-pruning's graph building and pruning; past it: an error, nothing written",
    )
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("finetune", help="fine-tune a pruned checkpoint, keeping its pruned shape")
    p.add_argument("model", type=Path, help="pruned checkpoint (.pt)")
    _train_common(p, epochs=_PLAN.epochs_finetune)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("make-fixtures", help="build the bundled original/pruned/fine-tuned variants end to end")
    p.add_argument("--out", type=Path, default=Path("fixtures"))
    p.add_argument("--workdir", type=Path, default=None, help="scratch space (default OUT/.build)")
    p.add_argument("--quick", action="store_true", help="tiny data, one epoch per stage (a smoke test)")
    p.add_argument(
        "--model",
        default=None,
        help=f"model YAML to build the set from: yolov8/yolo11/yolo26 n..x (default {_PLAN.model_cfg})",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--original", type=Path, default=None, help="a trained original to start from (skips training one)")
    p.add_argument("--force", action="store_true", help="overwrite existing fixtures")
    p.set_defaults(func=cmd_make_fixtures)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SlimbenchError as e:
        print(f"slimbench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

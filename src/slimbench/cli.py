"""The ``slimbench`` command: the pruning toolkit's steps, each usable alone.

Every bad input ends as one line ``slimbench: error: ...`` naming the file and the problem, exit code 2, and
nothing written. Outputs are written atomically and never replace an input. Here: the parser and ``main``; what each
subcommand does is in :mod:`slimbench.commands`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from slimbench.commands import (
    cmd_finetune,
    cmd_init,
    cmd_make_dataset,
    cmd_make_fixtures,
    cmd_prune,
    cmd_sparsify,
    cmd_train,
)
from slimbench.core.errors import SlimbenchError
from slimbench.core.timing_key import RUNTIMES
from slimbench.pruning.fixture_plan import FixturePlan
from slimbench.report_commands import cmd_markdown, cmd_merge, cmd_profile

_PLAN = FixturePlan()
DEFAULT_DEADLINE_S = 300.0  # slimbench.pruning.structural.DEFAULT_DEADLINE_S (not imported: keeps --help fast)
LATENCY_DEADLINE_S = 1800.0  # slimbench.pruning.latency_target.LatencySettings.deadline_s

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


# ultralytics 8.4's optimizers (BaseTrainer.build_optimizer). The bundled YOLO11n pruned model fine-tuned 90 epochs
# read 0.006 higher with SGD at lr 0.01 without warm-up than with auto's AdamW (docs/bundled-variants.md)
FINETUNE_OPTIMIZERS = ("auto", "SGD", "MuSGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSprop")
_positive_int = _number(int, lambda v: v > 0, "a positive integer")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_fraction = _number(float, lambda v: 0.0 < v < 1.0, "a number in (0, 1)")  # ratios, thresholds and caps
_non_negative = _number(float, lambda v: v >= 0, "a number >= 0")
_lr_fraction = _number(float, lambda v: 0.0 < v <= 1.0, "a number in (0, 1]")
_count = _number(int, lambda v: v >= 0, "an integer >= 0")


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


def _train_common(p: argparse.ArgumentParser, epochs: int) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset YAML (YOLO format)")
    p.add_argument("--epochs", type=_positive_int, default=epochs)
    p.add_argument("--imgsz", type=_positive_int, default=_PLAN.imgsz)
    p.add_argument("--batch", type=_positive_int, default=32)
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu, 0 (a GPU), 0,1 (two GPUs through ultralytics' DDP launcher; checked for sparsify, finetune, "
        "train) [cpu]",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cache",
        choices=("ram", "disk"),
        default=None,
        help="ultralytics' image cache: decode each image once, kept in memory (ram) or as .npy files beside the "
        "images (disk); default: decode every epoch",
    )
    _cpu_training_options(p)
    p.add_argument("--project", type=Path, default=Path("runs/slimbench"), help="where ultralytics writes the run")
    p.add_argument("--out", type=Path, required=True, help="where to copy the best checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def _cpu_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="train in NHWC memory layout (CPU only): faster convolutions on AVX-512 CPUs, about 15%% shorter epochs "
        "measured; the floats differ, so the run is another than without it",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="train in bfloat16 mixed precision (CPU only; weights stay float32): fast on CPUs with native bfloat16 "
        "(AVX-512 BF16, AMX), slow on others; with --channels-last a step 0.72 s against 1.02 s measured on Zen 4",
    )


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
    p.add_argument(
        "--until-converged",
        action="store_true",
        help="stop once val mAP50-95 has gained at most --min-delta over --patience epochs, not before --min-epochs "
        "(--epochs: the cap), "
        "as make-fixtures trains its original; the curve goes to PROJECT/train/convergence.json",
    )
    p.add_argument(
        "--patience",
        type=_positive_int,
        default=None,
        help=f"--until-converged: epochs (default {_PLAN.converge_patience})",
    )
    p.add_argument(
        "--min-delta",
        type=_non_negative,
        default=None,
        help=f"--until-converged: least gain (default {_PLAN.converge_min_delta:g})",
    )
    p.add_argument(
        "--min-epochs",
        type=_positive_int,
        default=None,
        help=f"--until-converged: the first epoch it may stop at (default: {_PLAN.converge_min_fraction * 100:g}%% "
        "of --epochs, where ultralytics' linearly decaying learning rate is 0.41x its start)",
    )
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
        "--layer-target",
        type=_layer_target,
        action="append",
        metavar="NAME=SHARE",
        help="with --per-layer: this share for the module NAME and all inside it (e.g. model.22=0.75); repeatable",
    )
    p.add_argument(
        "--target-latency",
        type=_fraction,
        help="with --per-layer: each layer's share from the plan that prunes this model to this x its forward "
        "latency on --runtime (measured as prune --target-latency does), instead of --target",
    )
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="onnxruntime",
        help="--target-latency: the runtime to measure on (default onnxruntime)",
    )
    p.add_argument("--imgsz-latency", type=_positive_int, default=640, help="--target-latency: image size to time")
    p.add_argument("--latency-cache", type=Path, default=None, help="--target-latency: layer latency cache folder")
    p.add_argument(
        "--latency-max-layer-ratio",
        type=_fraction,
        default=_PLAN.latency_max_layer_ratio,
        help="--target-latency: the plan takes at most this share of any one layer (default "
        f"{_PLAN.latency_max_layer_ratio:g}; lower keeps the thin high-resolution layers from becoming a bottleneck)",
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
    how.add_argument(
        "--target-latency",
        type=_fraction,
        help="prune until the forward on --runtime measures this x the original's (e.g. 0.5), in interleaved pairs",
    )
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="onnxruntime",
        help="--target-latency: the runtime to measure on (default onnxruntime)",
    )
    p.add_argument("--threads", type=_positive_int, default=None, help="--target-latency: threads (default: all CPUs)")
    p.add_argument("--batch", type=_positive_int, default=1, help="--target-latency: batch to time (default 1)")
    p.add_argument(
        "--latency-cache",
        type=Path,
        default=None,
        help="--target-latency: where measured layer latencies are kept (default ~/.cache/slimbench/latency)",
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
    p.add_argument("--imgsz", type=_positive_int, default=640, help="image size for the GFLOPs figures and timing")
    p.add_argument("--fp32", action="store_true", help="save FP32 (default FP16, as ultralytics saves)")
    p.add_argument("--verbose", action="store_true", help="list every layer, not only the changed ones")
    p.add_argument(
        "--deadline",
        type=_positive_float,
        default=None,
        help=f"seconds allowed for pruning (default {DEFAULT_DEADLINE_S:g}; --target-latency, which measures: "
        f"{LATENCY_DEADLINE_S:g}); past it: an error, nothing written",
    )
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("finetune", help="fine-tune a pruned checkpoint, keeping its pruned shape")
    p.add_argument("model", type=Path, help="pruned checkpoint (.pt)")
    _train_common(p, epochs=_PLAN.epochs_finetune)
    p.add_argument(
        "--optimizer",
        choices=FINETUNE_OPTIMIZERS,
        default="auto",
        help="ultralytics' optimizer; auto picks AdamW at lr 0.01/(4+classes) below 10,000 iterations (a fine-tune on "
        "the bundled data) and ignores --lr0 [auto]",
    )
    p.add_argument("--lr0", type=_positive_float, default=None, help="initial learning rate (with a named --optimizer)")
    p.add_argument(
        "--warmup-epochs",
        type=_non_negative,
        default=None,
        help="ultralytics' warm-up epochs [3]; with a named --optimizer it starts the biases at lr 0.1, which can undo "
        "a trained model: 0 skips it",
    )
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
    p.add_argument("--device", default="cpu", help="training and validation device: cpu, 0 ... [cpu]")
    p.add_argument("--original", type=Path, default=None, help="a trained original to start from (skips training one)")
    p.add_argument(
        "--continue-from",
        type=Path,
        default=None,
        metavar="DIR",
        help="another round on the fine-tuned model of the set make-fixtures wrote in DIR, measured against DIR's "
        "original (iterative pruning; --target-latency is then relative to DIR's fine-tuned model)",
    )
    p.add_argument(
        "--no-control",
        action="store_true",
        help="skip the equal-budget control (the original trained as many more epochs as the pruning line adds)",
    )
    p.add_argument(
        "--target",
        type=_fraction,
        default=None,
        help=f"the share of every layer's channels the sparsity stage pushes to zero (default {_PLAN.sparsity_target})",
    )
    p.add_argument(
        "--layer-target",
        type=_layer_target,
        action="append",
        metavar="NAME=SHARE",
        help="a share of its own for one module and all inside it, e.g. model.22=0.75 (repeatable)",
    )
    p.add_argument(
        "--target-latency",
        type=_fraction,
        default=None,
        help="each layer's sparsity share from the plan that prunes the original to this x its batch-1 latency on "
        "--latency-runtime (as prune --target-latency plans), instead of --target/--layer-target",
    )
    p.add_argument(
        "--plan-from",
        type=Path,
        default=None,
        metavar="MANIFEST",
        help="the shares of the latency plan a --target-latency build recorded in MANIFEST, instead of timing a new "
        "plan (the plan is a measurement: timed again, it plans another cut)",
    )
    p.add_argument(
        "--widths-from",
        type=Path,
        default=None,
        metavar="CHECKPOINT",
        help="each unit's share from a pruned checkpoint of the same architecture: the round trains to its widths "
        "(a cut that earlier rounds found, in one round; nothing timed), instead of --target*/--layer-target",
    )
    p.add_argument(
        "--latency-runtime",
        choices=RUNTIMES,
        default=None,
        help=f"--target-latency: the runtime to time (default {_PLAN.latency_runtime})",
    )
    p.add_argument(
        "--latency-max-layer-ratio",
        type=_fraction,
        default=None,
        help=f"--target-latency: the plan takes at most this share of any one unit (default "
        f"{_PLAN.latency_max_layer_ratio:g}; lower keeps the thin high-resolution layers wider)",
    )
    p.add_argument(
        "--sparsity-epochs",
        type=_positive_int,
        default=None,
        help=f"epochs of the sparsity stage, the targets' pushing (default {_PLAN.epochs_sparsity})",
    )
    p.add_argument(
        "--recovery-epochs",
        type=_count,
        default=None,
        help=f"epochs after it with the targets held at a higher, decaying lr (default {_PLAN.epochs_recovery}; "
        "0: none)",
    )
    p.add_argument(
        "--finetune-epochs",
        type=_positive_int,
        default=None,
        help=f"epochs of the fine-tuning stage (default {_PLAN.epochs_finetune}; the control trains as many more)",
    )
    p.add_argument(
        "--finetune-optimizer",
        choices=FINETUNE_OPTIMIZERS,
        default=None,
        help=f"the fine-tune's (and the control's) optimizer, as finetune --optimizer [{_PLAN.finetune_optimizer}]",
    )
    p.add_argument(
        "--finetune-lr0", type=_positive_float, default=None, help="its initial lr (with a named --finetune-optimizer)"
    )
    p.add_argument(
        "--finetune-warmup-epochs",
        type=_non_negative,
        default=None,
        help="its warm-up epochs [3]; with a named optimizer 0 keeps the biases' lr from starting at 0.1",
    )
    p.add_argument(
        "--final-val-only",
        action="store_true",
        help="the sparsity, recovery, fine-tune and control stages validate after their last epoch only (a tenth "
        "off a pruned YOLO11n's fine-tune on the bundled data) and keep it, not their best epoch; the original "
        "validates every epoch",
    )
    _cpu_training_options(p)
    p.add_argument("--force", action="store_true", help="overwrite existing fixtures")
    p.set_defaults(func=cmd_make_fixtures)

    p = sub.add_parser("markdown", help="print a run's verdicts as markdown, from its summary.json (CI summaries)")
    p.add_argument("summary", type=Path, help="a run's summary.json (reports/summary.json)")
    p.set_defaults(func=cmd_markdown)
    p = sub.add_parser(
        "merge", help="join the reports of several runs (one per testbed) into one summary.json and report.html"
    )
    p.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="a run's reports folder (holds summary.json)")
    p.add_argument("--out", type=Path, required=True, help="folder for the merged summary.json and report.html")
    p.add_argument("--force", action="store_true", help="replace a merged report already in --out")
    p.set_defaults(func=cmd_merge)
    p = sub.add_parser(
        "profile",
        help="where the forward time goes: time per layer of a checkpoint, or of a second one against the first",
    )
    p.add_argument("checkpoint", type=Path, help="detection checkpoint (.pt); with CANDIDATE: the reference")
    p.add_argument(
        "candidate", type=Path, nargs="?", help="a second checkpoint, compared layer by layer with the first"
    )
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="torch",
        help="torch, or the ONNX export in onnxruntime or "
        "openvino (exported through ultralytics, cached in .slimbench-cache/) [torch]",
    )
    p.add_argument("--batch", type=_positive_int, default=1)
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads [the CPUs available]")
    p.add_argument("--imgsz", type=_positive_int, default=640, help="image size, a multiple of 32 [640]")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (onnxruntime and openvino: cpu) [cpu]")
    p.add_argument("--calls", type=_positive_int, default=5, help="profiled calls; the median per layer is kept [5]")
    p.add_argument("--warmup", type=_count, default=3, help="untimed calls first [3]")
    p.add_argument("--top", type=_positive_int, default=10, help="layers shown by name; the others are summed [10]")
    p.set_defaults(func=cmd_profile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = "slimbench " + shlex.join(sys.argv[1:] if argv is None else argv)  # as typed, for records
    try:
        return int(args.func(args) or 0)
    except SlimbenchError as e:
        print(f"slimbench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

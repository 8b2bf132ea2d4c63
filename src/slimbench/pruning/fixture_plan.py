"""Every knob of the reference build (make-fixtures), the bundled plan's defaults and the quick smoke plan.

Stored in the manifest (``plan``) so that a build can be reproduced and a rebuild can tell what it may reuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from slimbench.core.errors import SlimbenchError


@dataclass(frozen=True)
class FixturePlan:
    """Every knob of the reference build; stored in the manifest so a run can be reproduced."""

    train_images: int = 1000
    val_images: int = 250
    imgsz: int = 256
    seed: int = 0
    model_cfg: str = "yolov8n.yaml"
    batch: int = 32
    # the original trains until converged (slimbench.pruning.convergence): its val mAP50-95 gained at most
    # converge_min_delta over converge_patience epochs, with epochs_original as the cap; patience 0: exactly that many
    epochs_original: int = 120
    converge_patience: int = 10
    converge_min_delta: float = 0.002
    # ... and not before this fraction of the cap (epoch 72 of 120): ultralytics' learning rate decays linearly to
    # the cap and is 0.41x its start there; a plateau while it is higher need not be convergence (a YOLO26n original
    # stopped at epoch 58 at mAP50-95 0.843, and trained on over its schedule reached 0.887)
    converge_min_fraction: float = 0.6
    # the equal-budget control: the converged original trained as many more epochs as the pruning line adds
    # (sparsity + recovery + fine-tune) with the fine-tune recipe; recorded in the manifest, not bundled
    control: bool = True
    epochs_sparsity: int = 10
    # "prox" only: then this many epochs with the targets held (no ramp) at a higher, decaying lr, so the thinner
    # net recovers while the proximal step keeps its zeros (at the stage's lr 0.003 it stayed ~0.05 mAP short)
    epochs_recovery: int = 12
    recovery_lr: float = 0.01
    recovery_lrf: float = 0.1  # the lr decays linearly to recovery_lr * recovery_lrf (ultralytics' lrf)
    epochs_finetune: int = 15
    # the fine-tune stage's (and the control's) optimizer, ultralytics' names: "auto" picks AdamW at lr
    # 0.01/(4+classes) below 10,000 iterations and ignores lr0; a named one takes finetune_lr0 and
    # finetune_warmup_epochs (None: ultralytics' 0.01 and 3). SGD at 0.01 without warm-up recovered a YOLO11n cut
    # 0.006-0.016 further than auto at the same length (docs/bundled-variants.md)
    finetune_optimizer: str = "auto"
    finetune_lr0: float | None = None
    finetune_warmup_epochs: float | None = None
    # False: the sparsity, recovery, fine-tune and control stages validate after their last epoch only (ultralytics'
    # val=False): a pruned YOLO11n's 90 fine-tuning epochs took 996 s instead of 1113 s (the 250 val images); each
    # stage then keeps its last epoch, not its best by val mAP. The original validates every epoch: its convergence
    # rule reads each one
    val_each_epoch: bool = True
    sparsity: float = 4.0  # lambda: the subgradient's strength, or the proximal recipe's final lambda
    sparsity_method: str = "prox"  # or "subgradient": slimbench.pruning.sparsity (lr, ramp below)
    sparsity_lr: float = 0.003  # "prox" only: the SGD learning rate of the sparsity stage
    sparsity_ramp: float = 0.5  # "prox" only: lambda rises linearly over this fraction of the steps
    sparsity_batch: int = 16  # "prox" only: batch of the sparsity stage (one optimizer step per batch); 0: batch
    sparsity_taylor: bool = True  # "prox" only: rank channels by |gamma * dL/dgamma| instead of |gamma|
    # "prox" only: > 0 pushes only the lowest-ranked share of channels, rising to this. The bundled 0.6 in every
    # layer (0.242x GFLOPs) is the smallest size that held both accuracy targets on the converged original in the
    # sweep (docs/bundled-variants.md): 0.64 (0.172x) and 0.7 (0.161x) each missed one of them; the latency plans cut
    # the stem and the stride-8 path to 8 channels and lost 0.04-0.09
    sparsity_target: float = 0.6
    sparsity_per_layer: bool = True  # "prox" with a target: that share of each layer (kept widths: round_to)
    # "prox" per layer, no latency plan: (module name, share) pairs that replace sparsity_target in that module and
    # all inside it, e.g. (("model.22", 0.75),): kept widths move in steps of round_to, so between two uniform
    # shares the size jumps (0.7: 0.161x GFLOPs, 0.75: 0.081x); a share per layer reaches the sizes in between
    sparsity_layer_shares: tuple[tuple[str, float], ...] = ()
    # "prox" per layer: set, each layer's share comes from the plan that prunes the original to this latency ratio on
    # latency_runtime (batch 1, 640 px, this machine's cores; slimbench.pruning.latency_sparsity), measured and
    # corrected as ``prune --target-latency`` does; None: sparsity_target in every layer
    sparsity_target_latency: float | None = None
    latency_runtime: str = "onnxruntime"
    latency_max_layer_ratio: float = 0.9  # the latency plan removes at most this share of any one unit
    # set: the latency plan recorded in this manifest (its ``latency_plan`` shares) instead of measuring one; the plan
    # is a timing, so measuring it again plans another cut (measured 0.645 against 0.723 of the params for one target)
    latency_plan_from: str | None = None
    # set: a pruned checkpoint of this architecture; each unit's share is what it lost there
    # (slimbench.pruning.width_shares), so one round trains a cut that earlier rounds found, timing nothing
    widths_from: str | None = None
    ratio: float = 0.4
    global_pruning: bool = False
    prune_threshold: float | None = 0.01  # set: Network Slimming's threshold rule (fraction of the layer's max)
    prune_target_ratio: float | None = None  # set: the threshold rule at the global quantile removing this share
    max_layer_ratio: float = 0.9  # threshold rule: per-layer cap
    compensate: bool = True  # threshold rule: fold removed channels' act(beta) into their consumers
    round_to: int = 8
    close_mosaic: int = 6
    channels_last: bool = False  # train in NHWC (CPU): shorter epochs on AVX-512, another float trajectory
    bf16: bool = False  # train in bfloat16 mixed precision (CPU): shorter epochs where the CPU has native bfloat16
    gflops_imgsz: int = 640
    scene_size: int = 640
    scene_objects: int = 24
    scene_seed: int = 1234
    agreement_scenes: int = 12

    @property
    def converge_min_epochs(self) -> int:
        """The first epoch the convergence rule may stop the original at."""
        return min_epochs_of(self.epochs_original, self.converge_min_fraction)

    @classmethod
    def quick(cls) -> FixturePlan:
        """Tiny data, small images, one epoch per stage: the whole pipeline in about a minute on a 2-core CPU."""
        return cls(
            train_images=16,
            val_images=8,
            imgsz=128,
            batch=8,
            epochs_original=3,
            converge_patience=1,
            converge_min_delta=1.0,  # stops at epoch 2: the rule runs, in seconds
            epochs_sparsity=1,
            epochs_recovery=1,
            epochs_finetune=1,
            sparsity=20.0,
            sparsity_method="prox",
            sparsity_lr=0.01,
            sparsity_ramp=0.0,
            sparsity_batch=0,
            sparsity_taylor=False,
            sparsity_target=0.0,
            sparsity_per_layer=False,
            sparsity_target_latency=None,
            prune_threshold=None,
            prune_target_ratio=0.6,
            close_mosaic=0,
            scene_size=320,
            scene_objects=8,
            agreement_scenes=2,
        )


def optimizer_args(
    optimizer: str,
    lr0: float | None,
    warmup_epochs: float | None,
    *,
    names: tuple[str, str, str] = ("--optimizer", "--lr0", "--warmup-epochs"),
) -> dict[str, object]:
    """Ultralytics' optimizer arguments for a fine-tune: the optimizer and, where given, lr0 and warm-up epochs.

    Refused, naming the option (``names``: optimizer, lr0, warm-up): lr0 with "auto" (ultralytics would ignore it
    without a word) and an lr0 or warm-up out of range. ``slimbench finetune`` and the build's plan both use it.
    """
    optimizer_name, lr0_name, warmup_name = names
    if optimizer == "auto" and lr0 is not None:
        raise SlimbenchError(f"{lr0_name}: {optimizer_name} auto sets its own lr; name an optimizer, e.g. SGD")
    if lr0 is not None and not lr0 > 0:
        raise SlimbenchError(f"{lr0_name} must be > 0, got {lr0}")
    if warmup_epochs is not None and not warmup_epochs >= 0:
        raise SlimbenchError(f"{warmup_name} must be >= 0, got {warmup_epochs}")
    given = (("lr0", lr0), ("warmup_epochs", warmup_epochs))
    return {"optimizer": optimizer, **{k: v for k, v in given if v is not None}}


def finetune_recipe(plan: FixturePlan) -> dict[str, object]:
    """The fine-tune stage's (and the control's) ultralytics arguments, refused as :func:`optimizer_args` refuses."""
    names = (
        "finetune_optimizer (--finetune-optimizer)",
        "finetune_lr0 (--finetune-lr0)",
        "finetune_warmup_epochs (--finetune-warmup-epochs)",
    )
    return optimizer_args(plan.finetune_optimizer, plan.finetune_lr0, plan.finetune_warmup_epochs, names=names)


def stage_validation(plan: FixturePlan) -> dict[str, bool]:
    """The pruning line's stages' ultralytics ``val`` argument: empty (every epoch) unless the plan turns it off."""
    return {} if plan.val_each_epoch else {"val": False}


def min_epochs_of(cap: int, fraction: float) -> int:
    """The first epoch a convergence rule with this cap may stop at: ``fraction`` of the cap, at least 1."""
    return min(cap, max(1, round(cap * fraction)))

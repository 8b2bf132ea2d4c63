"""The reference original's stage of make-fixtures: trained until converged, its equal-budget control, validation.

Kept apart from :mod:`slimbench.pruning.pipeline` (the stages' order and the manifest) because these decide what
every accuracy figure of the bundle is measured against: a converged original
(:mod:`slimbench.pruning.convergence`), and a control that gets the pruning line's extra epochs without pruning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimbench.core.files import read_json_object
from slimbench.model.checkpoint import load_detector, sha256_of
from slimbench.pruning.convergence import ConvergenceRule, StopWhenConverged, convergence_record, saved_curve
from slimbench.pruning.fixture_plan import finetune_recipe, stage_validation


def validate_map(
    ckpt: str | Path, data: str | Path, imgsz: int, batch: int, device: str, workdir: str | Path
) -> dict[str, float]:
    """mAP50, mAP50-95, precision and recall of a checkpoint for the manifest: the suite's own validator call
    (:func:`slimbench.measure.validator.run_validator`), run under ``workdir``, never next to the checkpoint."""
    from slimbench.measure.validator import run_validator

    m = run_validator(load_detector(ckpt), data, imgsz, device=device, workdir=Path(workdir) / "val", batch=batch)
    return {k: m[k] for k in ("map50", "map50_95", "precision", "recall")}


def plan_rule(plan: Any) -> ConvergenceRule:
    """The convergence rule a plan trains its original by."""
    return ConvergenceRule(
        plan.converge_patience, plan.converge_min_delta, plan.epochs_original, plan.converge_min_epochs
    )


def train_original(data: Path, plan: Any, common: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The original, trained until converged (or exactly ``epochs_original`` with patience 0), and its record."""
    from slimbench.pruning.training import train

    if plan.converge_patience <= 0:
        outcome = train(plan.model_cfg, data, epochs=plan.epochs_original, name="original", **common)
        return outcome, {"rule": f"fixed: {plan.epochs_original} epochs", "epochs_trained": plan.epochs_original}
    rule = plan_rule(plan)
    stopper = StopWhenConverged(rule)
    outcome = train(
        plan.model_cfg,
        data,
        epochs=rule.cap,
        name="original",
        callbacks=stopper.callbacks(),
        **common,
    )
    curve = stopper.curve or saved_curve(Path(common["project"]) / "original")  # a DDP run: rank 0 wrote it
    return outcome, convergence_record(rule, curve)


def _manifest_of_same_original(out: Path, given: Path) -> dict[str, Any]:
    """``out``'s manifest when it records ``given`` (by sha256) as its original, else {}: what a rebuild with
    ``--original`` may carry over from it."""
    old = out / "manifest.json"
    manifest = read_json_object(old, "make-fixtures manifest") if old.is_file() else {}
    same = manifest.get("variants", {}).get("original", {}).get("sha256") == sha256_of(given)
    return manifest if same else {}


def reused_convergence(out: Path, given: Path, plan: Any = None, source: Path | None = None) -> dict[str, Any]:
    """A reused original's convergence record: the one in ``out``'s manifest when it records the same file, else
    the curve a make-fixtures run wrote beside it (``RUN/weights/best.pt`` -> ``RUN/convergence.json``), judged
    by ``plan``'s rule."""
    manifest = _manifest_of_same_original(out, given)
    if "original_training" in manifest:
        return {**manifest["original_training"], "reused": True}
    curve = saved_curve(source.parent.parent) if source is not None else []
    if curve and plan is not None and plan.converge_patience > 0:
        rule = plan_rule(plan)
        return {**convergence_record(rule, curve), "reused": True, "reused_from": str(source)}
    return {"reused": True, "rule": "unknown: trained outside this build (no curve recorded)"}


def control_epochs(plan: Any) -> int:
    """The pruning line's extra epochs: sparsity (+ recovery with the proximal recipe) + fine-tune."""
    return plan.epochs_sparsity + (plan.epochs_recovery if plan.sparsity_method == "prox" else 0) + plan.epochs_finetune


# the plan's knobs a control depends on besides its original and its epochs: the data and the fine-tune recipe
CONTROL_KNOBS = (
    "model_cfg",
    "train_images",
    "val_images",
    "imgsz",
    "seed",
    "batch",
    "close_mosaic",
    "finetune_optimizer",
    "finetune_lr0",
    "finetune_warmup_epochs",
    "val_each_epoch",
)


def reused_control(out: Path, given: Path, plan: Any) -> dict[str, Any] | None:
    """The control in ``out``'s manifest when it would be trained again exactly: the same original (sha256), data,
    recipe and budget. A rebuild with ``--original`` that changes only the pruning line (its shares, its pruning
    rule) reuses it instead of spending the control's ~24 minutes on the same training again."""
    from dataclasses import asdict

    manifest = _manifest_of_same_original(out, given)
    control, old_plan, new_plan = manifest.get("control"), manifest.get("plan", {}), asdict(plan)
    if not control:
        return None
    defaults = asdict(type(plan)())  # a knob an older manifest lacks had its default then
    changed = any(old_plan.get(k, defaults[k]) != new_plan[k] for k in CONTROL_KNOBS)
    if control.get("epochs") != control_epochs(plan) or changed:
        return None
    return {**control, "reused": True}


def control_run(
    original: Path, data: Path, plan: Any, common: dict[str, Any], workdir: Path, device: str
) -> dict[str, Any]:
    """The equal-budget control: the original trained as many more epochs as the pruning line adds, with the
    fine-tune recipe; its mAP says how much of the pruned line's accuracy is extra training, not pruning."""
    from slimbench.pruning.training import train

    epochs = control_epochs(plan)
    recipe = {**finetune_recipe(plan), **stage_validation(plan)}
    outcome = train(original, data, epochs=epochs, name="control", keep_shape=True, **common, **recipe)
    return {
        "what": "the original trained as many more epochs as sparsity + recovery + fine-tune, fine-tune recipe",
        "epochs": epochs,
        "sha256": sha256_of(outcome.best),
        **validate_map(outcome.best, data, plan.imgsz, plan.batch, device, workdir),
    }

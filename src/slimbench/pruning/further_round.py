"""Another round of Network Slimming on a set make-fixtures built: ``make-fixtures --continue-from DIR``.

Iterative pruning (sparsify, prune, fine-tune, and again on the fine-tuned model) reaches cuts one round cannot
keep accurate. A further round starts from DIR's fine-tuned model but is measured against DIR's original, so its
set keeps the first round's original byte for byte, and its manifest carries every earlier round's record.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import read_json_object
from slimbench.model.checkpoint import check_file, load_detector

# the earlier manifest's keys that describe the whole line, not one round: kept at the top of the new manifest
LINE_KEYS = ("schema", "dataset", "original_training", "versions", "earlier_rounds", "train_threads")


@dataclass(frozen=True)
class EarlierRound:
    """A set to continue from: its manifest, and workdir copies of its original and fine-tuned checkpoints."""

    folder: Path
    manifest: dict[str, Any]
    original: Path
    start: Path

    def rounds(self) -> list[dict[str, Any]]:
        """Every earlier round's record, oldest first: the set's own earlier rounds, then the set itself."""
        own = {k: v for k, v in self.manifest.items() if k not in LINE_KEYS}
        return [*self.manifest.get("earlier_rounds", []), {**own, "folder": str(self.folder)}]

    def line_seconds(self) -> float:
        """The earlier rounds' make-fixtures time; the original's training is in it only when the first round trained
        it ("train original" in its ``stage_seconds``), not when that round was given one with ``--original``."""
        return sum(float(r.get("total_seconds", 0.0)) for r in self.rounds())


def _pinned_copy(folder: Path, manifest: dict[str, Any], name: str, dst: Path) -> Path:
    """Copy the set's ``name`` checkpoint to ``dst`` after checking its sha256 against the manifest (before any
    unpickling), and load it once so a bad file is one line now, not after an hour."""
    record = manifest.get("variants", {}).get(name)
    if not isinstance(record, dict) or "path" not in record or "sha256" not in record:
        raise SlimbenchError(f"{folder / 'manifest.json'}: no {name!r} variant with a path and sha256")
    src = check_file(folder / record["path"], record["sha256"], what=f"--continue-from: the {name} checkpoint")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)  # first: --force into the same folder overwrites the file it came from
    load_detector(dst)
    return dst


def earlier_round(folder: str | Path | None, workdir: Path, plan: Any) -> EarlierRound | None:
    """The set in ``folder`` to continue from, checked before any work: a make-fixtures manifest for the same
    model and synthetic data as ``plan``, and its checkpoints as pinned."""
    if folder is None:
        return None
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise SlimbenchError(f"{path}: --continue-from needs a folder make-fixtures wrote (no manifest.json)")
    manifest = read_json_object(path, "make-fixtures manifest")
    built = manifest.get("plan", {}).get("model_cfg")
    if built != plan.model_cfg:
        raise SlimbenchError(f"{path}: built from {built}, not {plan.model_cfg}; pass --model {built}")
    ours = {"seed": plan.seed, "train": plan.train_images, "val": plan.val_images, "imgsz": plan.imgsz}
    theirs = manifest.get("dataset", {})
    differs = [f"{k} {theirs.get(k)} (here {v})" for k, v in ours.items() if theirs.get(k) != v]
    if differs:
        raise SlimbenchError(
            f"{path}: built on other synthetic data: {', '.join(differs)}; a further round trains on the same data "
            "(--quick for a quick set)"
        )
    original = _pinned_copy(folder, manifest, "original", workdir / "earlier_original.pt")
    start = _pinned_copy(folder, manifest, "finetuned", workdir / "earlier_finetuned.pt")
    return EarlierRound(folder=folder, manifest=manifest, original=original, start=start)

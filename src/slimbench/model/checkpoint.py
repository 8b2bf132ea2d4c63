"""Safe loading of detector checkpoints.

Checkpoints are pickles, so loading one runs code: the file is checked (exists, is a file, matches its sha256 pin)
*before* anything is unpickled, and every failure becomes one :class:`SlimbenchError` line that names the file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import atomic_write_bytes

if TYPE_CHECKING:
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

os.environ.setdefault("YOLO_OFFLINE", "1")


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_file(path: str | Path, sha256: str | None = None, what: str = "checkpoint") -> Path:
    """Refuse a missing file, a directory, an empty file or one whose hash differs from its pin."""
    p = Path(path)
    if not p.exists():
        raise SlimbenchError(f"{p}: {what} not found")
    if not p.is_file():
        raise SlimbenchError(f"{p}: {what} is not a file")
    if p.stat().st_size == 0:
        raise SlimbenchError(f"{p}: {what} is empty")
    if sha256:
        actual = sha256_of(p)
        if actual.lower() != sha256.strip().lower():
            raise SlimbenchError(
                f"{p}: sha256 mismatch (pinned {sha256.strip()[:16]}..., file has {actual[:16]}...); "
                "refusing to unpickle a changed checkpoint"
            )
    return p


def load_detector(path: str | Path, sha256: str | None = None) -> YOLO:
    """Load an ultralytics detection checkpoint after the file checks; one clear error line otherwise."""
    p = check_file(path, sha256)
    if p.suffix != ".pt":
        raise SlimbenchError(f"{p}: expected a PyTorch checkpoint ending in .pt")
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    try:
        model = YOLO(str(p), task="detect")
    except Exception as e:  # noqa: BLE001 - any unpickling failure is the user's file, said in one line
        msg = " ".join(str(e).replace("ERROR ❌️", "").split())
        raise SlimbenchError(f"{p}: not a loadable ultralytics checkpoint ({type(e).__name__}: {msg[:200]})") from e
    net = getattr(model, "model", None)
    if not isinstance(net, DetectionModel) or type(net).__name__ not in {"DetectionModel"}:
        kind = type(net).__name__ if net is not None else "nothing"
        raise SlimbenchError(f"{p}: not a detection model (holds {kind})")
    return model


MODEL_YAMLS = (
    "a model YAML ultralytics ships (yolov8n.yaml, yolo11n.yaml, yolo26n.yaml, ...: n/s/m/l/x) or a model YAML file"
)


def detector_from_yaml(spec: str | Path) -> DetectionModel:
    """Build the detector a model YAML describes, offline, so a typo or a non-detector is one line before training.

    ``spec`` is an existing YAML file or a name in ultralytics' own cfg folder; a URL is refused (nothing downloads).
    """
    text = str(spec)
    if Path(text).suffix.lower() not in (".yaml", ".yml") or "://" in text:
        raise SlimbenchError(f"{text}: not a model YAML; expected {MODEL_YAMLS}")
    if not Path(text).is_file() and len(Path(text).parts) > 1:
        raise SlimbenchError(f"{text}: model YAML not found")
    from ultralytics.nn.tasks import DetectionModel, guess_model_task, yaml_model_load

    try:
        cfg = yaml_model_load(text)
    except Exception:  # noqa: BLE001 - ultralytics says FileNotFoundError or worse; the line says what is accepted
        what = "not a model YAML ultralytics can read" if Path(text).is_file() else "unknown model"
        raise SlimbenchError(f"{text}: {what}; expected {MODEL_YAMLS}") from None
    if not isinstance(cfg, dict) or not {"backbone", "head"} <= cfg.keys():
        raise SlimbenchError(f"{text}: not a model YAML (no backbone and head); expected {MODEL_YAMLS}")
    task = guess_model_task(cfg)
    if task != "detect":
        raise SlimbenchError(f"{text}: a {task or 'non-detection'} model, not a detector; expected {MODEL_YAMLS}")
    try:
        return DetectionModel(cfg, verbose=False)
    except Exception as e:  # noqa: BLE001 - a malformed layer list, said in one line
        msg = " ".join(str(e).split())[:200]
        raise SlimbenchError(f"{text}: ultralytics cannot build a detector from it ({type(e).__name__}: {msg})") from e


def save_detector(model, path: str | Path, half: bool = True, extra: dict | None = None) -> Path:
    """Save a DetectionModel (or YOLO wrapper) as an ultralytics-style checkpoint, atomically.

    ``half=True`` matches what ultralytics' trainer writes (FP16), so sizes compare like for like.
    The module is deep-copied, so the caller's model keeps its dtype and mode.
    """
    import copy
    import io
    from datetime import datetime, timezone

    import torch
    import ultralytics
    from ultralytics.engine.model import Model

    net = model.model if isinstance(model, Model) else model
    if not isinstance(net, torch.nn.Module):
        raise SlimbenchError(f"{path}: refusing to save, {type(model).__name__} is not a torch module")
    net = copy.deepcopy(net).cpu().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net = net.half() if half else net.float()
    ckpt = {
        "date": datetime.now(timezone.utc).isoformat(),
        "version": ultralytics.__version__,
        "model": net,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": dict(getattr(net, "args", {}) or {}) if isinstance(getattr(net, "args", None), dict) else {},
        "train_metrics": None,
        "train_results": None,
        **(extra or {}),
    }
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return atomic_write_bytes(path, buf.getvalue())

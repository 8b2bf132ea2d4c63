"""ONNX export of a variant through ultralytics' own exporter, cached on disk so a second run does not export again.

What ships to the edge is the exported file, not the checkpoint, so the deployment checks time and compare that
file. The cache (``.slimbench-cache/onnx/`` under the rootdir) is keyed by the checkpoint's sha256, the image size,
the ultralytics version and the dynamic-axes flag; next to each ``.onnx`` a sidecar JSON records the ONNX file's own
sha256, checked before every use, so a truncated or tampered file is rebuilt and never loaded.

The export runs on a deep copy whose ``pt_path`` points into a temp folder inside the cache: ultralytics writes its
output next to ``pt_path``, and nothing may appear next to the user's checkpoint. Files land atomically (rename).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import atomic_write_bytes
from slimbench.model.checkpoint import sha256_of

os.environ.setdefault("YOLO_OFFLINE", "1")  # the exporter checks requirements: never try to install anything
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

SUBDIR = "onnx"
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class Exported:
    """An ONNX file in the cache, verified: where it is, its hash and size, and whether this call built it."""

    path: Path
    sha256: str
    size_mb: float
    built: bool  # False: reused from the cache
    seconds: float  # export time (0 when reused)
    key: str
    params: int = 0  # weights in the graph's initializers: deterministic, unlike the file size
    weights_mb: float = 0.0  # initializer bytes, MB

    def as_dict(self) -> dict[str, Any]:
        return {
            "onnx_path": str(self.path),
            "onnx_sha256": self.sha256,
            "onnx_size_mb": self.size_mb,
            "onnx_params": self.params,
            "onnx_weights_mb": self.weights_mb,
            "export_built": self.built,
            "export_seconds": self.seconds,
        }


def graph_figures(path: str | os.PathLike[str]) -> tuple[int, float]:
    """(weights, initializer MB) of an ONNX file: the figures to gate on.

    The file size is not one: exporting one checkpoint twice gave files 4.6% apart (3.91 and 4.09 MB for the
    bundled pruned model) with identical initializers and nodes. The difference is ``graph.value_info``, the
    intermediate shape annotations the exporter's shape inference writes (1094 entries in one file, 1531 in the
    other), which change nothing at run time.
    """
    import numpy as np
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    params = sum(int(np.prod(t.dims)) for t in graph.initializer)
    nbytes = sum(
        int(np.prod(t.dims)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize for t in graph.initializer
    )
    return params, nbytes / 1e6


def exporter_version() -> str:
    """The ultralytics version: its exporter decides the graph, so a new version means a new file."""
    import ultralytics

    return str(ultralytics.__version__)


def cache_key(checkpoint_sha256: str, imgsz: int, dynamic: bool = True, version: str | None = None) -> str:
    """File stem in the cache: ``<sha256[:16]>-<imgsz>-u<version>-dyn`` (``-fixed`` without dynamic axes)."""
    v = version or exporter_version()
    return f"{checkpoint_sha256[:16]}-{imgsz}-u{v}-{'dyn' if dynamic else 'fixed'}"


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verify(onnx_path: Path, expected: dict[str, Any]) -> str | None:
    """Why a cached file must not be used (missing, no sidecar, key or hash differs), or None when it is sound."""
    side = onnx_path.with_suffix(SIDECAR_SUFFIX)
    if not onnx_path.is_file():
        return "not cached"
    meta = _read_sidecar(side)
    if meta is None:
        return "no readable sidecar"
    for k, v in expected.items():
        if meta.get(k) != v:
            return f"sidecar {k} {meta.get(k)!r} != {v!r}"
    if sha256_of(onnx_path) != meta.get("onnx_sha256"):
        return "sha256 of the cached file differs from its sidecar (corrupt or tampered)"
    return None


def store_in_cache(target: Path, data: bytes, sidecar: dict[str, Any]) -> str:
    """Write ``data`` to ``target`` and its sidecar (``sidecar`` plus the file's sha256 and size), both atomically;
    return the sha256 that :func:`verify` checks before every later use."""
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(target, data)
    side = {**sidecar, "onnx_sha256": digest, "onnx_bytes": len(data)}
    atomic_write_bytes(target.with_suffix(SIDECAR_SUFFIX), (json.dumps(side, indent=2) + "\n").encode())
    return digest


def export_onnx(
    model: Any,
    checkpoint_sha256: str,
    imgsz: int,
    cache_dir: str | os.PathLike[str],
    dynamic: bool = True,
    name: str = "model",
    simplify: bool = True,
) -> Exported:
    """The verified ONNX export of ``model`` (an ``ultralytics.YOLO``), from the cache or built now.

    A failed export is one :class:`SlimbenchError` line naming ``name`` and the exporter's reason.
    """
    folder = Path(cache_dir) / SUBDIR
    key = cache_key(checkpoint_sha256, imgsz, dynamic)
    target = folder / f"{key}.onnx"
    expected = {
        "checkpoint_sha256": checkpoint_sha256,
        "imgsz": imgsz,
        "dynamic": dynamic,
        "ultralytics": exporter_version(),
    }
    if verify(target, expected) is None:
        meta = _read_sidecar(target.with_suffix(SIDECAR_SUFFIX)) or {}
        params, weights = graph_figures(target)
        return Exported(target, str(meta["onnx_sha256"]), target.stat().st_size / 1e6, False, 0.0, key, params, weights)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".export-{key}-", dir=folder))
    try:
        produced = _run_exporter(model, tmp, imgsz, dynamic, simplify, name)
        data = produced.read_bytes()
        digest = store_in_cache(target, data, {**expected, "simplify": simplify})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    params, weights = graph_figures(target)
    return Exported(target, digest, len(data) / 1e6, True, time.perf_counter() - t0, key, params, weights)


def _run_exporter(model: Any, tmp: Path, imgsz: int, dynamic: bool, simplify: bool, name: str) -> Path:
    """ultralytics' ``YOLO.export(format="onnx")`` on a deep copy whose output goes to ``tmp``."""
    from ultralytics.engine.model import Model

    if not isinstance(model, Model):
        raise SlimbenchError(f"{name}: ONNX export needs an ultralytics YOLO model, got {type(model).__name__}")
    if simplify:
        simplify = _installed("onnxslim")  # declared dependency; without it export plain rather than install it
    work = copy.deepcopy(model)
    work.model.pt_path = str(tmp / f"{name}.pt")  # the exporter writes <pt_path stem>.onnx
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # the exporter's banner and tips, a dozen lines per variant
    try:
        with warnings.catch_warnings():  # torch.onnx's own deprecation notices: not the user's to act on
            warnings.simplefilter("ignore", DeprecationWarning)
            # nms=False keeps YOLO26's NMS-free head when the checkpoint runs in that mode (the exporter otherwise
            # switches it to the one-to-many head, so the file would compute something else than the checkpoint)
            nms = False if getattr(work.model, "end2end", False) else None
            out = work.export(
                format="onnx", imgsz=imgsz, dynamic=dynamic, simplify=simplify, device="cpu", verbose=False, nms=nms
            )
    except Exception as e:  # noqa: BLE001 - the exporter's reason, in one line, naming the variant
        msg = " ".join(str(e).split()) or type(e).__name__
        raise SlimbenchError(f"{name}: ONNX export failed ({type(e).__name__}: {msg[:300]})") from e
    finally:
        LOGGER.setLevel(level)
    produced = Path(str(out)) if out else tmp / f"{name}.onnx"
    if not produced.is_file() or produced.stat().st_size == 0:
        raise SlimbenchError(f"{name}: ONNX export failed (the exporter wrote no file)")
    return produced


def _installed(dist: str) -> bool:
    from importlib.util import find_spec

    return find_spec(dist) is not None

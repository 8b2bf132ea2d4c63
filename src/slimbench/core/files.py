"""Files and folders, one way each: reading input files (text, image folders) with one line per mistake, resolving
the paths users write, the cache folder's default, and writing files so that no reader, and no crash, ever sees half
of one: the one atomic writer of slimbench.

Checkpoints, manifests, summaries, the baseline, exports and the synthetic dataset all land through
:func:`atomic_write_bytes`: the bytes go to a hidden temp file in the same folder (same file system, so the rename
is atomic), which then replaces the target.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from slimbench.core.errors import SlimbenchError


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename; parents are created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}-{threading.get_ident()}.tmp")  # unique per process and thread
    try:
        tmp.write_bytes(data)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def atomic_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy a file's bytes to ``dst`` with :func:`atomic_write_bytes`."""
    return atomic_write_bytes(dst, Path(src).read_bytes())


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """A UTF-8 text input (``what``: "variants file", "dataset YAML"); missing, a folder or not UTF-8 is one line."""
    p = Path(path)
    if not p.exists():
        raise SlimbenchError(f"{p}: {what} not found")
    if not p.is_file():
        raise SlimbenchError(f"{p}: {what} is not a file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SlimbenchError(f"{p}: {what} is not UTF-8 text ({e.reason})") from None
    except OSError as e:  # unreadable: permissions, a vanished mount
        raise SlimbenchError(f"{p}: {what} cannot be read ({e.strerror or e})") from None


def read_json_object(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """A JSON object input (``what``: "make-fixtures manifest", "summary"): missing, not UTF-8, not JSON or another
    JSON value is one line naming the file."""
    try:
        doc = json.loads(read_text(path, what))
    except json.JSONDecodeError as e:
        raise SlimbenchError(f"{path}: {what} is not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(doc, dict):
        raise SlimbenchError(f"{path}: {what} is not a JSON object")
    return doc


IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm"})
"""Image files ultralytics' data loader reads (its IMG_FORMATS, less HEIC which needs an optional plugin)."""


def images_in(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively, by suffix), sorted; [] when there are none."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def image_files(path: Path) -> list[Path]:
    """The agreement images: a folder's (recursively, sorted) or one image; one error line when there are none."""
    if not path.exists():
        raise SlimbenchError(f"{path}: agreement images not found")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SlimbenchError(f"{path}: not an image ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return [path]
    files = images_in(path)
    if not files:
        raise SlimbenchError(f"{path}: no images in the folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


CACHE_DIR = ".slimbench-cache"
"""Generated datasets, ONNX exports and validator scratch space (safe to delete); relative to the folder it sits in."""


def cache_folder(configured: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``configured`` when given, else :data:`CACHE_DIR` in the working directory."""
    return Path(configured) if configured is not None else Path.cwd() / CACHE_DIR


def resolve_path(path: str, base: Path) -> Path:
    """A path as the user wrote it (``~`` expanded); a relative one is taken relative to ``base``."""
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else base / p


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as the user would type it: relative to the working folder when inside it, else as given (messages,
    report titles: the bundled sets' configs read fixtures/yolo11n/slimbench.toml, not a bare slimbench.toml)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

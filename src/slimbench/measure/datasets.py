"""Datasets for mAP: a YOLO dataset YAML read and checked the way ultralytics resolves it, or the bundled val split.

Why checked here: ultralytics' loader drops images with bad labels with a warning and reports an mAP on the rest,
and a dataset whose class names are not the model's gives an mAP that means nothing. Each problem (a YAML that is
missing, has no val split or no images, labels with class ids outside the model's classes, dataset class names that
differ from the model's) is one :class:`SlimbenchError` line naming the file and the mismatch.

Without ``--data`` / ``settings.data`` the dataset is the bundled synthetic val split, regenerated bit for bit
from the parameters in ``manifest.json`` next to the suite config (or the build's defaults) into the cache folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import IMAGE_SUFFIXES, read_json_object

MANIFEST = "manifest.json"
BUNDLED_DATASET: dict[str, int] = {"seed": 0, "train": 1000, "val": 250, "imgsz": 256}
"""The bundled variants' training data (slimbench make-fixtures), used when no manifest.json says otherwise."""

Names = dict[int, str]


@dataclass(frozen=True)
class Dataset:
    """A YOLO dataset YAML, checked: its root, the val split's entries and image files, its class names."""

    yaml: Path
    root: Path
    val: tuple[Path, ...]  # val entries as resolved: folders, list files or images
    images: tuple[Path, ...]
    names: Names | None = None  # None when the YAML gives only nc
    nc: int | None = None
    bundled: bool = False  # the generated synthetic val split
    imgsz: int | None = None  # training image size, when known (the bundled split)

    def describe(self) -> str:
        return f"bundled synthetic val split ({self.yaml.parent.name})" if self.bundled else str(self.yaml)


def read_dataset(path: str | os.PathLike[str], bundled: bool = False, imgsz: int | None = None) -> Dataset:
    """Read a dataset YAML the way ultralytics resolves it and list its val images; one error line otherwise.

    The root is ``path:`` (relative: to the working directory, else ultralytics' datasets dir, else the YAML's
    folder) or the YAML's folder; ``val:`` is a folder, a list file or a list of them, relative to the root.
    """
    import yaml

    from slimbench.core.files import read_text

    p = Path(path)
    try:
        data = yaml.safe_load(read_text(p, "dataset YAML"))
    except yaml.YAMLError as e:
        raise SlimbenchError(f"{p}: malformed dataset YAML: {' '.join(str(e).split())[:200]}") from None
    if not isinstance(data, dict):
        raise SlimbenchError(f"{p}: expected a YOLO dataset mapping (path, val, names), got {type(data).__name__}")
    val = data.get("val", data.get("validation"))
    if not val or not (isinstance(val, str) or (isinstance(val, list) and all(isinstance(v, str) for v in val))):
        raise SlimbenchError(f"{p}: no val split (expected 'val: <folder or list file>' relative to 'path:')")
    names, nc = _dataset_names(data, p)
    root = _dataset_root(data.get("path"), p)
    entries: list[Path] = []
    for v in [val] if isinstance(val, str) else val:
        x = (root / v).resolve()
        if not x.exists() and v.startswith("../"):
            x = (root / v[3:]).resolve()
        if not x.exists():
            raise SlimbenchError(f"{p}: val split not found: {x}")
        entries.append(x)
    images = _list_images(entries, p)
    if not images:
        raise SlimbenchError(f"{p}: no images in the val split ({', '.join(str(e) for e in entries)})")
    return Dataset(p, root, tuple(entries), tuple(images), names, nc, bundled, imgsz)


def _dataset_names(data: dict[str, Any], where: Path) -> tuple[Names | None, int | None]:
    raw, nc = data.get("names"), data.get("nc")
    if raw is None and nc is None:
        raise SlimbenchError(f"{where}: no class names (expected 'names:' or 'nc:')")
    names: Names | None = None
    if isinstance(raw, list):
        names = {i: str(n) for i, n in enumerate(raw)}
    elif isinstance(raw, dict):
        try:
            names = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise SlimbenchError(f"{where}: names: expected integer class ids as keys") from None
    elif raw is not None:
        raise SlimbenchError(f"{where}: names: expected a list or a mapping of class id to name")
    if names is not None:
        return names, len(names)
    if isinstance(nc, bool) or not isinstance(nc, int) or nc < 1:
        raise SlimbenchError(f"{where}: nc: expected a positive integer, got {nc!r}")
    return None, nc


def _dataset_root(raw: Any, yaml_path: Path) -> Path:
    if not raw:
        return yaml_path.parent.resolve()
    p = Path(os.path.expanduser(str(raw)))
    if p.is_absolute():
        return p
    from ultralytics.utils import DATASETS_DIR

    for base in (Path.cwd(), Path(DATASETS_DIR), yaml_path.parent):  # ultralytics' order, then the YAML's folder
        if (base / p).exists():
            return (base / p).resolve()
    return (yaml_path.parent / p).resolve()


def _list_images(entries: Sequence[Path], where: Path) -> list[Path]:
    """Image files of the val entries, as ultralytics' loader lists them (folders recursively, list files by line)."""
    files: list[Path] = []
    for e in entries:
        if e.is_dir():
            files += [f for f in e.rglob("*") if f.is_file()]
        elif e.suffix.lower() in IMAGE_SUFFIXES:
            files.append(e)
        else:
            try:
                lines = e.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise SlimbenchError(f"{where}: cannot read the val list file {e} ({err})") from None
            for line in (x.strip() for x in lines):
                if line:
                    f = Path(line)
                    files.append(f if f.is_absolute() else (e.parent / f).resolve())
    return sorted({f for f in files if f.suffix.lower() in IMAGE_SUFFIXES})


def label_files(images: Sequence[Path]) -> list[Path]:
    """Label file of each image: the last ``images`` folder becomes ``labels``, the suffix ``.txt`` (YOLO layout)."""
    from ultralytics.data.utils import img2label_paths

    return [Path(p) for p in img2label_paths([str(i) for i in images])]


def check_labels(ds: Dataset, nc: int, model: str) -> int:
    """Refuse labels whose class id is outside ``range(nc)`` or the dataset's own classes; return the box count.

    ultralytics' loader would drop such an image with a warning and report an mAP on the rest.
    """
    limit, whose = nc, f"the {nc} classes of {model}"
    if ds.nc is not None and ds.nc < nc:
        limit, whose = ds.nc, f"the {ds.nc} classes of the dataset"
    boxes = 0
    for lf in label_files(ds.images):
        if not lf.is_file():
            continue  # an image without labels is a background image
        try:
            text = lf.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise SlimbenchError(f"{lf}: cannot read labels ({e})") from None
        for n, line in enumerate(text.splitlines(), 1):
            token = line.split(maxsplit=1)[0] if line.strip() else None
            if token is None:
                continue
            try:
                value = float(token)
            except ValueError:
                raise SlimbenchError(f"{lf}:{n}: not a YOLO label line 'cls x y w h': {line.strip()[:60]!r}") from None
            if value != int(value) or not 0 <= value < limit:
                raise SlimbenchError(f"{lf}:{n}: class id {token} is outside 0-{limit - 1}, {whose}; dataset {ds.yaml}")
            boxes += 1
    return boxes


def names_diff(a: Names, b: Names, ids: Sequence[int] | None = None) -> str:
    """The differences between two class-name maps, shortly: ``"id 1 'square' vs 'circle', ..."`` ("" if none)."""
    keys = sorted(set(a) | set(b)) if ids is None else list(ids)
    diffs = [f"id {i} {a.get(i)!r} vs {b.get(i)!r}" for i in keys if a.get(i) != b.get(i)]
    head = f"{len(a)} classes vs {len(b)}; " if ids is None and len(a) != len(b) else ""
    more = f", ... ({len(diffs)} ids differ)" if len(diffs) > 3 else ""
    return head + ", ".join(diffs[:3]) + more if diffs else ""


def check_dataset_names(ds: Dataset, names: Names, model: str) -> None:
    """The dataset's class names must be the model's for every id the dataset declares (else mAP is meaningless)."""
    if ds.names is None:
        return
    diff = names_diff(ds.names, names, ids=sorted(ds.names))
    if diff:
        raise SlimbenchError(f"{ds.yaml}: class names differ from {model}'s: {diff}")


def bundled_params(manifest: Path | None) -> dict[str, int]:
    """The bundled dataset's generator parameters from ``manifest.json`` (its "dataset" record), else the defaults."""
    params = dict(BUNDLED_DATASET)
    if manifest is not None and manifest.is_file():
        record = read_json_object(manifest, "manifest").get("dataset") or {}
        for key in params:
            value = record.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                params[key] = value
    return params


def bundled_dataset(cache_dir: Path, params: dict[str, int]) -> Path:
    """Generate (once; later calls find it complete) the synthetic val split and return its data.yaml."""
    from slimbench.data.synthetic import make_dataset

    p = params
    out = cache_dir / "data" / f"shapes-seed{p['seed']}-val{p['val']}-{p['imgsz']}px"
    return make_dataset(out, train=p["train"], val=p["val"], imgsz=p["imgsz"], seed=p["seed"], splits=("val",))

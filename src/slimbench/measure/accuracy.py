"""Accuracy per variant: mAP on a labelled dataset, and agreement with the reference on unlabeled images.

Why: a pruned model can find as many boxes as the original and still be wrong, and users gate on the mAP drop.

- **mAP** (mAP50, mAP50-95, precision, recall) comes from ultralytics' own validator on the dataset's val split,
  once per variant and session, offline: no plots, no JSON, no font or dataset download, scratch files in the
  suite's cache folder (never ``runs/`` in the user's working directory).
- **Agreement** needs no labels: the reference's detections at the suite's ``conf`` are the ground truth, and each
  candidate's detections down to ``conf=0.001``, ranked by confidence, are scored against them as a detector is
  scored against labels (AP at IoU 0.5, per class, averaged over the classes the reference found). A candidate
  that finds exactly the reference's boxes scores 1.0.

Inputs are checked when the suite session starts (:meth:`Accuracy.check_inputs`): a dataset YAML that is missing,
has no val split or no images, labels with class ids outside the model's classes, dataset or variant class names
that differ from the reference's. Each is one :class:`SlimbenchError` line naming the file and the mismatch.

Without ``--data`` / ``settings.data`` the dataset is the bundled synthetic val split, regenerated bit for bit
from the parameters in ``manifest.json`` next to the suite config (or the build's defaults) into the cache folder.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimbench.core.errors import SlimbenchError

if TYPE_CHECKING:
    from ultralytics import YOLO

    from slimbench.config.suite import Settings, SuiteConfig
    from slimbench.model.detections import Detections

CANDIDATE_CONF = 0.001
"""Candidates are ranked down to this confidence for agreement AP (what ultralytics' validator uses for mAP)."""
AGREEMENT_IOU = 0.5
"""IoU for a candidate box to match a reference box (same class): agreement is an mAP50."""
VAL_BATCH = 16
"""Validator batch size (ultralytics' default); it does not change the figures."""
SMOKE_VAL_IMAGES = 8
"""Smoke mode validates on the first images of the val split only: the code path, not a figure to gate on."""
MANIFEST = "manifest.json"
BUNDLED_DATASET: dict[str, int] = {"seed": 0, "train": 1000, "val": 250, "imgsz": 256}
"""The bundled variants' training data (slimbench make-fixtures), used when no manifest.json says otherwise."""
IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm"})
"""Image files ultralytics' data loader reads (its IMG_FORMATS, less HEIC which needs an optional plugin)."""

Names = dict[int, str]


# --------------------------------------------------------------------------------------------- datasets


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
        try:
            record = json.loads(manifest.read_text(encoding="utf-8")).get("dataset") or {}
        except (OSError, ValueError, AttributeError) as e:
            raise SlimbenchError(f"{manifest}: unreadable manifest ({e})") from None
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


def image_files(path: Path) -> list[Path]:
    """Images in a folder (recursively, sorted) or one image; one error line when there are none."""
    if not path.exists():
        raise SlimbenchError(f"{path}: agreement images not found")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SlimbenchError(f"{path}: not an image ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return [path]
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SlimbenchError(f"{path}: no images in the folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


# --------------------------------------------------------------------------------------------- validator


@contextlib.contextmanager
def _offline_dataset_check() -> Iterator[None]:
    """ultralytics' dataset check fetches a plot font from the internet when it is not cached; no plot is drawn
    here, so the check is skipped and validation never touches the network."""
    import ultralytics.data.utils as data_utils

    original = getattr(data_utils, "check_font", None)
    if original is None:
        yield
        return
    data_utils.check_font = lambda *a, **k: None
    try:
        yield
    finally:
        data_utils.check_font = original


def write_val_yaml(ds: Dataset, names: Names, out_dir: Path, limit: int | None = None) -> Path:
    """A self-contained YAML for the validator: absolute val paths, the model's names, ``train`` = val.

    Why not the user's file: it may lack ``train`` (the validator insists on one) or hold a ``download`` script,
    and smoke mode needs the first ``limit`` images only (a list file).
    """
    import yaml

    val: list[str] = [str(e) for e in ds.val]
    key = hashlib.sha256(json.dumps([val, names, limit, str(ds.yaml)]).encode()).hexdigest()[:16]
    folder = out_dir / key
    folder.mkdir(parents=True, exist_ok=True)
    if limit is not None:
        listing = folder / "val.txt"
        listing.write_text("".join(f"{p}\n" for p in ds.images[:limit]), encoding="utf-8")
        val = [str(listing)]
    spec = {"path": str(ds.root), "train": val, "val": val, "names": {int(k): v for k, v in names.items()}}
    target = folder / "data.yaml"
    target.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return target


def run_validator(
    model: YOLO, data: str | Path, imgsz: int, device: str = "cpu", workdir: Path | None = None, batch: int = VAL_BATCH
) -> dict[str, Any]:
    """mAP50, mAP50-95, precision and recall of ``model`` on ``data``'s val split, by ultralytics' validator.

    Runs on a copy (the validator fuses the model in place), writes nothing outside ``workdir`` (a temp folder,
    removed afterwards) and never downloads. ``predictions`` counts the boxes the validator scored: with none,
    precision is undefined (0 of 0, None), where ultralytics reports 0.0; mAP and recall stay 0, which is what
    finding none of the labelled boxes is worth. ``labels`` counts the labelled boxes: with none, recall is
    undefined (None).
    """
    net = copy.deepcopy(model)
    parent = Path(workdir) if workdir is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    seen = {"predictions": 0, "labels": 0}

    def count_predictions(validator: Any) -> None:  # the stats are cleared once the metrics are computed
        stats = validator.metrics.stats
        seen["predictions"] = sum(len(c) for c in stats.get("conf", []))
        seen["labels"] = sum(len(c) for c in stats.get("target_cls", []))

    net.add_callback("on_val_batch_end", count_predictions)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=parent, prefix="val-") as tmp, _offline_dataset_check():
        m = net.val(
            data=str(data),
            imgsz=imgsz,
            batch=batch,
            device=device,
            plots=False,
            save_json=False,
            save_txt=False,
            verbose=False,
            project=tmp,
            name="val",
            exist_ok=True,
        )
    return {
        "map50": float(m.box.map50),
        "map50_95": float(m.box.map),
        "precision": float(m.box.mp) if seen["predictions"] else None,
        "recall": float(m.box.mr) if seen["labels"] else None,
        "predictions": seen["predictions"],
        "labels": seen["labels"],
        "seconds": round(time.perf_counter() - t0, 2),
    }


# --------------------------------------------------------------------------------------------- agreement


def coco_ap(tp: np.ndarray, conf: np.ndarray, n_true: int) -> float:
    """Average precision as pycocotools computes it: detections ranked by confidence, precision made monotone
    (the best precision at any higher recall), read at the 101 recall points 0, 0.01, ..., 1 (0 beyond the recall
    reached) and averaged.

    Why not ultralytics' ``ap_per_class``: its trapezoid over a curve that drops to 0 at recall 1 caps a perfect
    match at 0.995, and "agrees with itself" should read 1.0.
    """
    if n_true <= 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-np.asarray(conf), kind="stable")
    hits = np.asarray(tp, dtype=np.float64)[order]
    tpc = np.cumsum(hits)
    recall = tpc / n_true
    precision = tpc / np.arange(1, len(hits) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0.0, 1.0, 101), side="left")
    return float(np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0).mean())


@dataclass(frozen=True)
class AgreementScore:
    """A candidate scored against the reference's boxes on unlabeled images.

    ``map50``: mean over the reference's classes of AP at IoU 0.5, candidates ranked down to conf 0.001;
    ``recall`` / ``precision``: at the suite's conf, the share of reference boxes found / of candidate boxes that
    the reference has. A figure is undefined only when its own denominator is zero (precision: no candidate box at
    conf; recall and mAP50: no reference box): None, and :meth:`shown` gives the reason (``"n/a (0 detections)"``)
    that the summary, report and baseline show instead of a number. A candidate that finds nothing scores 0.0.
    """

    map50: float | None
    recall: float | None
    precision: float | None
    matched: int
    reference_boxes: int
    candidate_boxes: int  # at conf >= the reference's conf
    images: int
    conf: float
    iou_threshold: float
    per_class: dict[int, float] = field(default_factory=dict)
    candidate_boxes_ranked: int = 0  # down to CANDIDATE_CONF: what mAP50 ranks

    def undefined(self, key: str) -> str | None:
        """Why ``key`` ("map50", "recall", "precision") has no value, or None."""
        from slimbench.model.detections import undefined_reason

        return undefined_reason(key, self.reference_boxes, self.candidate_boxes)

    def shown(self, key: str) -> float | str:
        """The figure, or the reason it is undefined: what reports and the baseline hold."""
        value = getattr(self, key)
        return value if value is not None else str(self.undefined(key))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), **{k: self.shown(k) for k in ("map50", "recall", "precision")}}


def agreement_score(
    reference: Sequence[Detections],
    candidate: Sequence[Detections],
    conf: float,
    iou_threshold: float = AGREEMENT_IOU,
) -> AgreementScore:
    """Score ``candidate`` (detections per image, low conf) against ``reference``'s boxes with conf >= ``conf``."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference images vs {len(candidate)} candidate images")
    from slimbench.model.detections import Detections, match_flags

    tps, confs, classes, truth = [], [], [], []
    for ref, cand in zip(reference, candidate, strict=True):
        keep = ref.confs >= conf
        gt = Detections(ref.boxes[keep], ref.classes[keep], ref.confs[keep])
        tps.append(match_flags(gt, cand, iou_threshold))
        confs.append(cand.confs)
        classes.append(cand.classes)
        truth.append(gt.classes)
    tp, cf, cl, gt_cls = (np.concatenate(x) if x else np.zeros(0) for x in (tps, confs, classes, truth))
    per_class = {
        int(c): coco_ap(tp[cl == c], cf[cl == c], int((gt_cls == c).sum())) for c in np.unique(gt_cls.astype(int))
    }
    at_conf = cf >= conf
    matched, n_ref, n_cand = int(tp[at_conf].sum()), len(gt_cls), int(at_conf.sum())
    return AgreementScore(  # each figure undefined only when its own denominator is zero, never a perfect 1.0
        map50=float(np.mean(list(per_class.values()))) if per_class else None,
        recall=matched / n_ref if n_ref else None,
        precision=matched / n_cand if n_cand else None,
        candidate_boxes_ranked=len(cf),
        matched=matched,
        reference_boxes=n_ref,
        candidate_boxes=n_cand,
        images=len(reference),
        conf=conf,
        iou_threshold=iou_threshold,
        per_class=per_class,
    )


# --------------------------------------------------------------------------------------------- the session's part


class Accuracy:
    """A suite session's accuracy state: the checked dataset and images, validator results and detections (cached
    per checkpoint file, dataset, image size and device, so each variant is validated once per session).

    It holds no session: the models it measures are passed in by the caller (:class:`bench.session.SuiteSession`
    wraps each call), so the two never point at each other."""

    def __init__(
        self, config: SuiteConfig, settings: Settings, smoke: bool = False, cache_dir: Path | None = None
    ) -> None:
        self.config = config
        self.settings = settings  # the session's: smoke mode and the thread count may differ from config.settings
        self.smoke = smoke
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path.cwd() / ".slimbench-cache"
        self._dataset: Dataset | None = None
        self._images: list[Path] | None = None
        self._metrics: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._detections: dict[tuple[Any, ...], list[Detections]] = {}
        self._val_yaml: Path | None = None
        self._no_labels: str | None = None

    # ---------------------------------------------------------------- inputs

    def check_inputs(self, class_names: Mapping[str, dict[int, str]]) -> None:
        """Session start: same classes in every variant (``class_names`` by variant name); the configured dataset
        and images exist and fit them."""
        ref = self.config.variants[self.config.reference]
        ref_names = class_names[ref.name]
        for v in self.config.variants.values():
            if v.is_reference:
                continue
            diff = names_diff(class_names[v.name], ref_names)
            if diff:
                raise SlimbenchError(f"{v.path}: class names differ from reference {ref.name!r} ({ref.path}): {diff}")
        if self.settings.data is not None:
            ds = read_dataset(self.settings.data)
            check_dataset_names(ds, ref_names, f"{ref.name} ({ref.path})")
            if check_labels(ds, len(ref_names), f"{ref.name} ({ref.path})") == 0:
                self._no_labels = f"{ds.yaml} has no labelled boxes in its val split: mAP is undefined (n/a)"
            self._dataset = ds
        if self.settings.agreement_images is not None:
            self._images = image_files(self.settings.agreement_images)

    @property
    def manifest(self) -> Path | None:
        src = self.config.source
        return src.parent / MANIFEST if src is not None else None

    def unsupported(self, reference_names: Mapping[int, str]) -> str | None:
        """Why mAP cannot be measured here, or None: the bundled dataset's classes are the shapes (variants with
        other classes need ``--data``), and a dataset without labels has no mAP. A configured mAP limit then stops
        the run at start (:func:`slimbench.bench.session.unmeasurable_limits`); without one the mAP test skips."""
        if self.settings.data is not None:
            return self._no_labels
        from slimbench.data.synthetic import CLASS_NAMES

        names = dict(reference_names)
        shapes = dict(enumerate(CLASS_NAMES))
        if names != shapes:
            return (
                f"the default dataset (bundled synthetic shapes, {len(shapes)} classes) does not match "
                f"{self.config.reference}'s classes ({names_diff(names, shapes)}); give --data YAML"
            )
        return None

    def dataset(self) -> Dataset:
        """The checked dataset: ``settings.data``, or the bundled val split (generated on first use)."""
        if self._dataset is None:
            params = bundled_params(self.manifest)
            yaml_path = bundled_dataset(self.cache_dir, params)
            self._dataset = read_dataset(yaml_path, bundled=True, imgsz=params["imgsz"])
        return self._dataset

    def val_imgsz(self, reference: YOLO) -> int:
        """``settings.val_imgsz``; else the dataset's training size (bundled), the reference checkpoint's training
        size, or the suite's imgsz, in that order."""
        if self.settings.val_imgsz is not None:
            return self.settings.val_imgsz
        ds = self.dataset()
        if ds.imgsz:
            return ds.imgsz
        trained = getattr(reference, "overrides", {}).get("imgsz")
        if isinstance(trained, int) and not isinstance(trained, bool) and trained >= 32:
            return trained
        return self.settings.imgsz

    def device(self) -> str:
        """The first requested accelerator that is present, else the CPU (figures depend little on the device)."""
        from slimbench.measure.timing import device_available

        return next((d for d in self.settings.device if d != "cpu" and device_available(d)), "cpu")

    def agreement_images(self) -> list[Path]:
        """``--agreement-images`` / ``settings.agreement_images``, else the suite's sample images."""
        if self._images is None:
            folder = self.settings.agreement_images
            self._images = image_files(folder) if folder is not None else list(dict.fromkeys(self.settings.images))
        return self._images

    # ---------------------------------------------------------------- figures

    def _file_key(self, name: str) -> tuple[str, ...]:
        v = self.config.variants[name]
        st = os.stat(v.path)
        return (v.sha256 or "", str(Path(v.path).resolve()), str(st.st_mtime_ns), str(st.st_size))

    def metrics(self, name: str, model: YOLO, reference: YOLO) -> dict[str, Any]:
        """The validator's figures for variant ``name`` loaded as ``model`` (run once per checkpoint, dataset, imgsz,
        device and session); ``reference``'s classes and training size set the dataset up."""
        ds, imgsz, device = self.dataset(), self.val_imgsz(reference), self.device()
        limit = SMOKE_VAL_IMAGES if self.smoke else None
        key = (self._file_key(name), str(ds.yaml), imgsz, device, limit)
        if key not in self._metrics:
            if self._val_yaml is None:
                names = dict(reference.names)
                self._val_yaml = write_val_yaml(ds, names, self.cache_dir / "val-data", limit)
            figs = run_validator(model, self._val_yaml, imgsz, device, self.cache_dir / "val-runs")
            figs.update(
                data=ds.describe(),
                data_yaml=str(ds.yaml),
                val_images=min(len(ds.images), limit or len(ds.images)),
                val_imgsz=imgsz,
                device=device,
            )
            self._metrics[key] = figs
        return self._metrics[key]

    def detections(self, name: str, predictor: YOLO) -> list[Detections]:
        """A variant's detections on each agreement image, down to conf 0.001, at the suite's imgsz and NMS IoU;
        ``predictor`` is the variant's model for ultralytics' predictor (which fuses it in place)."""
        from slimbench.model.detections import detect, read_image

        images, device = self.agreement_images(), self.device()
        s = self.settings
        key = (self._file_key(name), tuple(images), s.imgsz, s.iou, device)
        if key not in self._detections:
            self._detections[key] = [
                detect(predictor, read_image(p), s.imgsz, CANDIDATE_CONF, s.iou, device) for p in images
            ]
        return self._detections[key]

    def agreement(self, name: str, predictor: YOLO, reference: YOLO) -> AgreementScore:
        """``name`` scored against the reference's detections (conf >= the suite's conf) on the agreement images;
        ``predictor`` and ``reference`` as for :meth:`detections`."""
        ref = self.detections(self.config.reference, reference)
        return agreement_score(ref, self.detections(name, predictor), self.settings.conf, AGREEMENT_IOU)

    def summary_lines(self, figures: Mapping[str, dict[str, Any]]) -> list[str]:
        """The recorded accuracy figures (the session's ``figures``) as a small table for the terminal summary
        ("" cells: not measured)."""
        rows = [(n, f["accuracy"]) for n, f in figures.items() if f.get("accuracy")]
        if not rows:
            return []
        first = next((a for _, a in rows if "data" in a), None)
        lines = []
        if first is not None:
            lines.append(
                f"accuracy: mAP on {first['data']}, {first['val_images']} images at {first['val_imgsz']}px "
                f"({first['device']}); agreement with {self.config.reference}'s boxes at conf "
                f"{self.settings.conf} on {len(self.agreement_images())} image(s)"
            )
        else:
            lines.append(f"accuracy: agreement with {self.config.reference}'s boxes at conf {self.settings.conf}")
        cols = [
            ("mAP50", "map50"),
            ("mAP50-95", "map50_95"),
            ("P", "precision"),
            ("R", "recall"),
            ("drop", "map50_95_drop"),
            ("agr mAP50", "agreement_map50"),
            ("agr R", "agreement_recall"),
            ("agr P", "agreement_precision"),
        ]
        lines.append(f"{'variant':<16}" + "".join(f"{label:>10}" for label, _ in cols))
        for name, a in rows:
            cells = [a.get(key) for _, key in cols]
            text = "".join(
                f"{v:>10.3f}" if isinstance(v, float) else f"{'n/a':>10}" if isinstance(v, str) else f"{'':>10}"
                for v in cells
            )
            lines.append(f"{name:<16}{text}".rstrip())
        return lines

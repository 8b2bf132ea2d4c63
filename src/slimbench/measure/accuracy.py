"""Accuracy per variant in a suite session: mAP on a labelled dataset, and agreement with the reference on
unlabeled images.

Why: a pruned model can find as many boxes as the original and still be wrong, and users gate on the mAP drop.
:class:`Accuracy` holds a session's part: the checked dataset (:mod:`measure.datasets`) and images, the validator's
figures (:mod:`measure.validator`) and the detections scored for agreement (:mod:`measure.agreement`), each computed
once per variant and session.

Inputs are checked when the suite session starts (:meth:`Accuracy.check_inputs`): a dataset YAML that is missing,
has no val split or no images, labels with class ids outside the model's classes, dataset or variant class names
that differ from the reference's. Each is one :class:`SlimbenchError` line naming the file and the mismatch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import cache_folder, image_files
from slimbench.measure.agreement import AGREEMENT_IOU, CANDIDATE_CONF, AgreementScore, agreement_score
from slimbench.measure.datasets import (
    MANIFEST,
    Dataset,
    bundled_dataset,
    bundled_params,
    check_dataset_names,
    check_labels,
    names_diff,
    read_dataset,
)
from slimbench.measure.validator import has_nms_free_head, run_validator, write_val_yaml

if TYPE_CHECKING:
    from ultralytics import YOLO

    from slimbench.config.suite import Settings, SuiteConfig
    from slimbench.model.detections import Detections

SMOKE_VAL_IMAGES = 8
"""Smoke mode validates on the first images of the val split only: the code path, not a figure to gate on."""


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
        self.cache_dir = cache_folder(cache_dir)
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
        the run at start (:func:`slimbench.bench.unmeasurable.unmeasurable_limits`); without one the mAP test skips."""
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
        device and session); ``reference``'s classes and training size set the dataset up. A model with a one-to-one
        (NMS-free) head is validated through it too: ``map50_nms_free``, ``map50_95_nms_free``."""
        ds, imgsz, device = self.dataset(), self.val_imgsz(reference), self.device()
        limit = SMOKE_VAL_IMAGES if self.smoke else None
        key = (self._file_key(name), str(ds.yaml), imgsz, device, limit)
        if key not in self._metrics:
            if self._val_yaml is None:
                names = dict(reference.names)
                self._val_yaml = write_val_yaml(ds, names, self.cache_dir / "val-data", limit)
            figs = run_validator(model, self._val_yaml, imgsz, device, self.cache_dir / "val-runs")
            if has_nms_free_head(model):  # the one-to-one head too: what a user shipping NMS-free gets
                free = run_validator(model, self._val_yaml, imgsz, device, self.cache_dir / "val-runs", nms_free=True)
                figs.update(map50_nms_free=free["map50"], map50_95_nms_free=free["map50_95"])
                figs["seconds"] = round(figs["seconds"] + free["seconds"], 2)
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

    def summary_lines(self, accuracy: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The recorded accuracy figures (variant -> its ``accuracy`` record) as a small table for the terminal
        summary ("" cells: not measured)."""
        from slimbench.measure.accuracy_table import accuracy_lines

        return accuracy_lines(accuracy, self.config.reference, self.settings.conf, self.agreement_images)

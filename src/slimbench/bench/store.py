"""Each variant's checkpoint and what a run makes from it, each made once: the checkpoint as loaded, its static
figures, a fused copy for timing, a copy for ultralytics' predictor, the ONNX export, detections on the sample images,
the export's parity with the checkpoint; and the run's figures they are recorded in.

Apart from the session so the deployment matrix (``bench.matrix``) gets the variants' models and files without
getting the whole session.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import cache_folder

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn
    from ultralytics import YOLO

    from slimbench.bench.figures import Figures
    from slimbench.config.suite import Settings, SuiteConfig
    from slimbench.model.detections import Detections
    from slimbench.runtimes.export import Exported
    from slimbench.runtimes.registry import Runners

PARITY_IOU = 0.95
"""IoU for an exported model's box to count as the same box as the checkpoint's (same class): parity, not agreement."""


class VariantStore:
    """The variants' checkpoints and their copies and files for one run (see the module doc)."""

    def __init__(
        self,
        config: SuiteConfig,
        settings: Settings,
        figures: Figures,
        runners: Runners,
        images: dict[str, np.ndarray],
        image_paths: dict[str, Path],
        cache_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.figures = figures
        self.runners = runners
        self.images = images  # image id -> BGR array, decoded by the session at load
        self.image_paths = image_paths
        self.cache_dir = cache_dir  # generated datasets and validator scratch; None: .slimbench-cache in the cwd
        self.models: dict[str, YOLO] = {}
        self._static: dict[str, dict[str, Any]] = {}
        self._timing: dict[tuple[str, str], nn.Module] = {}
        self._inputs: dict[tuple[int, str], torch.Tensor] = {}
        self._predictors: dict[tuple[str, str], YOLO] = {}
        self._detections: dict[tuple[str, str], Detections] = {}
        self._onnx: dict[str, Exported | SlimbenchError] = {}
        self._sha: dict[str, str] = {}
        self._layer_gflops: dict[str, dict[str, float]] = {}

    @property
    def cache(self) -> Path:
        """The run's cache folder (exports, INT8 files, datasets)."""
        return cache_folder(self.cache_dir)

    def model(self, name: str) -> YOLO:
        """The checkpoint as loaded, never fused, moved or run: static metrics read this one."""
        if name not in self.models:
            from slimbench.model.checkpoint import load_detector

            v = self.config.variants[name]
            self.models[name] = load_detector(v.path, v.sha256)
        return self.models[name]

    # ------------------------------------------------------------ static figures

    def static(self, name: str) -> dict[str, Any]:
        """Static metrics of a variant (computed once), with ratios against the reference."""
        if name not in self._static:
            from slimbench.model.static_metrics import channels_removed_pct, static_metrics

            v = self.config.variants[name]
            figs = static_metrics(self.model(name), v.path, self.settings.imgsz)
            if not v.is_reference:
                ref = self.static(self.config.reference)
                figs["params_ratio"] = _ratio(figs["params"], ref["params"])
                figs["gflops_ratio"] = _ratio(figs["gflops"], ref["gflops"])
                figs["size_ratio"] = _ratio(figs["normalized_size_mb"], ref["normalized_size_mb"])
                figs["file_size_ratio"] = _ratio(figs["file_size_mb"], ref["file_size_mb"])
                figs["channels_removed_pct"] = channels_removed_pct(ref["prunable_channels"], figs["prunable_channels"])
            else:
                figs.update(params_ratio=1.0, gflops_ratio=1.0, size_ratio=1.0, file_size_ratio=1.0)
                figs["channels_removed_pct"] = 0.0
            figs["stored_dtype"] = self.figures[name].stored_dtype
            self._static[name] = figs
            self.figures[name].static = figs
        return self._static[name]

    # ------------------------------------------------------------ timing

    def timing_net(self, name: str, device: str) -> nn.Module:
        """A fused eval copy of the variant on ``device`` (FP32, or FP16 on CUDA with settings.half; cached)."""
        key = (name, device)
        if key not in self._timing:
            from slimbench.measure.timing import timing_model

            self._timing[key] = timing_model(self.model(name), device, half=self.half_on(device))
        return self._timing[key]

    def half_on(self, device: str) -> bool:
        """Whether ``device`` is timed in FP16 (settings.half, CUDA only)."""
        from slimbench.measure.timing import is_cuda

        return self.settings.half and is_cuda(device)

    def timing_dtype(self, device: str) -> str:
        return "float16" if self.half_on(device) else "float32"

    def timing_input(self, batch: int, device: str) -> torch.Tensor:
        """The seeded input batch every variant is timed on."""
        key = (batch, device)
        if key not in self._inputs:
            import torch

            from slimbench.measure.timing import seeded_input

            dtype = torch.float16 if self.half_on(device) else torch.float32
            self._inputs[key] = seeded_input(batch, self.settings.imgsz, device, dtype, seed=self.settings.seed)
        return self._inputs[key]

    def layer_gflops(self, name: str) -> dict[str, float]:
        """GFLOPs per attribution row of the fused timing copy at the run's imgsz, batch 1 (computed once)."""
        if name not in self._layer_gflops:
            from slimbench.model.layer_flops import layer_gflops

            self._layer_gflops[name] = layer_gflops(self.timing_net(name, "cpu"), self.settings.imgsz)
        return self._layer_gflops[name]

    def forward_callable(self, name: str, device: str, batch: int, threads: int, warm: bool = True) -> Any:
        """The benchmarked callable for one variant/device/batch on ``threads`` torch threads, warmed up."""
        from slimbench.measure.timing import forward_fn, use_threads, warm_up

        use_threads(threads)
        fn = forward_fn(self.timing_net(name, device), self.timing_input(batch, device), device)
        if warm:
            warm_up(fn, self.settings.warmup)
        return fn

    # ------------------------------------------------------------ deployment: ONNX export and its parity

    def checkpoint_sha256(self, name: str) -> str:
        """The checkpoint's sha256 (its pin when set: checked at load), computed once."""
        if name not in self._sha:
            from slimbench.model.checkpoint import sha256_of

            v = self.config.variants[name]
            self._sha[name] = v.sha256 or sha256_of(v.path)
        return self._sha[name]

    def onnx(self, name: str) -> Exported:
        """The variant exported to ONNX (dynamic batch) through ultralytics, from the cache or built once per session.

        A failed export raises the same one-line :class:`SlimbenchError` (naming the variant) for every test that asks.
        """
        if name not in self._onnx:
            from slimbench.runtimes.export import export_onnx

            try:
                exported = export_onnx(
                    self.model(name), self.checkpoint_sha256(name), self.settings.imgsz, self.cache, name=name
                )
            except SlimbenchError as e:
                self._onnx[name] = e
                self.figures[name].deployment["export_error"] = str(e)
            else:
                self._onnx[name] = exported
                self.figures[name].deployment.update(exported.as_dict())
        result = self._onnx[name]
        if isinstance(result, SlimbenchError):
            raise result
        return result

    def parity(self, name: str) -> dict[str, Any]:
        """The exported file versus the checkpoint: raw outputs on the seeded input (largest batch of the run, so the
        dynamic batch axis is exercised) within settings.parity_atol/rtol, and detections on every sample image
        through ultralytics' predictor on each, matched at IoU >= PARITY_IOU (same class). Recorded, cached."""
        figs = self.figures[name].parity
        if figs is not None:
            return figs
        import torch

        from slimbench.model.detections import agreement, detect
        from slimbench.runtimes import onnx_runtime as ort_runtime

        s = self.settings
        batch = max(s.batch)
        x = self.timing_input(batch, "cpu")
        with torch.inference_mode():
            y = self.timing_net(name, "cpu")(x)
        y = y[0] if isinstance(y, (list, tuple)) else y
        sess = self.runners.get("onnxruntime", self.onnx(name).path, "cpu", s.threads[0])
        onnx_out = ort_runtime.run(sess, x.numpy())
        raw = ort_runtime.parity(onnx_out, y.float().numpy(), s.parity_atol, s.parity_rtol)
        figs = {**raw.as_dict(), "batch": batch, "match_iou": PARITY_IOU, "images": {}}
        if self.image_paths:
            from ultralytics import YOLO

            onnx_model = YOLO(str(self.onnx(name).path), task="detect")
            for image in self.image_paths:
                exported = detect(onnx_model, self.images[image], s.imgsz, s.conf, s.iou, "cpu")
                figs["images"][image] = agreement(self.detections(name, image), exported, PARITY_IOU).as_dict()
        self.figures[name].parity = figs
        return figs

    # ------------------------------------------------------------ prediction and detections

    def predictor(self, name: str, device: str = "cpu") -> YOLO:
        """A private copy for ultralytics' predictor, which fuses and converts the model in place."""
        key = (name, device)
        if key not in self._predictors:
            self._predictors[key] = copy.deepcopy(self.model(name))
        return self._predictors[key]

    def predict_kwargs(self, device: str = "cpu") -> dict[str, Any]:
        s = self.settings
        return {
            "imgsz": s.imgsz,
            "conf": s.conf,
            "iou": s.iou,
            "device": device,
            "half": self.half_on(device),
            "verbose": False,
        }

    def detections(self, name: str, image_id: str) -> Detections:
        """Detections of a variant on an image, on the CPU (deterministic, comparable between variants); cached."""
        key = (name, image_id)
        if key not in self._detections:
            from slimbench.model.detections import detect

            s = self.settings
            self._detections[key] = detect(self.predictor(name), self.images[image_id], s.imgsz, s.conf, s.iou, "cpu")
        return self._detections[key]


def _ratio(value: float, ref: float) -> float:
    return value / ref if ref else float("inf")

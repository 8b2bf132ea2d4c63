"""The deployment matrix: every variant x ONNX-based runtime x precision x batch x threads, timed and scored.

Users ask whether pruning still pays once the model is INT8 on the runtime they ship, and what accuracy it costs;
one cell answers it for one combination. The session owns one :class:`DeployMatrix` (``session.deploy``), which
holds the INT8 files (:mod:`runtimes.quantize`, cached) and, through the run's runner cache
(:class:`runtimes.registry.Runners`), an ONNX Runtime session or OpenVINO compiled model per cell; and reads the
figures: latency per cell (recorded by the benchmark), agreement of the cell's detections with the
same variant's FP32 checkpoint on the sample and agreement images, and mAP on the dataset (ONNX Runtime cells:
ultralytics validates ONNX files through ONNX Runtime). Speedups: against the reference in the same cell, from the
recorded medians; against the reference in torch FP32, from interleaved pairs (:func:`bench.checks.cell_vs_torch`);
undefined when not timed, never 1.0.

A variant that fails to quantize or compile fails its cells with one line naming the variant, the runtime and the
reason; the other cells still run. It is given what it uses (settings, the variants' store, the runner cache,
accuracy, the figures), not the session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimbench.core.errors import SlimbenchError

if TYPE_CHECKING:
    from slimbench.bench.figures import Figures
    from slimbench.bench.store import VariantStore
    from slimbench.config.suite import Settings
    from slimbench.measure.accuracy import Accuracy
    from slimbench.measure.agreement import AgreementScore
    from slimbench.model.detections import Detections
    from slimbench.runtimes.quantize import Calibration, Quantized
    from slimbench.runtimes.registry import Runners


def cell_key(runtime: str, precision: str, device: str, batch: int, threads: int) -> str:
    """``ort-int8-cpu-b1-t2``: one cell of the matrix (the image size is the run's)."""
    from slimbench.core.timing_key import RUNTIME_IDS

    return f"{RUNTIME_IDS[runtime]}-{precision}-{device}-b{batch}-t{threads}"


def accuracy_key(runtime: str, precision: str) -> str:
    """``ort-int8``: accuracy depends on the file and the runtime, not on batch or threads."""
    from slimbench.core.timing_key import RUNTIME_IDS

    return f"{RUNTIME_IDS[runtime]}-{precision}"


class DeployMatrix:
    """A suite session's deployment matrix state (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        store: VariantStore,
        runners: Runners,
        accuracy: Accuracy,
        figures: Figures,
        reference: str,
    ) -> None:
        self.settings = settings
        self.store = store  # the variants' checkpoints, ONNX exports, seeded inputs, predictor copies
        self.runners = runners  # the run's one cache of ONNX Runtime sessions and OpenVINO compiled models
        self.accuracy = accuracy
        self.figures = figures  # read for the rows, written as figures[name].int8
        self.reference = reference
        self._calibration: Calibration | SlimbenchError | None = None
        self._int8: dict[str, Quantized | SlimbenchError] = {}
        self._reference_dets: dict[str, list[Detections]] = {}

    @property
    def cache_dir(self) -> Path:
        return self.store.cache

    # ---------------------------------------------------------------- files

    def calibration(self) -> Calibration:
        """``settings.calibration``; else the val split of ``--data``; else the agreement images (bundled scenes)."""
        if self._calibration is None:
            from slimbench.runtimes.quantize import calibration_set

            s = self.settings
            try:
                if s.calibration is not None:
                    self._calibration = calibration_set(s.calibration)
                elif s.data is not None:
                    self._calibration = calibration_set(list(self.accuracy.dataset().images))
                else:
                    self._calibration = calibration_set(self.accuracy.agreement_images())
            except SlimbenchError as e:
                self._calibration = e
        if isinstance(self._calibration, SlimbenchError):
            raise self._calibration
        return self._calibration

    def int8(self, name: str) -> Quantized:
        """The variant's INT8 QDQ file, from the cache or quantized once per session; errors said once per variant."""
        if name not in self._int8:
            from slimbench.runtimes.quantize import quantize_onnx

            try:
                exported = self.store.onnx(name)
                q = quantize_onnx(
                    exported.path,
                    exported.key,
                    self.store.checkpoint_sha256(name),
                    self.settings.imgsz,
                    self.calibration(),
                    self.cache_dir,
                    name=name,
                )
            except SlimbenchError as e:
                self._int8[name] = e
                self.figures[name].int8["error"] = str(e)
            else:
                from slimbench.runtimes.quantize import graph_counts

                self._int8[name] = q
                counts = graph_counts(q.path)
                figures = {**q.as_dict(), "int8_weights_mb": counts.int8_bytes / 1e6, "int8_convs": counts.int8_convs}
                self.figures[name].int8.update(figures)
        result = self._int8[name]
        if isinstance(result, SlimbenchError):
            raise result
        return result

    def file(self, name: str, precision: str) -> Path:
        return self.store.onnx(name).path if precision == "fp32" else self.int8(name).path

    # ---------------------------------------------------------------- runners

    def runner(self, name: str, runtime: str, precision: str, device: str, batch: int | None, threads: int) -> Any:
        """An ONNX Runtime session or an OpenVINO compiled model (static ``batch`` when given), cached.

        A file the runtime cannot load or compile is one line naming the variant, the runtime and the reason."""
        from slimbench.runtimes.registry import UNAVAILABLE

        path = self.file(name, precision)
        try:
            return self.runners.get(runtime, path, device, threads, batch)
        except UNAVAILABLE:
            raise
        except Exception as e:
            msg = " ".join(str(e).split())[:300] or type(e).__name__
            why = f"{type(e).__name__}: {msg}"
            raise SlimbenchError(f"{name}: {runtime} cannot run the {precision} file ({why})") from e

    def infer(self, name: str, runtime: str, precision: str, device: str, threads: int) -> Callable[..., np.ndarray]:
        """The cell as a function of one ``1x3xHxW`` input (batch 1, as deployed)."""
        from slimbench.runtimes.registry import runtime as runtime_named

        r, run = self.runner(name, runtime, precision, device, 1, threads), runtime_named(runtime).run
        return lambda x: run(r, x)

    def callable(
        self, name: str, runtime: str, precision: str, device: str, batch: int, threads: int, warm: bool = True
    ) -> Callable[[], None]:
        """The benchmarked callable of a cell on the suite's seeded input, warmed up."""
        from slimbench.measure.timing import use_threads, warm_up
        from slimbench.runtimes.registry import runtime as runtime_named

        use_threads(threads)
        x = self.store.timing_input(batch, "cpu").numpy()  # the ONNX runtimes take host arrays and copy them
        r = self.runner(name, runtime, precision, device, batch, threads)
        fn = runtime_named(runtime).forward(r, x)
        if warm:
            warm_up(fn, max(1, self.settings.warmup))  # first runs build execution plans
        return fn

    # ---------------------------------------------------------------- accuracy per cell

    def images(self) -> list[Path]:
        """The sample images and the agreement images, once each."""
        paths = list(self.store.image_paths.values()) + list(self.accuracy.agreement_images())
        return list(dict.fromkeys(Path(p) for p in paths))

    def reference_detections(self, name: str) -> list[Detections]:
        """The variant's FP32 checkpoint's boxes on :meth:`images` (ultralytics' predictor), down to conf 0.001."""
        if name not in self._reference_dets:
            from slimbench.measure.agreement import CANDIDATE_CONF
            from slimbench.model.detections import detect, read_image

            s = self.settings
            model = self.store.predictor(name, "cpu")
            self._reference_dets[name] = [
                detect(model, read_image(p), s.imgsz, CANDIDATE_CONF, s.iou, "cpu") for p in self.images()
            ]
        return self._reference_dets[name]

    def agreement(self, name: str, runtime: str, precision: str, threads: int) -> AgreementScore:
        """The cell's detections scored against its own FP32 checkpoint's boxes (conf >= the suite's conf)."""
        from slimbench.measure.agreement import CANDIDATE_CONF, agreement_score
        from slimbench.measure.runtime_accuracy import runtime_detections
        from slimbench.model.detections import read_image

        s = self.settings
        images = [read_image(p) for p in self.images()]
        cand = runtime_detections(
            self.infer(name, runtime, precision, "cpu", threads), images, s.imgsz, CANDIDATE_CONF, s.iou
        )
        return agreement_score(self.reference_detections(name), cand, s.conf)

    def map(self, name: str, runtime: str, precision: str) -> dict[str, Any]:
        """mAP of the cell on the dataset: ultralytics' validator on the ONNX file of ``precision`` (ONNX Runtime),
        or on the same file converted to an OpenVINO IR folder (OpenVINO's CPU device)."""
        from ultralytics import YOLO

        from slimbench.measure.validator import run_validator, write_val_yaml
        from slimbench.runtimes.registry import runtime as runtime_named

        acc = self.accuracy
        ds = acc.dataset()
        reference = self.store.model(self.reference)
        yaml = write_val_yaml(ds, dict(reference.names), self.cache_dir / "val-data")
        path = runtime_named(runtime).validator_file(self.file(name, precision))
        model = YOLO(str(path), task="detect")
        return run_validator(model, yaml, acc.val_imgsz(reference), "cpu", self.cache_dir / "val-runs")

    # ---------------------------------------------------------------- figures

    def rows(self) -> list[dict[str, Any]]:
        """One row per recorded cell: latency, speedups (undefined when the reference cell was not timed),
        agreement and mAP when measured."""
        ref = self.figures[self.reference]
        out = []
        axes = ("runtime", "precision", "device", "batch", "threads")
        for name, figs in self.figures.items():
            timed, paired = figs.matrix, figs.matrix_vs_torch
            for key in dict.fromkeys([*timed, *paired]):  # a cell timed alone, in pairs against torch, or both
                cell = timed.get(key) or {a: paired[key][a] for a in axes}
                acc = figs.matrix_accuracy.get(accuracy_key(cell["runtime"], cell["precision"]), {})
                row = {"variant": name, "cell": key, **acc, **cell}
                median = cell.get("median_s")
                same = ref.matrix.get(key, {}).get("median_s")
                row["speedup_same_cell"] = same / median if same and median else None
                vs_torch = paired.get(key, {})
                row["speedup_vs_torch_fp32"] = vs_torch.get("speedup")  # interleaved pairs; None: not timed
                row["torch_fp32_reference_s"] = vs_torch.get("reference_median_s")
                out.append(row)
        return out

    def method(self) -> str | None:
        """How the INT8 files were made (the quantization settings, stated), or None when none was built."""
        return next((fg.int8.get("quantization") for fg in self.figures.values() if fg.int8), None)

    def summary_lines(self) -> list[str]:
        """The matrix for the terminal: one line per cell ("n/a": not measured or undefined)."""
        rows = self.rows()
        if not rows:
            return []

        def f(v: Any, fmt: str) -> str:
            return fmt.format(v) if isinstance(v, (int, float)) and v == v else "n/a"

        q = self.method()
        lines = [f"deployment matrix vs {self.reference} (INT8: {q or 'not built'})"]
        lines.append(
            f"{'variant':<12}{'cell':<22}{'p50 ms':>8}{'p99 ms':>8}{'FPS':>8}{'x same':>8}{'x torch':>8}"
            f"{'agr mAP50':>10}{'mAP50-95':>9}"
        )
        for r in rows:
            p50, p99 = (r.get(k) * 1e3 if isinstance(r.get(k), (int, float)) else None for k in ("median_s", "p99_s"))
            lines.append(
                f"{r['variant']:<12}{r['cell']:<22}{f(p50, '{:.1f}'):>8}"
                f"{f(p99, '{:.1f}'):>8}{f(r.get('fps'), '{:.1f}'):>8}"
                f"{f(r.get('speedup_same_cell'), '{:.2f}'):>8}{f(r.get('speedup_vs_torch_fp32'), '{:.2f}'):>8}"
                f"{f(r.get('agreement_map50'), '{:.3f}'):>10}{f(r.get('map50_95'), '{:.3f}'):>9}"
            )
        return lines

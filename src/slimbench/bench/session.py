"""One object owns a benchmark run: the config, the loaded variants, their copies for timing and prediction, and
the figures collected per variant (plain dicts, which the HTML report and summary JSON read later).

Built once per pytest session by the plugin; :meth:`SuiteSession.load` validates every input up front so a bad
file stops the run with one line before any test runs. Nothing here imports pytest at module level.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbench.config.suite import Overrides, SuiteConfig, Thresholds, Variant, apply_overrides, load_config
from slimbench.core.errors import SlimbenchError
from slimbench.core.undefined import shown

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn
    from ultralytics import YOLO

    from slimbench.bench.baseline_gate import BaselineGate
    from slimbench.bench.matrix import DeployMatrix
    from slimbench.measure.accuracy import Accuracy
    from slimbench.measure.agreement import AgreementScore
    from slimbench.model.detections import Detections
    from slimbench.runtimes.export import Exported

PARITY_IOU = 0.95
"""IoU for an exported model's box to count as the same box as the checkpoint's (same class): parity, not agreement."""
SMOKE_PAIRS = 2
"""Interleaved pairs per speed-ratio check in smoke mode: enough to run the code path, too few to gate on."""


@dataclass(frozen=True)
class SuiteOptions:
    """Everything the command line says about the suite, independent of pytest's option object."""

    variants_file: str | None = None  # explicit --variants-file, relative to the working directory
    suite_config: str | None = None  # the config a suite conftest names (slimbench_config), absolute
    default_variants_file: str | None = None  # the ini default, relative to the rootdir: used without --variant only
    overrides: Overrides = Overrides()
    smoke: bool = False


def build_config(options: SuiteOptions, rootdir: Path, cwd: Path) -> SuiteConfig:
    """The run's config: a named one (``--variants-file``, else the suite conftest's ``slimbench_config``) with the
    command line merged over it; else the ``--variant``s alone (no limits, figures only); else the default file.

    The default file (``fixtures/slimbench.toml`` in this repository) describes its own checkpoints: it is read only
    when no ``--variant`` is given, so a user's checkpoints never inherit limits written for other files.
    """
    named = options.variants_file and _resolve(options.variants_file, cwd)
    named = named or (options.suite_config and Path(options.suite_config))
    cfg: SuiteConfig | None = None
    if named:
        cfg = load_config(named)
    elif not options.overrides.variants and options.default_variants_file:
        default = _resolve(options.default_variants_file, rootdir)
        if not default.exists():
            raise SlimbenchError(
                f"{default}: default variants file not found (give --variants-file PATH or --variant NAME=PATH)"
            )
        cfg = load_config(default)
    return apply_overrides(cfg, options.overrides, cwd)


def static_table(static: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The terminal's static figures, one column per stored size-and-structure metric, as its declaration labels
    and formats it (``slimbench.core.metric_specs``)."""
    from slimbench.bench.checks import STATIC_SOURCE
    from slimbench.core.metric_specs import METRICS

    specs = [m for m in METRICS if m.table == "size" and m.tolerance is not None]
    cells = [[m.fmt.format(st[STATIC_SOURCE.get(m.key, m.key)]) for m in specs] for _, st in static]
    heads = [f"{m.label} ({m.unit})" if m.unit in ("MB", "%") else m.label for m in specs]
    widths = [max(len(h), *(len(row[i]) for row in cells)) + 2 for i, h in enumerate(heads)]
    name_w = max(16, *(len(n) + 2 for n, _ in static))
    out = ["variant".ljust(name_w) + "".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    for (name, _), row in zip(static, cells, strict=True):
        out.append(name.ljust(name_w) + "".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return out


class SuiteSession:
    """The state of one benchmark run; fixtures and tests ask it, nothing else keeps globals."""

    def __init__(self, config: SuiteConfig, smoke: bool = False, cache_dir: Path | None = None) -> None:
        self.config = config
        self.smoke = smoke
        self.cache_dir = cache_dir  # generated datasets and validator scratch; None: .slimbench-cache in the cwd
        self._accuracy: Accuracy | None = None
        self._deploy: DeployMatrix | None = None
        self.baseline: BaselineGate | None = None  # the stored baseline (slimbench.bench.baseline), set by the plugin
        self.settings = config.settings
        if not self.settings.threads:  # stated, never what a library's import left in OMP_NUM_THREADS
            from slimbench.measure.timing import available_cpus

            self.settings = replace(self.settings, threads=(available_cpus(),))
        if smoke:  # one batch size and thread count, few pairs, no warm-up: every code path once, quickly
            self.settings = replace(
                self.settings,
                batch=self.settings.batch[:1],
                threads=self.settings.threads[:1],
                warmup=0,
                speed_pairs=SMOKE_PAIRS,
            )
        self.models: dict[str, YOLO] = {}
        self.images: dict[str, np.ndarray] = {}  # image id -> BGR array
        self.image_paths: dict[str, Path] = _image_ids(self.settings.images)
        self.figures: dict[str, dict[str, Any]] = {
            v.name: {"name": v.name, "role": v.role, "path": str(v.path), "sha256": v.sha256}
            for v in config.variants.values()
        }
        self._static: dict[str, dict[str, Any]] = {}
        self._timing: dict[tuple[str, str], nn.Module] = {}
        self._inputs: dict[tuple[int, str], torch.Tensor] = {}
        self._predictors: dict[tuple[str, str], YOLO] = {}
        self._detections: dict[tuple[str, str], Detections] = {}
        self._onnx: dict[str, Exported | SlimbenchError] = {}
        self._ort: dict[tuple[str, str, int], Any] = {}
        self._memory: dict[str, dict[str, Any] | SlimbenchError] = {}
        self._sha: dict[str, str] = {}
        self.unmeasurable: list[Unmeasurable] = []  # configured limits this run cannot measure (set by load)
        self.deselected: set[tuple[str, str | None]] = set()  # (test function, variant or None) deselected
        self.skipped: dict[tuple[str, str | None], str] = {}  # (test function, variant) -> the skip's reason

    # ------------------------------------------------------------ loading and validation

    def load(self) -> None:
        """Check and load every checkpoint (sha256 before unpickling) and decode every image; first error raises.

        torch is set to the run's first thread count here, so untimed work (detections, validation) runs with a
        stated count too; each timed test sets its own (:meth:`use_threads`).
        """
        from slimbench.model.checkpoint import check_file, load_detector
        from slimbench.model.detections import read_image
        from slimbench.model.static_metrics import stored_dtype

        self.use_threads(self.settings.threads[0])

        for v in self.config.variants.values():
            check_file(v.path, v.sha256)  # every pin before any unpickling
        for image_id, path in self.image_paths.items():
            self.images[image_id] = read_image(path)
        for v in self.config.variants.values():
            self.models[v.name] = load_detector(v.path, v.sha256)
            self.figures[v.name]["stored_dtype"] = stored_dtype(v.path)
            self.figures[v.name]["class_names"] = dict(self.models[v.name].names)
        # same classes everywhere; --data and --agreement-images exist and fit the models
        self.accuracy.check_inputs({v.name: self.class_names(v.name) for v in self.variants})
        # a configured gate that cannot be measured must not pass silently: the plugin stops the run with the
        # first of these whose test is selected (a deselected one is the user's choice: "not run (deselected)")
        self.unmeasurable = unmeasurable(self)

    def oversubscribed(self) -> list[int]:
        """The run's thread counts above the CPUs available to this process: their timings measure contention."""
        from slimbench.measure.timing import available_cpus

        return [n for n in self.settings.threads if n > available_cpus()]

    def start_lines(self) -> list[str]:
        """What the run compares and under which limits, said before any test: the config (or none), each variant
        whose limits from the file are not applied and why, and a thread count above the CPUs available."""
        from slimbench.measure.timing import available_cpus

        cfg = self.config
        lines = [
            f"config {cfg.source}" if cfg.source else "no suite config: the --variant checkpoints alone, no limits, "
            "figures only (give --variants-file PATH for limits and a baseline)"
        ]
        lines += [f"{name}: {why}" for name, why in cfg.unlimited.items()]
        for n in self.oversubscribed():
            lines.append(
                f"WARNING: {n} threads requested, but only {available_cpus()} CPUs are available to this process: "
                "those timings measure oversubscription"
            )
        return lines

    @property
    def accuracy(self) -> Accuracy:
        """mAP on the dataset and agreement on unlabeled images (slimbench.measure.accuracy), cached for the session."""
        if self._accuracy is None:
            from slimbench.measure.accuracy import Accuracy

            self._accuracy = Accuracy(self.config, self.settings, self.smoke, self.cache_dir)
        return self._accuracy

    def class_names(self, name: str) -> dict[int, str]:
        return dict(self.model(name).names)

    def map_unsupported(self) -> str | None:
        """Why mAP cannot be measured in this run, or None (:meth:`slimbench.measure.accuracy.Accuracy.unsupported`)."""
        return self.accuracy.unsupported(self.class_names(self.config.reference))

    def map_metrics(self, name: str) -> dict[str, Any]:
        """A variant's mAP, precision and recall on the dataset, validated once per session."""
        return self.accuracy.metrics(name, self.model(name), self.model(self.config.reference))

    def agreement_score(self, name: str) -> AgreementScore:
        """A variant scored against the reference's boxes on the agreement images."""
        device, ref = self.accuracy.device(), self.config.reference
        return self.accuracy.agreement(name, self.predictor(name, device), self.predictor(ref, device))

    @property
    def deploy(self) -> DeployMatrix:
        """The deployment matrix (slimbench.bench.matrix): INT8 files, runtimes, per-cell figures; made on first use."""
        if self._deploy is None:
            from slimbench.bench.matrix import DeployMatrix

            self._deploy = DeployMatrix(self)
        return self._deploy

    @property
    def reference(self) -> Variant:
        return self.config.variants[self.config.reference]

    @property
    def variants(self) -> list[Variant]:
        return list(self.config.variants.values())

    @property
    def candidates(self) -> list[Variant]:
        return self.config.candidates

    def limits(self, name: str) -> Thresholds:
        return self.config.limits(name)

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
            figs["stored_dtype"] = self.figures[name].get("stored_dtype")
            self._static[name] = figs
            self.figures[name]["static"] = figs
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

    def use_threads(self, n: int) -> int:
        """Run torch on ``n`` threads from now on (ONNX Runtime sessions are built per thread count)."""
        from slimbench.measure.timing import use_threads

        return use_threads(n)

    def forward_callable(self, name: str, device: str, batch: int, threads: int, warm: bool = True) -> Any:
        """The benchmarked callable for one variant/device/batch on ``threads`` torch threads, warmed up."""
        from slimbench.measure.timing import forward_fn, warm_up

        self.use_threads(threads)
        fn = forward_fn(self.timing_net(name, device), self.timing_input(batch, device), device)
        if warm:
            warm_up(fn, self.settings.warmup)
        return fn

    def record(self, name: str, section: str, key: str, value: Any) -> None:
        """Store a figure under ``figures[name][section][key]`` (plain data only, for reports)."""
        self.figures[name].setdefault(section, {})[key] = value

    # ------------------------------------------------------------ deployment: ONNX export, ONNX Runtime, memory

    def timing_key(self, device: str, batch: int, runtime: str, threads: int) -> str:
        """Figure key of a timed cell: ``cpu-b1-t2-640`` (torch), ``ort-cpu-b1-t2-640`` (slimbench.core.timing_key)."""
        from slimbench.core.timing_key import TimingKey

        return str(TimingKey.of(runtime, device, batch, threads, self.settings.imgsz))

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

            cache = self.cache_dir if self.cache_dir is not None else Path.cwd() / ".slimbench-cache"
            try:
                exported = export_onnx(
                    self.model(name), self.checkpoint_sha256(name), self.settings.imgsz, cache, name=name
                )
            except SlimbenchError as e:
                self._onnx[name] = e
                self.record(name, "deployment", "export_error", str(e))
            else:
                self._onnx[name] = exported
                for key, value in exported.as_dict().items():
                    self.record(name, "deployment", key, value)
        result = self._onnx[name]
        if isinstance(result, SlimbenchError):
            raise result
        return result

    def ort_session(self, name: str, device: str, threads: int) -> Any:
        """An ONNX Runtime session of the exported variant on ``device`` with ``threads`` threads, cached."""
        key = (name, device, threads)
        if key not in self._ort:
            from slimbench.runtimes import onnx_runtime as ort_runtime

            self._ort[key] = ort_runtime.session(self.onnx(name).path, device, threads)
        return self._ort[key]

    def runtime_callable(
        self, name: str, runtime: str, device: str, batch: int, threads: int, warm: bool = True
    ) -> Any:
        """The benchmarked callable of a variant in ``runtime`` on ``threads`` threads and the same seeded input,
        warmed up."""
        if runtime == "torch":
            return self.forward_callable(name, device, batch, threads, warm)
        from slimbench.measure.timing import warm_up
        from slimbench.runtimes.onnx_runtime import forward_fn

        x = self.timing_input(batch, "cpu").numpy()  # ONNX Runtime takes host arrays and copies them itself
        if runtime == "openvino":
            return self.deploy.callable(name, runtime, "fp32", device, batch, threads, warm)
        fn = forward_fn(self.ort_session(name, device, threads), x)
        if warm:
            warm_up(fn, max(1, self.settings.warmup))  # ORT's first run builds its execution plan
        return fn

    def parity(self, name: str) -> dict[str, Any]:
        """The exported file versus the checkpoint: raw outputs on the seeded input (largest batch of the run, so the
        dynamic batch axis is exercised) within settings.parity_atol/rtol, and detections on every sample image
        through ultralytics' predictor on each, matched at IoU >= PARITY_IOU (same class). Recorded, cached."""
        figs = self.figures[name].get("parity")
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
        onnx_out = ort_runtime.run(self.ort_session(name, "cpu", s.threads[0]), x.numpy())
        raw = ort_runtime.parity(onnx_out, y.float().numpy(), s.parity_atol, s.parity_rtol)
        figs = {**raw.as_dict(), "batch": batch, "match_iou": PARITY_IOU, "images": {}}
        if self.image_paths:
            from ultralytics import YOLO

            onnx_model = YOLO(str(self.onnx(name).path), task="detect")
            for image in self.image_paths:
                exported = detect(onnx_model, self.images[image], s.imgsz, s.conf, s.iou, "cpu")
                figs["images"][image] = agreement(self.detections(name, image), exported, PARITY_IOU).as_dict()
        self.figures[name]["parity"] = figs
        return figs

    def memory(self, name: str, runtime: str, batch: int, device: str, threads: int) -> dict[str, Any]:
        """Peak memory of inference for one variant/runtime/batch/thread count, from a fresh process
        (slimbench.measure.memory), cached."""
        key = f"{name}:{self.timing_key(device, batch, runtime, threads)}"
        if key not in self._memory:
            from slimbench.measure.memory import measure

            v = self.config.variants[name]
            onnx = self.onnx(name).path if runtime == "onnxruntime" else None
            try:
                self._memory[key] = measure(
                    v.path, runtime, batch, self.settings.imgsz, device, onnx, threads, v.sha256
                )
            except SlimbenchError as e:
                self._memory[key] = e
        result = self._memory[key]
        if isinstance(result, SlimbenchError):
            raise result
        return result

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

    # ------------------------------------------------------------ gates

    def judge(
        self,
        name: str,
        metric: str,
        value: float | None,
        *,
        cell: str | None = None,
        who: str | None = None,
        label: str | None = None,
        note: str = "",
        undefined: str | None = None,
    ) -> list[str]:
        """Judge a figure against the variant's limits for ``metric`` (``core.metric_specs``): the broken ones,
        one line each. Every verdict (passed or not) is recorded under ``figures[name]["checks"]`` for the report,
        which so never depends on which test asked."""
        from slimbench.config.suite import violation
        from slimbench.core.metric_specs import SPECS

        spec, limits, broken = SPECS[metric], self.limits(name), []
        for limit in spec.limits:
            bound = getattr(limits, limit.key)
            if bound is None:
                continue
            line = violation(
                who or name, label or spec.label, value, bound, limit.kind, spec.fmt + spec.suffix, note, undefined
            )
            shown_value = undefined or "not measured" if value is None or value != value else value
            verdict = {"metric": metric, "cell": cell, "limit": limit.key, "bound": bound, "value": shown_value}
            self.figures[name].setdefault("checks", []).append({**verdict, "passed": not line, "message": line})
            if line:
                broken.append(line)
        return broken

    def verdict(self, name: str, metric: str, problems: list[str], cell: str | None = None) -> list[str]:
        """Record a check that no numeric limit expresses (ONNX parity, class names, the stored baseline): passed
        when ``problems`` is empty, else one failed verdict per problem; returns ``problems``."""
        base = {"metric": metric, "cell": cell, "limit": None, "bound": None, "value": None}
        entries = [{**base, "passed": False, "message": p} for p in problems] or [{**base, "passed": True}]
        self.figures[name].setdefault("checks", []).extend({**e, "message": e.get("message")} for e in entries)
        return problems

    def not_run(self, name: str) -> list[dict[str, str]]:
        """The variant's configured limits that no check judged in this run, each with why: deselected, skipped
        (with the skip's reason) or not collected. Counted apart from passed and failed, never silently absent."""
        from slimbench.config.suite import THRESHOLD_KEYS
        from slimbench.core.metric_specs import gating_test

        judged = {c.get("limit") for c in self.figures[name].get("checks", [])}
        limits, out = self.limits(name), []
        for key in THRESHOLD_KEYS:
            if getattr(limits, key) is None or key in judged:
                continue
            test = gating_test(key)
            skipped = self.skipped.get((test, name)) or self.skipped.get((test, None))
            if {(test, name), (test, None)} & self.deselected:
                why = "deselected"
            elif skipped:
                why = f"skipped: {skipped}"
            else:
                why = f"{test} did not run"
            out.append({"limit": key, "reason": why})
        baseline_skip = self.skipped.get(("test_baseline", name))
        compared = any(c.get("metric") == "baseline" for c in self.figures[name].get("checks", []))
        if self.baseline is not None and not compared:
            if ("test_baseline", name) in self.deselected:
                out.append({"limit": "baseline", "reason": "deselected"})
            elif baseline_skip:
                new = baseline_skip.startswith("no baseline yet")  # a suite's first run (slimbench.bench.baseline)
                why = "no baseline yet" if new else f"skipped: {baseline_skip}"
                out.append({"limit": "baseline", "reason": why})
        return out

    def gate(self, violations: Iterable[str | None]) -> None:
        """Fail the calling test with every broken limit, one line each, without a traceback."""
        broken = [v for v in violations if v]
        if broken:
            import pytest

            pytest.fail("\n".join(broken), pytrace=False)

    # ------------------------------------------------------------ terminal summary

    def summary_lines(self) -> list[str]:
        """A compact plain-text table of what this run measured (static figures, speed ratios, agreement)."""
        lines: list[str] = []
        static = [(n, f["static"]) for n, f in self.figures.items() if "static" in f]
        if static:
            imgsz = self.settings.imgsz
            lines.append(f"static figures (GFLOPs at {imgsz}x{imgsz}, batch 1; MB = 1e6 bytes)")
            lines += static_table(static)
        ratios = [(n, k, r) for n, f in self.figures.items() for k, r in f.get("speed_ratio", {}).items()]
        if ratios:
            lines.append(f"speed ratio vs {self.config.reference} (median of interleaved pairs; < 1 is faster)")
            for name, key, r in ratios:
                lines.append(f"{name:<16}{key:<18}{r['median_ratio']:>7.3f}  ({r['speedup']:.2f}x, {r['pairs']} pairs)")
        agreements = [(n, k, a) for n, f in self.figures.items() for k, a in f.get("agreement", {}).items()]
        if agreements:
            lines.append(
                f"detections vs {self.config.reference} (conf {self.settings.conf}, match IoU "
                f"{self.settings.match_iou})"
            )
            for name, image, a in agreements:
                lines.append(
                    f"{name:<16}{image:<18}{a['candidate_count']:>5} vs {a['reference_count']:<5} "
                    f"recall {shown(a['recall'], '{:.3f}')}  precision {shown(a['precision'], '{:.3f}')}"
                )
        lines += self._deployment_lines()
        if self._accuracy is not None:
            lines += self._accuracy.summary_lines(self.figures)
        if self._deploy is not None:
            lines += self._deploy.summary_lines()
        return lines

    def _deployment_lines(self) -> list[str]:
        """Latency percentiles and FPS per runtime, peak memory, ONNX size and parity, per variant."""
        lines: list[str] = []
        timed = [(n, k, t) for n, f in self.figures.items() for k, t in f.get("forward", {}).items()]
        if timed:
            lines.append("latency per runtime (benchmark rounds; ort = ONNX Runtime on the ONNX export)")
            lines.append(f"{'variant':<16}{'key':<18}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'FPS':>9}{'rounds':>8}")
            for name, key, t in timed:
                lines.append(
                    f"{name:<16}{key:<18}{t['median_s'] * 1e3:>9.2f}{t.get('p90_s', float('nan')) * 1e3:>9.2f}"
                    f"{t.get('p99_s', float('nan')) * 1e3:>9.2f}{t.get('fps', float('nan')):>9.1f}{t['rounds']:>8}"
                )
        mem = [(n, k, m) for n, f in self.figures.items() for k, m in f.get("memory", {}).items()]
        if mem:
            lines.append("peak memory of inference (a fresh process each; MB = 1e6 bytes)")
            for name, key, m in mem:
                cuda = m.get("cuda_max_allocated_mb")
                lines.append(
                    f"{name:<16}{key:<18}peak RSS {m['peak_rss_mb']:>7.0f} MB, inference {m['inference_mb']:>6.0f} MB"
                    + (f", CUDA max allocated {cuda:.0f} MB" if cuda is not None else "")
                )
        dep = [(n, f.get("deployment", {}), f.get("parity")) for n, f in self.figures.items()]
        if any(d or p for _, d, p in dep):
            lines.append("ONNX export and parity with the checkpoint")
            for name, d, p in dep:
                if "export_error" in d:
                    lines.append(f"{name:<16}{d['export_error']}")
                elif "onnx_size_mb" in d:
                    parity = ""
                    if p:
                        same = all(a["identical"] for a in p["images"].values())
                        parity = (
                            f", max abs diff {p['max_abs_diff']:.2g} ({'ok' if p['ok'] else 'FAILED'}), "
                            f"detections {'identical' if same else 'DIFFER'}"
                        )
                    cached = "cached" if not d.get("export_built") else f"exported in {d['export_seconds']:.1f} s"
                    lines.append(f"{name:<16}ONNX {d['onnx_size_mb']:.2f} MB ({cached}){parity}")
        return lines


@dataclass(frozen=True)
class Unmeasurable:
    """A configured limit this run cannot measure: the variant, the limit key and the one line that says why."""

    variant: str
    limit: str
    line: str


def unmeasurable_limits(session: SuiteSession) -> list[str]:
    """Configured limits this run cannot measure, one line each naming the limit and what is missing."""
    return [u.line for u in unmeasurable(session)]


def unmeasurable(session: SuiteSession) -> list[Unmeasurable]:
    """Configured limits this run cannot measure, each with the line naming the limit and what is missing.

    A skipped check would leave a configured gate green without a figure; the plugin stops the run at start
    instead, unless the test that would judge the limit was deselected (``-m "not accuracy"``): that is the user's
    explicit choice, reported as "not run (deselected)". Smoke mode is an explicit choice too.
    """
    cfg, s = session.config, session.settings
    where = f"{cfg.source}: " if cfg.source else ""
    from slimbench.runtimes.onnx_runtime import missing_reason

    missing: dict[str, str | None] = {
        "min_count_ratio": None if session.image_paths else "no sample images (settings.images or --image)",
        "max_speed_ratio": None if "torch" in s.runtime else "torch is not in settings.runtime / --runtime",
        "max_ort_speed_ratio": (
            "onnxruntime is not in settings.runtime / --runtime" if "onnxruntime" not in s.runtime else missing_reason()
        ),
        "max_memory_ratio": None if s.memory else "settings.memory = false",
        "max_map50_95_drop": session.map_unsupported(),
        "min_agreement_map50": None
        if session.accuracy.agreement_images()
        else ("no agreement images (--agreement-images DIR, settings.agreement_images or settings.images)"),
    }
    for key in ("max_count_ratio", "min_agreement_recall", "min_agreement_precision"):
        missing[key] = missing["min_count_ratio"]
    int8_off = "int8 is not in settings.precision / --precision (the deployment matrix, marker matrix)"
    missing["min_int8_agreement_map50"] = (
        int8_off
        if "int8" not in s.precision
        else None
        if {"onnxruntime", "openvino"} & set(s.runtime)
        else "neither onnxruntime nor openvino is in settings.runtime / --runtime"
    )
    missing["max_int8_map50_95_drop"] = (
        int8_off
        if "int8" not in s.precision
        else (None if "onnxruntime" in s.runtime else "onnxruntime is not in settings.runtime / --runtime")
        or session.map_unsupported()
    )
    out = []
    for v in cfg.candidates:
        limits = cfg.limits(v.name)
        for key, why in missing.items():
            if why and getattr(limits, key) is not None:
                line = f"{where}thresholds.{v.name}.{key} is set but cannot be measured in this run: {why}"
                out.append(Unmeasurable(v.name, key, line))
    return out


def _ratio(value: float, ref: float) -> float:
    return value / ref if ref else float("inf")


def _resolve(path: str, base: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else base / p


def _image_ids(paths: Iterable[Path]) -> dict[str, Path]:
    """Short test ids for images: the file stem, made unique with a counter when stems repeat."""
    out: dict[str, Path] = {}
    for p in dict.fromkeys(paths):
        key, n = p.stem or "image", 1
        while key in out:
            n += 1
            key = f"{p.stem}-{n}"
        out[key] = p
    return out

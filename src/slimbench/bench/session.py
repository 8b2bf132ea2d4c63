"""One object owns a benchmark run: the config, the loaded variants (with their copies and files, in
``bench.store``), the figures collected per variant, and the gates that judge them.

Built once per pytest session by the plugin; :meth:`SuiteSession.load` validates every input up front so a bad
file stops the run with one line before any test runs. Nothing here imports pytest at module level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbench.bench.figures import Check, Figures, VariantFigures
from slimbench.bench.store import VariantStore
from slimbench.bench.unmeasurable import Unmeasurable, unmeasurable
from slimbench.config.suite import SuiteConfig, Thresholds, Variant
from slimbench.core.errors import SlimbenchError
from slimbench.runtimes.registry import Runners

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

SMOKE_PAIRS = 2
"""Interleaved pairs per speed-ratio check in smoke mode: enough to run the code path, too few to gate on."""


class SuiteSession:
    """The state of one benchmark run; fixtures and tests ask it, nothing else keeps globals."""

    def __init__(self, config: SuiteConfig, smoke: bool = False, cache_dir: Path | None = None) -> None:
        self.config = config
        self.smoke = smoke
        self.cache_dir = cache_dir  # generated datasets and validator scratch; None: .slimbench-cache in the cwd
        self._accuracy: Accuracy | None = None
        self._deploy: DeployMatrix | None = None
        self.baseline: BaselineGate | None = None  # the stored baseline (bench.baseline_gate), set by the plugin
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
                speed_pairs_max=SMOKE_PAIRS,
            )
        self.images: dict[str, np.ndarray] = {}  # image id -> BGR array
        self.image_paths: dict[str, Path] = _image_ids(self.settings.images)
        self.figures = Figures(
            {v.name: VariantFigures(v.name, v.role, str(v.path), v.sha256) for v in config.variants.values()}
        )
        self.runners = Runners(self.settings.imgsz)  # the run's one cache of ONNX Runtime / OpenVINO runners
        self.store = VariantStore(
            config, self.settings, self.figures, self.runners, self.images, self.image_paths, cache_dir
        )
        self.models: dict[str, YOLO] = self.store.models
        self._memory: dict[str, dict[str, Any] | SlimbenchError] = {}
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
            self.figures[v.name].stored_dtype = stored_dtype(v.path)
            self.figures[v.name].class_names = dict(self.models[v.name].names)
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
            f"config {cfg.source}"
            if cfg.source
            else "no suite config: the --variant checkpoints alone, no limits, "
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

    def nms_free_unsupported(self, name: str) -> str | None:
        """Why ``name``'s NMS-free mAP drop cannot be measured, or None: mAP itself cannot, or the variant or the
        reference has no one-to-one head."""
        from slimbench.measure.validator import has_nms_free_head

        lacking = [v for v in dict.fromkeys((self.config.reference, name)) if not has_nms_free_head(self.model(v))]
        if lacking:
            paths = ", ".join(f"{v} ({self.config.variants[v].path})" for v in lacking)
            return f"no one-to-one (NMS-free) head in {paths}; YOLO26 checkpoints have one"
        return self.map_unsupported()

    def map_metrics(self, name: str) -> dict[str, Any]:
        """A variant's mAP, precision and recall on the dataset, validated once per session."""
        return self.accuracy.metrics(name, self.model(name), self.model(self.config.reference))

    def agreement_score(self, name: str) -> AgreementScore:
        """A variant scored against the reference's boxes on the agreement images."""
        device, ref = self.accuracy.device(), self.config.reference
        return self.accuracy.agreement(name, self.predictor(name, device), self.predictor(ref, device))

    @property
    def accuracy_if_used(self) -> Accuracy | None:
        """The accuracy figures' owner when the run made one, else None (the reports read it without making one)."""
        return self._accuracy

    @property
    def deploy(self) -> DeployMatrix:
        """The deployment matrix (slimbench.bench.matrix): INT8 files, runtimes, per-cell figures; made on first use."""
        if self._deploy is None:
            from slimbench.bench.matrix import DeployMatrix

            self._deploy = DeployMatrix(
                self.settings, self.store, self.runners, self.accuracy, self.figures, self.config.reference
            )
        return self._deploy

    @property
    def deploy_if_used(self) -> DeployMatrix | None:
        """The deployment matrix when a test used it, else None (the reports read it without making one)."""
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
        return self.store.model(name)

    # ------------------------------------------------------------ the variants' copies and files (bench.store)

    def static(self, name: str) -> dict[str, Any]:
        """Static metrics of a variant (computed once), with ratios against the reference."""
        return self.store.static(name)

    def timing_net(self, name: str, device: str) -> nn.Module:
        """A fused eval copy of the variant on ``device`` (FP32, or FP16 on CUDA with settings.half; cached)."""
        return self.store.timing_net(name, device)

    def half_on(self, device: str) -> bool:
        """Whether ``device`` is timed in FP16 (settings.half, CUDA only)."""
        return self.store.half_on(device)

    def timing_dtype(self, device: str) -> str:
        return self.store.timing_dtype(device)

    def timing_input(self, batch: int, device: str) -> torch.Tensor:
        """The seeded input batch every variant is timed on."""
        return self.store.timing_input(batch, device)

    def use_threads(self, n: int) -> int:
        """Run torch on ``n`` threads from now on (ONNX Runtime sessions are built per thread count)."""
        from slimbench.measure.timing import use_threads

        return use_threads(n)

    def forward_callable(self, name: str, device: str, batch: int, threads: int, warm: bool = True) -> Any:
        """The benchmarked callable for one variant/device/batch on ``threads`` torch threads, warmed up."""
        return self.store.forward_callable(name, device, batch, threads, warm)

    def checkpoint_sha256(self, name: str) -> str:
        """The checkpoint's sha256 (its pin when set: checked at load), computed once."""
        return self.store.checkpoint_sha256(name)

    def onnx(self, name: str) -> Exported:
        """The variant exported to ONNX (dynamic batch), cached; a failed export raises one line for every ask."""
        return self.store.onnx(name)

    def parity(self, name: str) -> dict[str, Any]:
        """The exported file versus the checkpoint, outputs and detections (:meth:`VariantStore.parity`); cached."""
        return self.store.parity(name)

    def predictor(self, name: str, device: str = "cpu") -> YOLO:
        """A private copy for ultralytics' predictor, which fuses and converts the model in place."""
        return self.store.predictor(name, device)

    def predict_kwargs(self, device: str = "cpu") -> dict[str, Any]:
        return self.store.predict_kwargs(device)

    def detections(self, name: str, image_id: str) -> Detections:
        """Detections of a variant on an image, on the CPU (deterministic, comparable between variants); cached."""
        return self.store.detections(name, image_id)

    def record(self, name: str, section: str, key: str, value: Any) -> None:
        """Store one figure of a keyed aspect, ``figures[name].<section>[key]`` (plain data only, for reports); a user's
        own section goes to ``figures[name].extra`` (see ``bench.figures``)."""
        self.figures.record(name, section, key, value)

    # ------------------------------------------------------------ runtimes and memory

    def timing_key(self, device: str, batch: int, runtime: str, threads: int) -> str:
        """Figure key of a timed cell: ``cpu-b1-t2-640`` (torch), ``ort-cpu-b1-t2-640`` (slimbench.core.timing_key)."""
        from slimbench.core.timing_key import TimingKey

        return str(TimingKey.of(runtime, device, batch, threads, self.settings.imgsz))

    def runtime_callable(
        self, name: str, runtime: str, device: str, batch: int, threads: int, warm: bool = True
    ) -> Any:
        """The benchmarked callable of a variant in ``runtime`` on ``threads`` threads and the same seeded input,
        warmed up: torch times its fused checkpoint copy; a runtime of ONNX files (runtimes.registry) the FP32
        export, loaded in the run's runner cache (a file it cannot load fails in one line naming the variant)."""
        from slimbench.runtimes.registry import runtime as runtime_named

        if not runtime_named(runtime).runs_file:
            return self.forward_callable(name, device, batch, threads, warm)
        return self.deploy.callable(name, runtime, "fp32", device, batch, threads, warm)

    def memory(self, name: str, runtime: str, batch: int, device: str, threads: int) -> dict[str, Any]:
        """Peak memory of inference for one variant/runtime/batch/thread count, from a fresh process
        (slimbench.measure.memory), cached."""
        key = f"{name}:{self.timing_key(device, batch, runtime, threads)}"
        if key not in self._memory:
            from slimbench.measure.memory import measure
            from slimbench.runtimes.registry import runtime as runtime_named

            v = self.config.variants[name]
            onnx = self.onnx(name).path if runtime_named(runtime).runs_file else None
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
        decision: str | None = None,
    ) -> list[str]:
        """Judge a figure against the variant's limits for ``metric`` (``core.metric_specs``): the broken ones,
        one line each. Every verdict (passed or not) is recorded under ``figures[name].checks`` for the report,
        which so never depends on which test asked. ``decision`` is how a figure with an interval was decided (the
        speed gate's "pass", "fail" or "close"); a close pass keeps its line as the check's message, so it never
        reads as a plain pass."""
        from slimbench.core.gates import kept, violation
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
            message = line
            if not line and decision == "close":
                message = kept(who or name, label or spec.label, value, bound, limit.kind, spec.fmt + spec.suffix, note)
            check = Check(metric, cell, limit.key, bound, shown_value, not line, message, decision)
            self.figures[name].checks.append(check)
            if line:
                broken.append(line)
        return broken

    def verdict(self, name: str, metric: str, problems: list[str], cell: str | None = None) -> list[str]:
        """Record a check that no numeric limit expresses (ONNX parity, class names, the stored baseline): passed
        when ``problems`` is empty, else one failed verdict per problem; returns ``problems``."""
        entries = [Check(metric, cell, None, None, None, False, p) for p in problems]
        self.figures[name].checks.extend(entries or [Check(metric, cell, None, None, None, True)])
        return problems

    def not_run(self, name: str) -> list[dict[str, str]]:
        """The variant's configured limits that no check judged in this run, each with why: deselected, skipped
        (with the skip's reason) or not collected. Counted apart from passed and failed, never silently absent."""
        from slimbench.config.suite import THRESHOLD_KEYS
        from slimbench.core.metric_specs import gating_test

        judged = {c.limit for c in self.figures[name].checks}
        limits, out = self.limits(name), []
        for key in THRESHOLD_KEYS:
            if getattr(limits, key) is not None and key not in judged:
                test = gating_test(key)
                out.append({"limit": key, "reason": self._why_not_run(test, name) or f"{test} did not run"})
        compared = any(c.metric == "baseline" for c in self.figures[name].checks)
        why = None if self.baseline is None or compared else self._why_not_run("test_baseline", name)
        if why:  # a suite's first run skips with "no baseline yet: ..." (bench.baseline_gate)
            first_run = why.startswith("skipped: no baseline yet")
            out.append({"limit": "baseline", "reason": "no baseline yet" if first_run else why})
        return out

    def _why_not_run(self, test: str, name: str) -> str | None:
        """Why a test did not run for this variant ("deselected" or "skipped: why"); None when it ran (or was
        never collected)."""
        keys = ((test, name), (test, None))  # the variant's own first
        if any(k in self.deselected for k in keys):
            return "deselected"
        skipped = next((self.skipped[k] for k in keys if k in self.skipped), None)
        return f"skipped: {skipped}" if skipped else None

    def gate(self, violations: Iterable[str | None]) -> None:
        """Fail the calling test with every broken limit, one line each, without a traceback."""
        broken = [v for v in violations if v]
        if broken:
            import pytest

            pytest.fail("\n".join(broken), pytrace=False)


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

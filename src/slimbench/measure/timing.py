"""What the speed benchmarks time, and the interleaved speed ratio that gates on a noisy machine.

Pure functions over (model, input): no pytest here, so the CLI and users' own scripts time the same way.

- The timed call runs in eval mode under ``torch.inference_mode`` and, on CUDA, synchronises *inside* the call:
  kernels are asynchronous, and pytest-benchmark would otherwise time the launch only.
- Absolute times on a shared CPU drift by tens of percent within minutes; a ratio of reference and candidate
  timed in alternating pairs, summarised by the median, does not.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from slimbench.measure.median_interval import MedianInterval


def available_cpus() -> int:
    """CPUs this process may run on (its affinity: taskset, cgroup cpusets), the suite's default thread count.

    Not ``torch.get_num_threads()``: ``import ultralytics`` sets ``OMP_NUM_THREADS=1`` when it is unset, so torch's
    own default says what a library's import left behind, not what the machine offers.
    """
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def use_threads(n: int) -> int:
    """Run torch on ``n`` threads (intra-op) and, where torch still allows it, ``n`` inter-op threads; return n.

    torch accepts an inter-op count only before its first inter-op work, so the first call of a process sets it
    and later calls keep it (``torch.get_num_interop_threads()`` says what holds). ONNX Runtime is told the same
    count per session (:func:`slimbench.runtimes.onnx_runtime.session`).
    """
    import torch

    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # already set, or inter-op work already ran: torch keeps its count
        torch.set_num_interop_threads(n)
    return n


def is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def device_available(device: str) -> bool:
    """Whether ``device`` ("cpu", "cuda", "cuda:1", "mps") can run here."""
    import torch

    if device == "cpu":
        return True
    if is_cuda(device):
        if not torch.cuda.is_available():
            return False
        _, _, idx = device.partition(":")
        return not idx or int(idx) < torch.cuda.device_count()
    if device == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return False


def synchronize(device: str) -> None:
    """Wait for queued kernels on ``device`` (no-op on CPU)."""
    import torch

    if is_cuda(device):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()


def seeded_input(
    batch: int,
    imgsz: int,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    seed: int = 0,
    channels: int = 3,
) -> torch.Tensor:
    """A fixed image batch in [0, 1): the same values for every variant, run and device (drawn on the CPU)."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.rand((batch, channels, imgsz, imgsz), generator=g)
    return x.to(device=device, dtype=dtype or torch.float32)


def timing_model(model: Any, device: str = "cpu", half: bool = False, fuse: bool = True) -> nn.Module:
    """A private copy of the model ready to time: fused Conv+BN (as ultralytics' predictor runs it), eval mode,
    on ``device``, FP32 (or FP16 when ``half`` and the device is CUDA; FP16 on CPU is slow, never what ships).

    The caller's model is not touched, so static metrics taken from it stay those of the checkpoint.
    """
    from slimbench.model.static_metrics import unwrap

    net = copy.deepcopy(unwrap(model))
    if fuse and hasattr(net, "fuse"):
        try:
            net = net.fuse(verbose=False) or net  # ultralytics' fuse prints model.info() unless told not to
        except TypeError:
            net = net.fuse() or net
    net = net.to(device)
    net = net.half() if half and is_cuda(device) else net.float()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def forward_fn(net: nn.Module, x: torch.Tensor, device: str | None = None) -> Callable[[], None]:
    """The callable the forward benchmark times: one inference-mode pass, synchronised on CUDA."""
    import torch

    dev = device or str(x.device)
    sync = is_cuda(dev) or dev == "mps"

    def forward() -> None:
        with torch.inference_mode():
            net(x)
        if sync:
            synchronize(dev)

    return forward


def warm_up(fn: Callable[[], Any], n: int) -> None:
    """Untimed calls: first calls allocate memory, pick kernels and fill caches. Every timing warms up first, so this
    is also where the process's allocator is put in the one state all timings share (once per process;
    :mod:`slimbench.measure.allocator`)."""
    from slimbench.measure.allocator import steady_allocator

    steady_allocator()
    for _ in range(max(0, n)):
        fn()


@dataclass(frozen=True)
class SpeedRatio:
    """Result of :func:`interleaved_ratio`: the median of per-pair ratios (candidate time / reference time), and
    with them the median's distribution-free 95% interval (:mod:`slimbench.measure.median_interval`).

    A gated ratio (:func:`slimbench.measure.paired_gate.gated_ratio`) also says how the gate decided on that
    interval (``decision``: "pass", "fail" or "close"), against which ``limit``, and the pair counts it looked at.
    """

    median: float
    ratios: list[float] = field(default_factory=list)
    reference_s: list[float] = field(default_factory=list)
    candidate_s: list[float] = field(default_factory=list)
    decision: str | None = None  # None: not gated (no limit, smoke mode, the matrix's cells against torch)
    limit: float | None = None
    looks: tuple[int, ...] = ()  # pairs taken when the gate looked at the interval: (9, 17, 25)

    @classmethod
    def from_ratios(
        cls, ratios: Sequence[float], reference_s: Sequence[float] = (), candidate_s: Sequence[float] = ()
    ) -> SpeedRatio:
        """A ratio from per-pair ratios alone (a simulated sampler, a test), or with the pairs' own times."""
        values = [float(r) for r in ratios]
        median = statistics.median(values) if values else float("nan")
        return cls(median, values, [float(t) for t in reference_s], [float(t) for t in candidate_s])

    def extended(self, more: SpeedRatio) -> SpeedRatio:
        """These pairs and ``more`` (timed after them) as one series, the median taken over all of them."""
        return SpeedRatio.from_ratios(
            [*self.ratios, *more.ratios], [*self.reference_s, *more.reference_s], [*self.candidate_s, *more.candidate_s]
        )

    @property
    def pairs(self) -> int:
        return len(self.ratios)

    @property
    def interval(self) -> MedianInterval:
        """The median's 95% order-statistic interval; undefined (low/high None) under 6 pairs."""
        from slimbench.measure.median_interval import median_interval

        return median_interval(self.ratios)

    @property
    def speedup(self) -> float:
        """Reference time over candidate time (2.0 = twice as fast)."""
        return 1.0 / self.median if self.median > 0 else float("inf")

    def text(self) -> str:
        """``"0.31 [0.29, 0.33], 13 pairs"``: the median, its 95% interval and the pairs it rests on."""
        iv = self.interval
        return f"{self.median:.2f} {iv.text() if iv.defined else '(no interval)'}, {self.pairs} pairs"

    def as_dict(self) -> dict[str, Any]:
        iv = self.interval
        out = {
            "median_ratio": self.median,
            "ci_low": iv.low,
            "ci_high": iv.high,
            "ci_confidence": iv.confidence,
            "ci_coverage": iv.coverage,  # the exact coverage of the ranks taken (>= ci_confidence)
            "ci_ranks": list(iv.ranks) if iv.ranks else None,
            "speedup": self.speedup,
            "pairs": self.pairs,
            "min_ratio": min(self.ratios, default=float("nan")),
            "max_ratio": max(self.ratios, default=float("nan")),
            "reference_median_s": statistics.median(self.reference_s) if self.reference_s else float("nan"),
            "candidate_median_s": statistics.median(self.candidate_s) if self.candidate_s else float("nan"),
        }
        if self.decision is not None:
            out.update(decision=self.decision, limit=self.limit, looks=list(self.looks))
        return out


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while timing (as ``timeit`` does), after one full collection.

    A collection is a pause that grows with the heap: in a long suite, with every variant, export and session
    alive, it lands in whichever call of a pair triggered it. Restored to its previous state afterwards.
    """
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def interleaved_ratio(
    ref_fn: Callable[[], Any],
    cand_fn: Callable[[], Any],
    pairs: int,
    timer: Callable[[], float] = time.perf_counter,
    start: int = 0,
) -> SpeedRatio:
    """Time reference and candidate in ``pairs`` adjacent pairs and return the median of cand/ref per pair.

    Both calls of a pair see the same machine load, so the ratio cancels most of the drift; the order inside a
    pair alternates so neither side always runs on a cache warmed by the other (``start``: the index of the first
    pair in a series continued batch by batch, so the alternation carries on across batches). The garbage
    collector is paused meanwhile (:func:`gc_paused`). Warm both up beforehand.
    """
    if pairs < 1:
        raise ValueError("pairs must be >= 1")

    def timed(fn: Callable[[], Any]) -> float:
        t0 = timer()
        fn()
        return timer() - t0

    ratios: list[float] = []
    ref_s: list[float] = []
    cand_s: list[float] = []
    with gc_paused():
        for i in range(start, start + pairs):
            if i % 2 == 0:
                r = timed(ref_fn)
                c = timed(cand_fn)
            else:
                c = timed(cand_fn)
                r = timed(ref_fn)
            ref_s.append(r)
            cand_s.append(c)
            ratios.append(c / r if r > 0 else float("inf"))
    return SpeedRatio(statistics.median(ratios), ratios, ref_s, cand_s)


PERCENTILES = (50, 90, 99)
"""Latency percentiles reported per benchmark: the median, and the tail a user of a real-time detector feels."""


def percentiles(data: Sequence[float], qs: Sequence[float] = PERCENTILES) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` of raw round times, numpy's default (linear) interpolation.

    pytest-benchmark reports min/median/mean/IQR; the tail needs the raw rounds (``benchmark.stats.stats.data``).
    With few rounds p99 is close to the maximum: report the round count next to it.
    """
    import numpy as np

    values = np.asarray(list(data), dtype=np.float64)
    if values.size == 0:
        return {f"p{q:g}": float("nan") for q in qs}
    return {f"p{q:g}": float(np.percentile(values, q)) for q in qs}


def latency_figures(data: Sequence[float], batch: int) -> dict[str, Any]:
    """Round statistics of one benchmark in seconds: median, mean, percentiles, and images per second (FPS)."""
    values = [float(v) for v in data]
    median = statistics.median(values) if values else float("nan")
    figs: dict[str, Any] = {
        "median_s": median,
        "mean_s": statistics.fmean(values) if values else float("nan"),
        "rounds": len(values),
    }
    figs.update({f"{k}_s": v for k, v in percentiles(values).items()})
    figs["fps"] = batch / median if values and median > 0 else float("nan")
    return figs

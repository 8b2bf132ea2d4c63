"""A per-layer latency model measured on this machine and runtime: each conv's time against its channel counts.

Every conv of the model (with its folded BN and activation) is timed alone on the runtime the user ships, at its own
input shape, on a small grid of input/output widths (multiples of the runtime's preferred step), and interpolated
between (linearly, extrapolated below the grid). The model's predicted latency is the sum over its convs plus what
they leave out (concat, upsample, pooling, the decode), taken as fixed: measured once as the whole model's time
minus the convs' sum at full width. Fixed costs make the predicted ratio optimistic; the caller measures the real
ratio and corrects (:mod:`slimbench.pruning.latency_target`).

Measurements are cached in one JSON file per machine, runtime, versions, threads and batch, keyed inside by each
conv's shape, so a second plan on the same machine measures nothing new. The measuring function is injectable: the
tests time nothing.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slimbench.core.files import atomic_write_bytes
from slimbench.core.versions import module_version

GRID_2D = (1.0, 0.5, 0.25)  # fractions of the full width, each of input and output, when both can shrink
GRID_1D = (1.0, 0.75, 0.5, 0.25, 0.125)  # when one can (or a depthwise conv, whose input is its output)


@dataclass(frozen=True)
class ConvShape:
    """What a conv's latency depends on, besides its widths: kernel, stride, groups kind, activation, input size."""

    kernel: int
    stride: int
    padding: int
    depthwise: bool
    act: bool
    height: int
    width: int
    batch: int

    def key(self, ci: int, co: int) -> str:
        dw = "dw" if self.depthwise else "g1"
        act = "act" if self.act else "lin"
        return f"k{self.kernel}s{self.stride}p{self.padding}{dw}{act}/{self.batch}x{self.height}x{self.width}/{ci}-{co}"


Measure = Callable[[ConvShape, int, int], float]
"""(shape, input channels, output channels) -> seconds of one forward, median of several."""


def machine_id() -> str:
    """The CPU model, its count and the architecture: latency tables do not travel between machines."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from slimbench.measure.timing import available_cpus

    return f"{model} x{available_cpus()} {platform.machine()}"


DEFAULT_CACHE = Path.home() / ".cache" / "slimbench" / "latency"  # the tables' folder unless --latency-cache


def table_path(cache_dir: Path, runtime: str, threads: int, batch: int) -> Path:
    """The cache file for one machine, runtime (and its version, torch's too), thread count and batch."""
    versions = {m: module_version(m) for m in ("torch", "onnxruntime", "openvino")}
    key = {"machine": machine_id(), "runtime": runtime, "versions": versions, "threads": threads, "batch": batch}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{runtime}-t{threads}-b{batch}-{digest}.json"


class LatencyTable:
    """Measured conv latencies, read from and written to one cache file; :meth:`seconds` measures what is missing."""

    def __init__(self, path: Path, measure: Measure) -> None:
        self.path = Path(path)
        self.measure = measure
        self.entries: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.measured = 0  # measurements this table took (not read from the cache)

    def seconds(self, shape: ConvShape, ci: int, co: int) -> float:
        key = shape.key(ci, co)
        if key not in self.entries:
            self.entries[key] = float(self.measure(shape, ci, co))
            self.measured += 1
        return self.entries[key]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, (json.dumps(self.entries, indent=0, sort_keys=True) + "\n").encode())


def grid_widths(full: int, fractions: tuple[float, ...], step: int) -> list[int]:
    """Widths to measure: ``fractions`` of ``full`` rounded to multiples of ``step`` (at least ``step``), ascending."""
    return sorted({full} | {max(step, int(round(f * full / step)) * step) for f in fractions if f < 1.0} - {0})


def interp(x: float, xs: list[int], ys: list[float]) -> float:
    """Piecewise-linear through (xs, ys), extrapolated from the two nearest points outside them (never below 0)."""
    if len(xs) == 1:
        return ys[0]
    i = 1
    while i < len(xs) - 1 and x > xs[i]:
        i += 1
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return max(0.0, y0 + (y1 - y0) * (x - x0) / (x1 - x0))


@dataclass
class ConvModel:
    """One conv's latency against its widths, from the table: ``ci_grid`` x ``co_grid`` measured points."""

    shape: ConvShape
    ci_grid: list[int]
    co_grid: list[int]
    values: list[list[float]]  # [ci index][co index]

    @classmethod
    def measure(
        cls, table: LatencyTable, shape: ConvShape, ci: int, co: int, ci_varies: bool, co_varies: bool, step: int
    ) -> ConvModel:
        if shape.depthwise:  # input and output are one width
            grid = grid_widths(co, GRID_1D, step) if co_varies else [co]
            return cls(shape, grid, grid, [[table.seconds(shape, c, c)] for c in grid])
        fractions = GRID_2D if ci_varies and co_varies else GRID_1D
        ci_grid = grid_widths(ci, fractions, step) if ci_varies else [ci]
        co_grid = grid_widths(co, fractions, step) if co_varies else [co]
        return cls(shape, ci_grid, co_grid, [[table.seconds(shape, i, o) for o in co_grid] for i in ci_grid])

    def predict(self, ci: float, co: float) -> float:
        if self.shape.depthwise:
            return interp(co, self.co_grid, [row[0] for row in self.values])
        rows = [interp(co, self.co_grid, row) for row in self.values]
        return interp(ci, self.ci_grid, rows)

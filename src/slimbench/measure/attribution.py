"""Where the forward time goes: per-layer latency of one model in one runtime, and the comparison of two models.

One record per model x runtime x device x batch x threads (:class:`Attribution`), measured in a few profiled calls
after a warm-up, the median per layer kept:

- torch: forward pre/post hooks on each top-level layer (``model.model[i]``) and on the head's parts
  (:mod:`slimbench.measure.layer_clock`, rows named by :mod:`slimbench.model.layers`); the head's decode is its time
  less its parts'. On CUDA every hook synchronises.
- ONNX Runtime and OpenVINO: their own per-node profiles (:mod:`slimbench.runtimes.profiling`), each node mapped to
  the layer whose module produced it by its name. Nodes of no layer are named extras, never dropped: the layout
  reorders a runtime inserts (``reorders``) and any other node (``other nodes``).

What a record adds up to, by construction: its layers + its extras + ``unattributed`` = ``total_ms``. Each is a
median over the profiled calls; ``unattributed`` is the median of each call's wall time less what its layers and
extras took (the session overhead, the Python between layers), so it is never a difference of two medians, and
``total_ms`` is close to the median wall time of a profiled call (``wall_ms``, kept too). Its ``coverage`` is the
attributed time over ``forward_ms``, the same model's unprofiled call timed right after each profiled one (so both
see the same machine load): a timing figure, never a gate.

A comparison (:func:`compare`) sets each layer's latency ratio (candidate ms / reference ms) beside its GFLOPs ratio
(:mod:`slimbench.model.layer_flops`); a layer whose latency ratio is far above its GFLOPs ratio and that holds a
real share of the candidate's time is flagged (:data:`FLAG_FACTOR`, :data:`FLAG_SHARE`): the pruning removed its
arithmetic but not its time. The DFL and decode are fixed costs: pruning cannot move them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slimbench.model.layers import LayerName, key_of_path

if TYPE_CHECKING:
    import torch
    from torch import nn

    from slimbench.runtimes.profiling import NodeTime

PROFILED_CALLS = 5
"""Profiled calls per record (the median per layer is kept): few, the attribution must not slow the suite."""
WARMUP = 3
"""Untimed calls before profiling: first calls allocate, pick kernels, build plans."""
FLAG_FACTOR = 2.0
"""A layer is flagged when its latency ratio is above this many times its GFLOPs ratio ..."""
FLAG_SHARE = 0.05
"""... and it holds more than this share of the candidate's profiled time."""
EXTRAS: dict[str, str] = {
    "reorders": "layout reorders (inserted by the runtime)",
    "other": "other nodes (no layer's name)",
}
"""Extras -> their label: profiled nodes that belong to no layer."""
UNATTRIBUTED = "unattributed (between layers, session overhead)"


@dataclass
class Attribution:
    """One model's forward time per layer in one runtime and cell (see the module doc). Times in ms."""

    runtime: str
    device: str
    batch: int
    threads: int
    imgsz: int
    names: list[LayerName]
    layer_ms: dict[str, float]  # row key -> median over the profiled calls; every row of ``names``
    unattributed_ms: float  # median over the calls of the wall time less the layers' and extras'
    wall_ms: float  # median wall time of a profiled call
    forward_ms: float  # median wall time of the unprofiled call timed beside each profiled one (NaN: not measured)
    calls: int
    extras_ms: dict[str, float] = field(default_factory=dict)  # EXTRAS key -> median ms
    gflops: dict[str, float] = field(default_factory=dict)  # row key -> GFLOPs at imgsz, batch 1
    unmapped: list[str] = field(default_factory=list)  # a few names of the nodes counted as "other"

    @property
    def attributed_ms(self) -> float:
        """The layers' and extras' time."""
        return sum(self.layer_ms.values()) + sum(self.extras_ms.values())

    @property
    def total_ms(self) -> float:
        """Layers + extras + unattributed: what every share is a share of."""
        return self.attributed_ms + self.unattributed_ms

    @property
    def coverage(self) -> float:
        """Attributed time over the unprofiled forward time measured beside it (NaN when that was not measured)."""
        return self.attributed_ms / self.forward_ms if self.forward_ms > 0 else float("nan")

    def label(self, key: str) -> str:
        return next((n.label for n in self.names if n.key == key), EXTRAS.get(key, key))

    def as_dict(self) -> dict[str, Any]:
        """The record as ``summary.json`` holds it: the cell, the totals and one row per layer and extra."""
        fixed = {n.key for n in self.names if n.fixed}
        rows = [
            {
                **n.as_dict(),
                "ms": self.layer_ms.get(n.key, 0.0),
                "share": _share(self.layer_ms.get(n.key, 0.0), self.total_ms),
                "gflops": self.gflops.get(n.key),
                "fixed": n.key in fixed,
            }
            for n in self.names
        ]
        rows += [
            {"key": k, "label": EXTRAS[k], "ms": v, "share": _share(v, self.total_ms), "extra": True}
            for k, v in self.extras_ms.items()
        ]
        return {
            "runtime": self.runtime,
            "device": self.device,
            "batch": self.batch,
            "threads": self.threads,
            "imgsz": self.imgsz,
            "calls": self.calls,
            "total_ms": self.total_ms,
            "wall_ms": self.wall_ms,
            "forward_ms": self.forward_ms,
            "attributed_ms": self.attributed_ms,
            "unattributed_ms": self.unattributed_ms,
            "coverage": self.coverage,
            "layers": rows,
            "unmapped_examples": self.unmapped[:5],
        }


def _share(ms: float, total: float) -> float | None:
    return ms / total if total > 0 else None


def _median_ms(values: Sequence[float]) -> float:
    return statistics.median(values) * 1e3 if values else float("nan")


def medians(per_call: Sequence[dict[str, float]], keys: Sequence[str] = ()) -> dict[str, float]:
    """Median ms per key over the calls (seconds in, ms out); a key absent from a call counts 0 there; ``keys``
    first, in their order, then any other key seen."""
    seen = list(dict.fromkeys([*keys, *(k for call in per_call for k in call)]))
    return {k: _median_ms([call.get(k, 0.0) for call in per_call]) for k in seen}


# ---------------------------------------------------------------- ONNX Runtime and OpenVINO: nodes to layers


def node_key(node: NodeTime, names: Sequence[LayerName]) -> str:
    """The row a profiled node belongs to: a layer's key, else ``reorders`` (a runtime's layout reorder) or
    ``other``."""
    key = key_of_path(node.name, names)
    if key is not None:
        return key
    return "reorders" if node.op.startswith("Reorder") else "other"


def map_nodes(calls: Sequence[Sequence[NodeTime]], names: Sequence[LayerName]) -> tuple[list[dict[str, float]], list]:
    """Per call, seconds per row key (layers and extras); and the names of the nodes that went to ``other``."""
    per_call, unmapped = [], []
    for nodes in calls:
        acc: dict[str, float] = {}
        for node in nodes:
            key = node_key(node, names)
            acc[key] = acc.get(key, 0.0) + node.seconds
            if key == "other" and node.name not in unmapped:
                unmapped.append(node.name)
        per_call.append(acc)
    return per_call, unmapped


# ---------------------------------------------------------------- one record


def attribute(
    runtime: str,
    net: nn.Module,
    x: torch.Tensor,
    threads: int,
    *,
    onnx_path: Any = None,
    device: str = "cpu",
    calls: int = PROFILED_CALLS,
    warmup: int = WARMUP,
    beside: Callable[[], Any] | None = None,
    gflops: dict[str, float] | None = None,
) -> Attribution:
    """The attribution of one model in ``runtime`` on input ``x`` (its batch is the record's).

    ``net`` is the fused timing copy (:func:`slimbench.measure.timing.timing_model`): torch profiles it, and its layers
    name the rows of every runtime. A runtime of ONNX files profiles ``onnx_path`` (the same model's export) in a
    profiling session of its own, ``beside`` (its timed callable; built here when None) timed after each call.
    Threads: torch is set to ``threads`` here; the runtimes' sessions are built with it. The garbage collector is
    paused while profiling, as in the timed benchmarks.
    """
    from slimbench.measure.timing import gc_paused, use_threads, warm_up
    from slimbench.model.layers import layer_names
    from slimbench.runtimes.registry import runtime as runtime_named

    names = layer_names(net)
    keys = [n.key for n in names]
    use_threads(threads)
    rt = runtime_named(runtime)
    unmapped: list[str] = []
    with gc_paused():
        if not rt.runs_file:
            from slimbench.measure.layer_clock import torch_profile
            from slimbench.measure.timing import forward_fn

            warm_up(forward_fn(net, x, device), warmup)
            per_call, wall, plain = torch_profile(net, x, calls, device)
        else:
            if onnx_path is None:
                raise ValueError(f"{runtime}: profiling needs the ONNX file")
            profiled = _profile_file(runtime, onnx_path, x, threads, calls, warmup, device, beside)
            per_call, unmapped = map_nodes(profiled.calls, names)
            wall, plain = profiled.wall_s, profiled.beside_s
    times = medians(per_call, keys)
    layer_ms = {k: times.pop(k) for k in keys}
    extras = {k: times.pop(k) for k in EXTRAS if k in times}
    if times:  # a key neither a layer nor an extra: the mapping is wrong, never silently dropped
        raise RuntimeError(f"{runtime}: rows of no layer: {', '.join(times)}")
    rest = [w - sum(call.values()) for w, call in zip(wall, per_call, strict=True)]
    return Attribution(
        runtime=runtime,
        device=device,
        batch=int(x.shape[0]),
        threads=threads,
        imgsz=int(x.shape[-1]),
        names=names,
        layer_ms=layer_ms,
        unattributed_ms=_median_ms(rest),
        wall_ms=_median_ms(wall),
        forward_ms=_median_ms(plain),
        calls=calls,
        extras_ms=extras,
        gflops=dict(gflops or {}),
        unmapped=unmapped,
    )


def _profile_file(
    runtime: str,
    path: Any,
    x: torch.Tensor,
    threads: int,
    calls: int,
    warmup: int,
    device: str,
    beside: Callable[[], Any] | None,
) -> Any:
    from slimbench.runtimes.registry import runtime as runtime_named

    rt = runtime_named(runtime)
    if rt.profile is None or rt.load_file is None or rt.forward is None:
        raise ValueError(f"{runtime}: no per-node profile in slimbench")
    array = x.detach().float().cpu().numpy()
    if beside is None:  # the runtime's timed callable on a session of its own, as the benchmarks build it
        loaded = rt.load_file(path, device, threads, int(x.shape[0]), int(x.shape[-1]))
        beside = rt.forward(loaded, array)
    for _ in range(max(1, warmup)):
        beside()
    return rt.profile(path, array, threads, calls, warmup, device, beside)


# ---------------------------------------------------------------- two records side by side


def compare(candidate: Attribution, reference: Attribution | None = None) -> list[dict[str, Any]]:
    """One row per layer (candidate's model order, then any layer only the reference has), then the extras and the
    unattributed time: ms and share of each side's profiled total, the latency ratio beside the GFLOPs ratio, and
    whether the row is flagged (:data:`FLAG_FACTOR`, :data:`FLAG_SHARE`) or a fixed cost. Without a reference, the
    candidate's rows alone (ratios None)."""
    names = {n.key: n for n in candidate.names}
    if reference is not None:
        for n in reference.names:
            names.setdefault(n.key, n)
    rows = []
    for key, name in names.items():
        rows.append(
            _row(
                key,
                name.label,
                candidate.layer_ms.get(key),
                reference.layer_ms.get(key) if reference else None,
                candidate,
                reference,
                kind="fixed" if name.fixed else "layer",
                gflops=(candidate.gflops.get(key), reference.gflops.get(key) if reference else None),
            )
        )
    extras = dict.fromkeys([*candidate.extras_ms, *(reference.extras_ms if reference else {})])
    for key in extras:
        ref_ms = reference.extras_ms.get(key, 0.0) if reference else None
        rows.append(_row(key, EXTRAS[key], candidate.extras_ms.get(key, 0.0), ref_ms, candidate, reference, "extra"))
    ref_un = reference.unattributed_ms if reference else None
    rows.append(
        _row("unattributed", UNATTRIBUTED, candidate.unattributed_ms, ref_un, candidate, reference, "unattributed")
    )
    return rows


def layers_ratio(rows: list[dict[str, Any]]) -> float | None:
    """The candidate's time over the reference's in the model layers alone (``kind == "layer"``): what pruning can
    move, with the fixed costs (DFL, decode), the runtime's extras (layout reorders) and the unattributed time left
    out. A layer pruning removed counts 0 ms. None without a reference, or when the reference has no layer time."""
    layers = [r for r in rows if r["kind"] == "layer"]
    ref = sum(r["reference_ms"] or 0.0 for r in layers)
    if not ref or all(r["reference_ms"] is None for r in layers):
        return None
    return sum(r["ms"] or 0.0 for r in layers) / ref


def _row(
    key: str,
    label: str,
    ms: float | None,
    ref_ms: float | None,
    cand: Attribution,
    ref: Attribution | None,
    kind: str,
    gflops: tuple[float | None, float | None] = (None, None),
) -> dict[str, Any]:
    latency_ratio = ms / ref_ms if ms is not None and ref_ms else None
    gf, ref_gf = gflops
    gflops_ratio = gf / ref_gf if gf is not None and ref_gf else None
    share = _share(ms, cand.total_ms) if ms is not None else None
    flagged = bool(
        kind == "layer"
        and latency_ratio is not None
        and gflops_ratio is not None
        and latency_ratio > FLAG_FACTOR * gflops_ratio
        and share is not None
        and share > FLAG_SHARE
    )
    return {
        "key": key,
        "label": label,
        "kind": kind,  # layer, fixed (pruning cannot move it), extra, unattributed; "rest" in a table (report)
        "ms": ms,
        "share": share,
        "reference_ms": ref_ms,
        "reference_share": _share(ref_ms, ref.total_ms) if ref is not None and ref_ms is not None else None,
        "latency_ratio": latency_ratio,
        "gflops": gf,
        "reference_gflops": ref_gf,
        "gflops_ratio": gflops_ratio,
        "flagged": flagged,
    }

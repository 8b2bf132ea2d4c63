"""torch's per-layer time: forward pre/post hooks on each top-level layer of a ``DetectionModel`` and on each part of
its head, timed with ``time.perf_counter`` (synchronised on CUDA), for :mod:`slimbench.measure.attribution`.

Hooks, not ``torch.profiler``: a layer's time is then exactly the span its module's ``forward`` took, the rows are
the model's own modules (no operator names to map back), and the overhead is two clock reads per layer. What runs
between layers (ultralytics' ``_predict_once`` gathering inputs and saving outputs) is left unattributed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn


class LayerClock:
    """Forward pre/post hooks on each top-level layer and each head part, installed while the context is open;
    :meth:`take` returns one call's seconds per row key (the head's decode: its time less its parts')."""

    def __init__(self, net: nn.Module, device: str = "cpu") -> None:
        from slimbench.model.layers import head_parts, is_head, layers_of

        self.device = device
        self.targets: list[tuple[nn.Module, str]] = []
        self.head: str | None = None
        for i, m in enumerate(layers_of(net)):
            if is_head(m):
                self.head = str(i)
                self.targets.append((m, f"{i}.head"))
                self.targets += [(sub, f"{i}.{part}") for part, subs in head_parts(m).items() for sub in subs]
            else:
                self.targets.append((m, str(i)))
        self._handles: list[Any] = []
        self._start: dict[int, float] = {}
        self._acc: dict[str, float] = {}

    def _sync(self) -> None:
        if self.device != "cpu":
            from slimbench.measure.timing import synchronize

            synchronize(self.device)

    def __enter__(self) -> LayerClock:
        for module, key in self.targets:

            def pre(m: nn.Module, _inp: Any) -> None:
                self._sync()
                self._start[id(m)] = time.perf_counter()

            def post(m: nn.Module, _inp: Any, _out: Any, key: str = key) -> None:
                self._sync()
                self._acc[key] = self._acc.get(key, 0.0) + time.perf_counter() - self._start.pop(id(m))

            self._handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def take(self) -> dict[str, float]:
        """Seconds per row key of the calls since the last take."""
        call, self._acc = self._acc, {}
        if self.head is not None:
            head = call.pop(f"{self.head}.head", 0.0)
            parts = sum(v for k, v in call.items() if k.startswith(f"{self.head}."))
            call[f"{self.head}.decode"] = head - parts
        return call


def torch_profile(
    net: nn.Module, x: torch.Tensor, calls: int, device: str = "cpu"
) -> tuple[list[dict[str, float]], list[float], list[float]]:
    """``calls`` forward passes of ``net`` with a :class:`LayerClock`, each followed by one without hooks (the timed
    callable of :func:`slimbench.measure.timing.forward_fn`): (seconds per row key per call, the hooked calls' wall
    times, the plain calls' wall times). Warm ``net`` up first."""
    from slimbench.measure.timing import forward_fn
    from slimbench.runtimes.profiling import timed_call

    clock = LayerClock(net, device)
    run = forward_fn(net, x, device)  # inference mode, synchronised on CUDA
    per_call, wall, beside = [], [], []
    for _ in range(calls):
        with clock:
            wall.append(timed_call(run))
        per_call.append(clock.take())
        beside.append(timed_call(run))
    return per_call, wall, beside

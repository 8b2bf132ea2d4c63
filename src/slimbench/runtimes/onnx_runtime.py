"""ONNX Runtime: the session a deployed model runs in, the callable the benchmarks time, and output parity.

The session is told its thread count (``intra_op_num_threads``: the suite's stated count, the same torch runs with;
one inter-op thread, sequential execution) so torch and ONNX Runtime are compared on the same cores. Its thread
pools do not spin: after each run ONNX Runtime's workers busy-wait for more work by default, and two sessions timed
in alternation (the interleaved speed ratio) then steal each other's cores. Measured at 640 px, 2 threads, one
process alternating four sessions: original 96 ms with spinning, 68 ms without (86 ms at 1 thread), so the suite
sets ``session.intra_op.allow_spinning`` (and the inter-op one) to "0" in every session, timed or not.
The CPU execution provider is used on the CPU; the CUDA provider on a CUDA device, where onnxruntime has one (else
the test is skipped with the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnxruntime

NO_SPINNING = {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}
"""Session config entries that stop idle worker threads from busy-waiting (see the module docstring)."""


class NoProvider(RuntimeError):
    """ONNX Runtime has no execution provider for the device (a reason to skip, not a failure)."""


def missing_reason() -> str | None:
    """Why ONNX Runtime cannot run here (the module does not import), or None."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return f"onnxruntime not installed ({e})"
    return None


def provider_for(device: str) -> tuple[str | None, str]:
    """(execution provider, or None when there is none for ``device``; a note saying which or why not)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return "CPUExecutionProvider", "CPUExecutionProvider"
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" in available:
            return "CUDAExecutionProvider", "CUDAExecutionProvider"
        return None, f"onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu not installed; has {available})"
    return None, f"no ONNX Runtime provider for device {device!r} in slimbench"


def session(
    path: str | Path,
    device: str = "cpu",
    num_threads: int = 1,
    profile_prefix: str | Path | None = None,
    config: Mapping[str, str] | None = None,
) -> onnxruntime.InferenceSession:
    """An ``InferenceSession`` on ``device`` with ``num_threads`` intra-op threads that do not spin, all graph
    optimisations on. ``profile_prefix``: ONNX Runtime's session profiling on, its trace written under that path
    prefix by ``end_profiling()`` (:mod:`slimbench.runtimes.profiling`); never on a timed session. ``config``: session
    config entries over the suite's (``tools/ort_spinning.py`` measures other spinning modes with it)."""
    import onnxruntime as ort

    provider, why = provider_for(device)
    if provider is None:
        raise NoProvider(why)
    opts = ort.SessionOptions()
    if num_threads < 1:
        raise ValueError(f"thread count must be >= 1, got {num_threads}")
    opts.intra_op_num_threads = int(num_threads)
    opts.inter_op_num_threads = 1
    for key, value in {**NO_SPINNING, **(config or {})}.items():
        opts.add_session_config_entry(key, value)
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    providers: list[Any] = [provider]
    if provider == "CUDAExecutionProvider":
        _, _, idx = device.partition(":")
        providers = [("CUDAExecutionProvider", {"device_id": int(idx or 0)}), "CPUExecutionProvider"]
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def run(sess: onnxruntime.InferenceSession, x: np.ndarray) -> np.ndarray:
    """The model's first output for input ``x`` (N x 3 x H x W, float32)."""
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x})[0]


def forward_fn(sess: onnxruntime.InferenceSession, x: np.ndarray) -> Callable[[], None]:
    """The callable the ONNX Runtime benchmark times: one ``run`` on a fixed input (synchronous on every provider)."""
    name = sess.get_inputs()[0].name
    feed = {name: np.ascontiguousarray(x, dtype=np.float32)}

    def forward() -> None:
        sess.run(None, feed)

    return forward


@dataclass(frozen=True)
class Parity:
    """Raw outputs of the exported model versus the checkpoint on the same input, compared elementwise."""

    max_abs_diff: float
    max_rel_diff: float  # |a - b| / (|b| + atol), maximised
    atol: float
    rtol: float
    shape: tuple[int, ...]
    shape_ok: bool
    excess: float  # max of |a - b| - (atol + rtol * |b|): <= 0 when every element is within tolerance

    @property
    def ok(self) -> bool:
        return self.shape_ok and self.excess <= 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "atol": self.atol,
            "rtol": self.rtol,
            "shape": list(self.shape),
            "ok": self.ok,
        }


def parity(onnx_out: np.ndarray, torch_out: np.ndarray, atol: float = 1e-3, rtol: float = 1e-3) -> Parity:
    """Compare outputs elementwise: every ``|onnx - torch| <= atol + rtol * |torch|`` (numpy's ``allclose`` rule)."""
    a = np.asarray(onnx_out, dtype=np.float64)
    b = np.asarray(torch_out, dtype=np.float64)
    if a.shape != b.shape:
        return Parity(float("inf"), float("inf"), atol, rtol, tuple(a.shape), False, float("inf"))
    diff = np.abs(a - b)
    excess = float((diff - (atol + rtol * np.abs(b))).max(initial=-np.inf))
    rel = float((diff / (np.abs(b) + atol)).max(initial=0.0))
    return Parity(float(diff.max(initial=0.0)), rel, atol, rtol, tuple(a.shape), True, excess)

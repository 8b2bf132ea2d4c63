"""Does ONNX Runtime's spinning change what the suite measures? ONNX files timed per spinning mode, alone and paired.

    python tools/ort_spinning.py ORIGINAL.onnx PRUNED.onnx [...] [--threads 2] [--rounds 3]

Every session is the suite's (:func:`slimbench.runtimes.onnx_runtime.session`), with the mode's config entries over
its own. Modes: ``off`` (the suite's sessions as they are: workers never busy-wait), ``run`` (they spin while a run
lasts and stop when it returns: ``session.force_spinning_stop``), ``on`` (ONNX Runtime's default: they keep spinning
after a run). Per round and mode, each file is timed alone in its own session (40 runs after 5, b1 640, a fixed
input), then all files in one loop alternating their sessions (the suite's paired speed ratio is timed that way); it
prints the medians in ms and, alternated, each file's ratio to the first. docs/method.md gives what it measured and
why the suite keeps ``off``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from slimbench.runtimes import onnx_runtime as ort_runtime
from slimbench.runtimes.profiling import timed_call

MODES = {  # config entries over the suite's session's own (which has spinning off)
    "off": {},
    "run": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"},
    "on": {"session.intra_op.allow_spinning": "1", "session.inter_op.allow_spinning": "1"},
}


def medians_ms(paths: list[Path], threads: int, mode: str, runs: int, alternate: bool) -> list[float]:
    """Median ms per file: each in turn alone, or all alternating in one loop (order reversed every other round)."""
    x = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    groups = [paths] if alternate else [[p] for p in paths]
    out: dict[Path, float] = {}
    for group in groups:
        calls = [
            (p, ort_runtime.forward_fn(ort_runtime.session(p, "cpu", threads, config=MODES[mode]), x)) for p in group
        ]
        for _ in range(5):
            for _, call in calls:
                call()
        times: dict[Path, list[float]] = {p: [] for p, _ in calls}
        for r in range(runs):
            for p, call in calls if r % 2 == 0 else calls[::-1]:
                times[p].append(timed_call(call))
        out.update({p: statistics.median(t) * 1000 for p, t in times.items()})
    return [out[p] for p in paths]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx", nargs="+", type=Path, help="ONNX files, the reference first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=40, help="timed runs per file and mode")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.onnx if not p.is_file()]
    if missing:
        ap.error(f"not a file: {', '.join(missing)}")
    names = [p.stem[:16] for p in args.onnx]
    for r in range(1, args.rounds + 1):
        for mode in MODES:
            alone = medians_ms(args.onnx, args.threads, mode, args.runs, alternate=False)
            paired = medians_ms(args.onnx, args.threads, mode, args.runs, alternate=True)
            cells = "  ".join(
                f"{n} {a:.1f} / {b:.1f} ms ({b / paired[0]:.3f})" for n, a, b in zip(names, alone, paired, strict=True)
            )
            print(f"round {r} {mode:<3}  alone / alternated (ratio): {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

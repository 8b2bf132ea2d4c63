"""Peak memory of inference per variant, runtime and batch size, each measured in a fresh process.

Edge devices run out of memory before they run out of time. In one long-lived process the allocator keeps what an
earlier model freed, so one variant's allocations hide another's; each measurement therefore runs in its own
``python -m slimbench.measure.memory`` process that loads one model, runs a few inferences at one batch size, reports:

- ``peak_rss_mb``: the process's peak resident set size (``VmHWM``; ``ru_maxrss`` off Linux) after inference,
  in MB (1e6 bytes): what the device must hold, interpreter and runtime libraries included;
- ``loaded_rss_mb``: the resident set after the model was loaded, the input built and one tiny warm-up call made
  (batch 1 at 32 px: it loads library code and thread pools), before inference at the measured batch;
- ``inference_mb``: ``peak_rss_mb - loaded_rss_mb`` less the library code paged in meanwhile (``file_growth_mb``,
  the growth of the file-backed resident set, ``RssFile``): the memory inference itself adds (activations,
  workspace). Code pages are not the model's: how many the kernel maps per fault depends on how the library files
  sit in the page cache (measured: a freshly installed venv read 43 vs 37 MB for the bundled original and pruned
  models at batch 1, ratio 0.87; an older one 30 vs 20 MB, 0.69, same files, same code). This is the figure that
  differs between variants, and the one ``max_memory_ratio`` gates (absolute memory is reported, not gated);
- ``cuda_max_allocated_mb``: ``torch.cuda.max_memory_allocated`` on a CUDA device (torch runtime only).

The checkpoint is checked against its sha256 pin (when given) before the child unpickles it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slimbench.core.errors import SlimbenchError

MB = 1e6
MMAP_THRESHOLD = str(128 * 1024)
"""glibc's malloc raises its mmap threshold as large blocks are freed, after which activations come from the heap
and stay resident: the torch peak at batch 8 then varies by +-40% from run to run (measured: inference 213-392 MB
for one model). A fixed threshold (the child's ``MALLOC_MMAP_THRESHOLD_``, unless set already) maps every large
buffer and returns it on free, so the peak is the memory inference really holds: identical to 1 MB over 4 runs."""
WARM_IMGSZ = 32
"""One batch-1 call at this size before ``loaded`` is read: the first call faults in tens of MB of library code and
thread pools whatever the model, which would otherwise be counted as the model's inference memory."""
CALLS = 3
"""Inferences per measurement: the first allocates, later ones show whether anything keeps growing."""


def _rss_now() -> int:
    """Current resident set in bytes (Linux /proc; elsewhere the peak so far, the best portable figure)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _rss_peak()


def _status_bytes(*fields: str) -> dict[str, int]:
    """Fields of ``/proc/self/status`` (``VmHWM``, ``RssFile``, ...) in bytes; those absent (off Linux) are left out."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in fields:
                    out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return out


def _file_rss() -> int:
    """The file-backed and shared part of the resident set in bytes (``RssFile`` + ``RssShmem``; 0 off Linux)."""
    return sum(_status_bytes("RssFile", "RssShmem").values())


def _rss_peak() -> int:
    """Peak resident set of this process in bytes: ``VmHWM`` on Linux, else ``ru_maxrss``.

    ``ru_maxrss`` survives ``execve`` on Linux: a child forked from a large pytest process would report the parent's
    peak. ``VmHWM`` belongs to the address space, which exec replaces, so it is this program's own peak.
    """
    hwm = _status_bytes("VmHWM").get("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return int(peak if sys.platform == "darwin" else peak * 1024)


def measure_here(
    checkpoint: str,
    runtime: str,
    batch: int,
    imgsz: int,
    device: str = "cpu",
    onnx: str | None = None,
    threads: int | None = None,
    calls: int = CALLS,
) -> dict[str, Any]:
    """Load, build the input, run ``calls`` inferences, report RSS figures. Meant for a fresh process (see module)."""
    import numpy as np

    cuda_mb = None
    if runtime == "torch":
        import torch

        from slimbench.measure.timing import seeded_input, timing_model
        from slimbench.model.checkpoint import load_detector

        if threads:
            from slimbench.measure.timing import use_threads

            use_threads(threads)
        net = timing_model(load_detector(checkpoint), device)
        x = seeded_input(batch, imgsz, device)
        cuda = device.startswith("cuda")
        with torch.inference_mode():
            net(seeded_input(1, WARM_IMGSZ, device))  # fault in library code and thread pools: not the model's cost
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        loaded, loaded_file = _rss_now(), _file_rss()
        with torch.inference_mode():
            for _ in range(calls):
                net(x)
        if cuda:
            torch.cuda.synchronize(device)
            cuda_mb = torch.cuda.max_memory_allocated(device) / MB
    elif runtime == "onnxruntime":
        from slimbench.runtimes import onnx_runtime as ort_runtime

        if not onnx:
            raise SlimbenchError("--onnx PATH is needed for the onnxruntime runtime")
        sess = ort_runtime.session(onnx, device, threads or os.cpu_count())  # no torch import here
        rng = np.random.default_rng(0)
        x = rng.random((batch, 3, imgsz, imgsz), dtype=np.float32)
        ort_runtime.run(sess, rng.random((1, 3, WARM_IMGSZ, WARM_IMGSZ), dtype=np.float32))
        loaded, loaded_file = _rss_now(), _file_rss()
        for _ in range(calls):
            ort_runtime.run(sess, x)
    else:
        raise SlimbenchError(f"unknown runtime {runtime!r} (expected torch or onnxruntime)")
    peak = max(_rss_peak(), loaded)
    file_growth = max(_file_rss() - loaded_file, 0)  # library code paged in by inference: not the model's memory
    return {
        "runtime": runtime,
        "batch": batch,
        "imgsz": imgsz,
        "device": device,
        "peak_rss_mb": peak / MB,
        "loaded_rss_mb": loaded / MB,
        "file_growth_mb": file_growth / MB,
        "inference_mb": max(peak - loaded - file_growth, 0) / MB,
        "cuda_max_allocated_mb": cuda_mb,
    }


def measure(
    checkpoint: str | os.PathLike[str],
    runtime: str,
    batch: int,
    imgsz: int,
    device: str = "cpu",
    onnx: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    sha256: str | None = None,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Peak memory of one variant/runtime/batch, measured in a fresh child process; one error line on failure."""
    from slimbench.model.checkpoint import check_file

    check_file(checkpoint, sha256)
    cmd = [
        sys.executable,
        "-m",
        "slimbench.measure.memory",
        str(checkpoint),
        "--runtime",
        runtime,
        "--batch",
        str(batch),
        "--imgsz",
        str(imgsz),
        "--device",
        device,
    ]
    if onnx:
        cmd += ["--onnx", str(onnx)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    if threads:  # the parent's OMP_NUM_THREADS may be what `import ultralytics` left (1): state the count
        env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as e:
        raise SlimbenchError(f"{checkpoint}: memory measurement ({runtime}, batch {batch}) timed out") from e
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:]) or f"exit code {proc.returncode}"
        raise SlimbenchError(f"{checkpoint}: memory measurement ({runtime}, batch {batch}) failed: {tail[:300]}")
    return json.loads(lines[-1])


def memory_ratio(candidate: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Candidate / reference memory of one cell, measured in the same run: CUDA max allocated where both have it
    (the device's memory), else the RSS inference adds (``inference_mb``, what differs between variants; the
    whole-process peak is mostly the runtime's own libraries)."""
    key = (
        "cuda_max_allocated_mb"
        if candidate.get("cuda_max_allocated_mb") and reference.get("cuda_max_allocated_mb")
        else "inference_mb"
    )
    cand, ref = float(candidate[key]), float(reference[key])
    unit = "CUDA max allocated" if key == "cuda_max_allocated_mb" else "inference memory"
    return {"ratio": cand / ref if ref > 0 else float("inf"), "candidate": cand, "reference": ref, "unit": unit}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slimbench.measure.memory", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--runtime", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--onnx", default=None, help="the exported file (onnxruntime runtime)")
    parser.add_argument("--threads", type=int, default=None)
    a = parser.parse_args(argv)
    try:
        figs = measure_here(str(Path(a.checkpoint)), a.runtime, a.batch, a.imgsz, a.device, a.onnx, a.threads)
    except SlimbenchError as e:
        print(f"slimbench.measure.memory: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(figs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

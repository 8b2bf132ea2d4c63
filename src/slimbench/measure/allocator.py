"""One allocator state for every timing, so that a speed ratio does not depend on what the process ran before.

glibc's malloc serves a large block (over 128 KiB at start) by ``mmap`` and gives it back on free, and raises that
threshold, and the heap's trim threshold with it, to the largest such block freed so far. A process that has run
batch 8 therefore serves batch 1's activations from its heap, while a fresh one page-faults them in on every
forward: measured here, the YOLO11n original's batch-1 forward took 79 ms before any batch-8 run and 63 ms after,
the pruned model's 27 ms both times, so the same pair read 0.34 or 0.43 by test order. Fixing both thresholds
(which also turns glibc's adjustment off) gives every cell the settled state a long-running process reaches.
Elsewhere (macOS, musl) nothing changes and :func:`steady_allocator` says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's own ceiling for the adjusted threshold on 64-bit
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc sets beside an adjusted mmap threshold


@functools.cache
def steady_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (once); False where the C library has no mallopt
    or refuses it. :func:`slimbench.measure.timing.warm_up` calls it, so every timing runs in this state; peak-memory
    runs (their own processes, no warm-up) keep the default allocator."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1

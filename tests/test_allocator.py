"""The allocator state every timing runs in (slimbench.measure.allocator): no timing here, only where glibc puts
a block the size of a batch-1 activation."""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys

import pytest

# A fresh interpreter mallocs a 4 MiB block and says whether glibc served it by mmap (mallinfo2's hblkhd grows);
# "steady" first fixes the thresholds as the suite does.
PROBE = """
import ctypes, ctypes.util, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
if sys.argv[1] == "steady":
    from slimbench.measure.allocator import steady_allocator
    assert steady_allocator() and steady_allocator()  # once per process, and says so again
before = libc.mallinfo2().hblkhd
block = libc.malloc(4 << 20)
print("mmap" if libc.mallinfo2().hblkhd - before >= 4 << 20 else "heap")
libc.free(block)
"""


def _glibc_with_mallinfo2() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return hasattr(libc, "mallinfo2") and hasattr(libc, "mallopt")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc >= 2.33 (mallopt, mallinfo2): not this C library")
def test_steady_allocator_serves_activation_sized_blocks_from_the_heap() -> None:
    """A fresh process maps a 4 MiB block (glibc's default threshold, 128 KiB, until something larger was freed);
    after steady_allocator() the heap serves it, as in a process that already ran batch 8: every timed cell
    starts in that state, whatever ran before it."""

    def where(mode: str) -> str:
        run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    assert where("default") == "mmap"
    assert where("steady") == "heap"


def test_steady_allocator_elsewhere_reports_false(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the C library has no mallopt (macOS, Windows), nothing is changed and the function says so."""
    from slimbench.measure import allocator

    class NoMallopt:
        def __init__(self, *a: object) -> None:
            pass

    allocator.steady_allocator.cache_clear()
    monkeypatch.setattr(allocator.ctypes, "CDLL", NoMallopt)
    try:
        assert allocator.steady_allocator() is False
    finally:
        allocator.steady_allocator.cache_clear()

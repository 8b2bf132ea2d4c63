"""A time limit for steps that may never finish (torch-pruning's graph building and group collection).

torch-pruning 1.6 can loop forever in ``index_mapping`` on graphs it misreads (yolo11n/yolo26n before the C3k2
and C2PSA rewrites). Nothing in our code would notice, so the step runs under a deadline and a run past it is a
:class:`DeadlineExceeded` that says what did not finish. In the main thread a SIGALRM timer interrupts the stuck
Python loop itself; elsewhere (no signals there) the step runs in a daemon thread that is abandoned at the deadline.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import TypeVar

from slimbench.core.errors import SlimbenchError

T = TypeVar("T")


class DeadlineExceeded(SlimbenchError):
    """A bounded step ran past its deadline."""


def _message(what: str, seconds: float) -> str:
    return f"{what} did not finish within its deadline of {seconds:g} s; stopped"


def _can_use_alarm() -> bool:
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0  # never clobber a timer someone else set
    )


def run_with_deadline(fn: Callable[[], T], seconds: float, what: str) -> T:
    """Return ``fn()``, or raise :class:`DeadlineExceeded` naming ``what`` once ``seconds`` have passed."""
    if seconds <= 0:
        raise ValueError(f"deadline must be > 0 s, got {seconds}")
    if _can_use_alarm():
        return _with_alarm(fn, seconds, what)
    return _with_thread(fn, seconds, what)


def _with_alarm(fn: Callable[[], T], seconds: float, what: str) -> T:
    def on_alarm(signum: int, frame: object) -> None:
        raise DeadlineExceeded(_message(what, seconds))

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _with_thread(fn: Callable[[], T], seconds: float, what: str) -> T:
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=target, name=f"deadline: {what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise DeadlineExceeded(_message(what, seconds))
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]

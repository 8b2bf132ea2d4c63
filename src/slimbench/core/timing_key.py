"""The runtimes slimbench times, and the key that names one timed cell: runtime, device, batch, threads, imgsz.

One definition, so test ids, figure keys, benchmark groups, report columns and baseline metric names cannot drift
apart. The text form is ``cpu-b1-t2-640`` for torch and ``ort-cpu-b1-t2-640`` for ONNX Runtime; ``label`` drops
the image size, which is the same for a whole run and named in the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
"""Every runtime the suite can time, in report order."""
RUNTIME_IDS: dict[str, str] = {"torch": "torch", "onnxruntime": "ort", "openvino": "ov"}
"""Short runtime names in test ids (``test_forward[pruned-cpu-b1-t2-ort]``) and figure keys (``ort-cpu-b1-t2``)."""
_KEY_PREFIX = {rt: ("" if rt == "torch" else f"{short}-") for rt, short in RUNTIME_IDS.items()}
_PATTERN = re.compile(
    r"^(?:(?P<rt>[a-z]+)-)??(?P<device>[a-z]+(?::\d+)?)-b(?P<batch>\d+)-t(?P<threads>\d+)(?:-(?P<imgsz>\d+))?$"
)


@dataclass(frozen=True, order=True)
class TimingKey:
    """One timed cell. Ordered by device, batch, threads, then runtime in :data:`RUNTIMES` order."""

    device: str
    batch: int
    threads: int
    runtime_rank: int
    imgsz: int

    @classmethod
    def of(cls, runtime: str, device: str, batch: int, threads: int, imgsz: int) -> TimingKey:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r} (expected one of {', '.join(RUNTIMES)})")
        return cls(str(device), int(batch), int(threads), RUNTIMES.index(runtime), int(imgsz))

    @property
    def runtime(self) -> str:
        return RUNTIMES[self.runtime_rank]

    @property
    def label(self) -> str:
        """``ort-cpu-b1-t2``: the key without the image size (report columns, baseline metric names)."""
        return f"{_KEY_PREFIX[self.runtime]}{self.device}-b{self.batch}-t{self.threads}"

    def __str__(self) -> str:
        return f"{self.label}-{self.imgsz}"

    @classmethod
    def parse(cls, text: str, imgsz: int | None = None) -> TimingKey:
        """Read ``str(key)`` or ``key.label`` back (``imgsz`` fills in a label's missing image size)."""
        m = _PATTERN.match(str(text))
        if not m:
            raise ValueError(f"not a timing key: {text!r}")
        short = m.group("rt") or "torch"
        runtime = next((rt for rt, s in RUNTIME_IDS.items() if s == short), None)
        size = m.group("imgsz") or imgsz
        if runtime is None or size is None:
            raise ValueError(f"not a timing key: {text!r}")
        return cls.of(runtime, m.group("device"), int(m.group("batch")), int(m.group("threads")), int(size))

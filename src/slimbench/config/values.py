"""The values a suite setting takes, checked one way whether they come from the TOML or the command line.

Devices, image sizes, batch and thread lists, runtimes and precisions: each parser turns the text (or list) into the
setting's value, or raises one :class:`SlimbenchError` line naming the option or the file and key (``where``).
Both :mod:`slimbench.config.suite` (the file) and :mod:`slimbench.config.overrides` (the command line) use them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from slimbench.core.errors import SlimbenchError
from slimbench.core.timing_key import RUNTIMES

VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""A variant's name: it becomes part of test ids."""
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


def parse_int_list(text: str, option: str, minimum: int = 1) -> tuple[int, ...]:
    """``"1,8"`` -> (1, 8), refusing anything else with the option's name."""
    items = [t.strip() for t in str(text).split(",")]
    out: list[int] = []
    for t in items:
        if not re.fullmatch(r"\d+", t) or int(t) < minimum:
            raise SlimbenchError(f"{option} {text!r}: expected comma-separated integers >= {minimum}")
        out.append(int(t))
    return tuple(dict.fromkeys(out))


def parse_devices(text: str, option: str = "--device") -> tuple[str, ...]:
    """``"cpu,cuda"`` -> ("cpu", "cuda"); cuda availability is checked later, per test (skipped when absent)."""
    items = [t.strip().lower() for t in str(text).split(",")]
    if not all(items):
        raise SlimbenchError(f"{option} {text!r}: expected comma-separated devices such as cpu,cuda")
    return tuple(dict.fromkeys(check_device(t, option) for t in items))


def parse_runtimes(items: Sequence[str] | str, where: str = "--runtime") -> tuple[str, ...]:
    """``"torch,onnxruntime"`` (or a list) -> ("torch", "onnxruntime"); "ort" is accepted for onnxruntime."""
    raw = str(items).split(",") if isinstance(items, str) else list(items)
    out: list[str] = []
    for item in raw:
        name = str(item).strip().lower()
        name = {"ort": "onnxruntime", "ov": "openvino"}.get(name, name)
        if name not in RUNTIMES:
            raise SlimbenchError(f"{where}: unknown runtime {str(item).strip()!r} (expected {', '.join(RUNTIMES)})")
        out.append(name)
    if not out:
        raise SlimbenchError(f"{where}: expected comma-separated runtimes such as torch,onnxruntime")
    return tuple(dict.fromkeys(out))


PRECISIONS = ("fp32", "int8")
"""Deployment matrix precisions: the FP32 export and its INT8 (QDQ) file (slimbench.runtimes.quantize)."""


def parse_precisions(items: Sequence[str] | str, where: str = "--precision") -> tuple[str, ...]:
    """``"fp32,int8"`` (or a list) -> ("fp32", "int8")."""
    raw = str(items).split(",") if isinstance(items, str) else list(items)
    out = [str(item).strip().lower() for item in raw]
    bad = [item for item in out if item not in PRECISIONS]
    if bad or not out:
        raise SlimbenchError(f"{where}: unknown precision {bad[0] if bad else ''!r} (expected fp32, int8)")
    return tuple(dict.fromkeys(out))


def check_device(name: str, where: str) -> str:
    """A device name slimbench can time on, lower-cased; ``where`` (option or file and key) starts the error."""
    name = name.strip().lower()
    if not _DEVICE.match(name):
        raise SlimbenchError(f"{where}: unknown device {name!r} (expected cpu, cuda, cuda:N or mps)")
    return name


def check_imgsz(value: int, where: str) -> int:
    """YOLO detectors downsample by 32: other sizes cannot run a raw forward pass."""
    if value < 32 or value % 32:
        raise SlimbenchError(f"{where}: {value} is not a positive multiple of 32 (the largest YOLO stride)")
    return value

"""Tiny stand-ins for the bundled variants, built offline from ultralytics' model YAMLs in a few hundred ms.

- "original": YOLOv8n (or s) with a small ``nc``; its class logits are biased up so that, untrained, it still
  produces plenty of (deterministic) detections for the detection checks to compare.
- "pruned-like": the same architecture at a smaller width multiplier: fewer channels, params and GFLOPs.
- "masked": the original with half the output channels of some convolutions zeroed (weights and BatchNorm):
  fake pruning, same shape.

And the pieces of a suite run on them by pytester (the ``bench_dir`` fixture in conftest.py makes the folder):
settings that run in seconds, the suite's TOML, the in-process run and a listing of what a run wrote. And
``load_tool``: a script of tools/ (not a package) imported as a module, for the tests of the tools.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

NAMES = {0: "square", 1: "circle"}
# a suite on the tiny variants that runs in seconds: 64 px, one batch size and thread, no warmup, 6 speed pairs (the
# fewest with a 95% interval of their median: a limit the whole interval clears is decided at the first look)
SUITE_SETTINGS: dict[str, Any] = {
    "imgsz": 64,
    "batch": [1],
    "threads": [1],
    "device": ["cpu"],
    "images": ["scene.jpg"],
    "warmup": 0,
    "speed_pairs": 6,
}


def build_detector(
    cfg: str = "yolov8n.yaml", nc: int = 2, width: float | None = None, seed: int = 0, class_bias: float = 3.0
) -> Any:
    """A DetectionModel built from a YAML (no download), seeded, in eval mode, with class names set."""
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    spec = yaml_model_load(cfg)
    if width is not None:
        scale = spec.get("scale") or "n"
        depth, _, max_ch = spec["scales"][scale]
        spec["scales"] = {scale: [depth, width, max_ch]}
        spec["scale"] = scale
    torch.manual_seed(seed)
    net = DetectionModel(spec, nc=nc, verbose=False)
    net.names = {i: NAMES.get(i, f"class{i}") for i in range(nc)}
    if class_bias:
        with torch.no_grad():
            for tower in net.model[-1].cv3:
                tower[-1].bias.fill_(class_bias)
    return net.eval()


def mask_channels(net: Any, fraction: float = 0.5, every: int = 2) -> int:
    """Zero ``fraction`` of the output channels of every ``every``-th Conv block (conv weight, BN gamma and beta).

    Returns the number of channels zeroed; the model keeps its shape (mask-only "pruning").
    """
    from ultralytics.nn.modules.conv import Conv

    blocks = [m for m in net.modules() if isinstance(m, Conv) and isinstance(m.bn, torch.nn.BatchNorm2d)]
    zeroed = 0
    with torch.no_grad():
        for m in blocks[::every]:
            k = int(m.conv.out_channels * fraction)
            m.conv.weight[:k] = 0
            m.bn.weight[:k] = 0
            m.bn.bias[:k] = 0
            zeroed += k
    return zeroed


def masked_copy(net: Any, fraction: float = 0.5, every: int = 2) -> tuple[Any, int]:
    out = copy.deepcopy(net)
    return out, mask_channels(out, fraction, every)


def write_scene(path: str | Path, size: int = 160) -> Path:
    """A small JPEG with coloured shapes (the detectors are untrained: any decodable image does)."""
    import cv2

    img = np.full((size, size, 3), 114, dtype=np.uint8)
    cv2.rectangle(img, (size // 8, size // 8), (size // 2, size // 2), (0, 0, 255), -1)
    cv2.circle(img, (3 * size // 4, 3 * size // 4), size // 6, (255, 0, 0), -1)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(p), img)
    return p


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_suite(
    path: str | Path,
    variants: dict[str, str | Path | tuple[str | Path, str]],
    reference: str,
    settings: dict[str, Any] | None = None,
    thresholds: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write a suite TOML; a variant is a path or (path, sha256). Paths are written as given."""
    lines = [f"reference = {toml_value(reference)}", ""]
    if settings:
        lines.append("[settings]")
        lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
        lines.append("")
    for name, spec in variants.items():
        file, sha = spec if isinstance(spec, tuple) else (spec, None)
        lines.append(f"[variants.{name}]")
        lines.append(f"path = {toml_value(str(file))}")
        if sha:
            lines.append(f"sha256 = {toml_value(sha)}")
        lines.append("")
    for name, limits in (thresholds or {}).items():
        lines.append(f"[thresholds.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in limits.items()]
        lines.append("")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines), encoding="utf-8")
    return p


def two_variant_config(settings: dict[str, Any] | None = None, thresholds: dict[str, Any] | None = None) -> Any:
    """A parsed suite config of "original" and "pruned" (paths never opened) with these settings and thresholds:
    for tests of how settings and limits are read, where no model is loaded."""
    from slimbench.config.suite import config_from_dict

    data: dict[str, Any] = {
        "reference": "original",
        "variants": {"original": {"path": "o.pt"}, "pruned": {"path": "p.pt"}},
    }
    if settings is not None:
        data["settings"] = settings
    if thresholds is not None:
        data["thresholds"] = thresholds
    return config_from_dict(data, Path("/x"), Path("/x/suite.toml"))


def copy_into(folder: Path, *files: Path) -> None:
    for f in files:
        shutil.copy(f, folder / f.name)


def run_suite(
    pytester: pytest.Pytester,
    *args: str,
    target: str = "benchmarks",
    toml: str | None = "suite.toml",
    marks: str | None = None,
    cache: bool = False,
) -> pytest.RunResult:
    """The suite in a pytester folder (see the bench_dir fixture), in process: ``--variants-file toml`` unless
    ``toml`` is None, ``-m marks`` when given, and ``-p no:cacheprovider`` (nothing written to .pytest_cache)
    unless ``cache``."""
    variants_file = ("--variants-file", toml) if toml else ()
    no_cache = () if cache else ("-p", "no:cacheprovider")
    selection = ("-m", marks) if marks else ()
    return pytester.runpytest_inprocess(target, *variants_file, *no_cache, *selection, *args)


def files_under(root: Path) -> set[str]:
    """Every file and folder below ``root``, relative to it, bytecode caches left out."""
    return {str(f.relative_to(root)) for f in root.rglob("*") if "__pycache__" not in f.parts}


def load_tool(name: str) -> Any:
    """``tools/<name>.py`` imported as a module (tools/ is a folder of scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Command line options merged over the suite config: ``--variant``, ``--reference``, ``--device`` and the rest.

Apart from the file's schema (:mod:`slimbench.config.suite`) because the rules differ: paths are relative to the
working directory, not the file, and replacing a variant's checkpoint drops the limits written for the old one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from slimbench.config.suite import Settings, SuiteConfig, Variant, assemble_config
from slimbench.config.values import (
    VARIANT_NAME,
    check_imgsz,
    parse_devices,
    parse_int_list,
    parse_precisions,
    parse_runtimes,
)
from slimbench.core.errors import SlimbenchError
from slimbench.core.files import resolve_path


@dataclass(frozen=True)
class Overrides:
    """Command line options that change a config; ``None`` / empty means keep the file's value."""

    variants: tuple[str, ...] = ()  # "NAME=PATH", in order
    reference: str | None = None
    device: str | None = None  # "cpu,cuda"
    batch: str | None = None  # "1,8"
    imgsz: int | None = None
    images: tuple[str, ...] = ()
    data: str | None = None  # --data YAML
    agreement_images: str | None = None  # --agreement-images DIR
    runtime: str | None = None  # "torch,onnxruntime"
    threads: str | None = None  # "1,4"
    precision: str | None = None  # "fp32,int8"
    calibration: str | None = None  # --calibration DIR


def parse_variant_arg(text: str) -> tuple[str, str]:
    """``"NAME=PATH"`` -> (name, path); the option is named in the error."""
    name, sep, path = text.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
        raise SlimbenchError(f"--variant {text!r}: expected NAME=PATH")
    if not VARIANT_NAME.match(name):
        raise SlimbenchError(f"--variant {text!r}: variant names are letters, digits, '_', '-', '.'")
    return name, path


def apply_overrides(cfg: SuiteConfig | None, ov: Overrides, cwd: Path | None = None) -> SuiteConfig:
    """Merge command line options over a config (or build one from ``--variant`` alone when ``cfg`` is None).

    ``--variant NAME=PATH`` adds a candidate, or replaces the checkpoint of a variant of the config and drops its
    sha256 pin and its limits: both were written for the old file, and a limit belongs to the checkpoint it was set
    for (the name is kept in :attr:`SuiteConfig.replaced`, so the run can say so). Without a config the variants of
    the command line are the whole run: no limits, figures only. Paths on the command line are relative to ``cwd``.
    """
    cwd = cwd or Path.cwd()
    parsed = [parse_variant_arg(t) for t in ov.variants]
    if cfg is None:
        if not parsed:
            raise SlimbenchError("no variants: give --variants-file PATH or --variant NAME=PATH")
        variants: dict[str, Variant] = {}
        reference = ov.reference or parsed[0][0]
        settings, thresholds, source = Settings(), {}, None
    else:
        variants = dict(cfg.variants)
        reference = ov.reference or cfg.reference
        settings, thresholds, source = cfg.settings, dict(cfg.thresholds), cfg.source
    replaced = list(dict.fromkeys(name for name, _ in parsed if cfg is not None and name in cfg.variants))
    for name, path in parsed:
        variants[name] = Variant(name, resolve_path(path, cwd), None)
    if reference not in variants:
        where = "--reference" if ov.reference else "reference"
        raise SlimbenchError(f"{where} {reference!r}: unknown variant (variants: {', '.join(variants)})")
    changes: dict[str, Any] = {}
    if ov.device is not None:
        changes["device"] = parse_devices(ov.device)
    if ov.batch is not None:
        changes["batch"] = parse_int_list(ov.batch, "--batch")
    if ov.runtime is not None:
        changes["runtime"] = parse_runtimes(ov.runtime)
    if ov.threads is not None:
        changes["threads"] = parse_int_list(ov.threads, "--threads")
    if ov.precision is not None:
        changes["precision"] = parse_precisions(ov.precision)
    if ov.imgsz is not None:
        changes["imgsz"] = check_imgsz(int(ov.imgsz), "--imgsz")
    if ov.images:
        changes["images"] = tuple(resolve_path(p, cwd) for p in ov.images)
    for key, text, option in (
        ("data", ov.data, "--data"),
        ("agreement_images", ov.agreement_images, "--agreement-images"),
        ("calibration", ov.calibration, "--calibration"),
    ):
        if text is not None:
            if not str(text).strip():
                raise SlimbenchError(f"{option}: expected a path")
            changes[key] = resolve_path(str(text).strip(), cwd)
    out = assemble_config(reference, variants, replace(settings, **changes), thresholds, source)
    if cfg is None:
        return out
    unlimited = _unlimited(out, replaced, source)
    kept = {name: t for name, t in thresholds.items() if name not in unlimited}
    return replace(out, thresholds=kept, baseline=cfg.baseline, replaced=tuple(replaced), unlimited=unlimited)


def _unlimited(cfg: SuiteConfig, replaced: list[str], source: Path | None) -> dict[str, str]:
    """Variants whose limits from the file no longer apply, and why: a replaced checkpoint loses its own limits,
    and when the reference is replaced every candidate's limits go too (each was set against the old reference)."""
    file = source.name if source else "the suite config"
    out = {name: f"checkpoint replaced on the command line; limits from {file} not applied" for name in replaced}
    if cfg.reference in replaced:
        for v in cfg.candidates:
            out.setdefault(v.name, f"reference replaced on the command line; limits from {file} not applied")
    return out

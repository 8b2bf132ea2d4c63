"""The report commands of ``slimbench``: markdown from a summary, merge a fleet's reports, profile checkpoints.

Kept apart from :mod:`slimbench.commands` (the pruning toolkit's commands): these read or write reports and time
models, they train and prune nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from slimbench.commands import _check_model
from slimbench.core.errors import SlimbenchError


def cmd_markdown(a: argparse.Namespace) -> int:
    """Print a stored run's verdicts as markdown (what the suite appends to $GITHUB_STEP_SUMMARY)."""

    from slimbench.core.files import read_json_object
    from slimbench.report.markdown import render
    from slimbench.report.summary import SCHEMA, SCHEMA_VERSION

    doc = read_json_object(a.summary, "summary")
    if doc.get("schema") != SCHEMA:
        raise SlimbenchError(f'{a.summary}: not a slimbench summary.json (no "schema": "{SCHEMA}")')
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise SlimbenchError(
            f"{a.summary}: summary schema version {doc.get('schema_version')}; this slimbench reads "
            f"{SCHEMA_VERSION} (rerun the suite to write it again)"
        )
    print(render(doc), end="")


def cmd_merge(a: argparse.Namespace) -> int:
    """``slimbench merge DIR... --out DIR``: refuse what does not merge, then write the fleet's two files."""
    import json

    from slimbench.core.files import atomic_write_bytes
    from slimbench.report.fleet_html import page
    from slimbench.report.merge import check, join, load, text_lines

    reports = load(a.dirs)
    check(reports)
    for r in reports:
        if a.out.resolve() == r.folder.resolve():
            raise SlimbenchError(f"--out {a.out}: is an input reports folder; choose another")
    outputs = [a.out / "summary.json", a.out / "report.html"]
    if a.out.exists() and not a.out.is_dir():
        raise SlimbenchError(f"--out {a.out}: not a folder")
    if any(p.exists() for p in outputs) and not a.force:
        raise SlimbenchError(f"--out {a.out}: already holds a report; pass --force to replace it")
    fleet = join(reports)
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(outputs[0], (json.dumps(fleet, indent=2, allow_nan=False) + "\n").encode("utf-8"))
    atomic_write_bytes(outputs[1], page(fleet).encode("utf-8"))
    print(f"slimbench merge: {len(reports)} report(s), {len(fleet['testbeds'])} testbed(s)")
    print("\n".join(text_lines(fleet)))
    print(f"wrote {outputs[0]} and {outputs[1]}")
    return 0


def cmd_profile(a: argparse.Namespace) -> int:
    """``slimbench profile``: every input checked first (files, runtime installed, device, image size), then each
    checkpoint profiled in turn and the table printed (the second against the first)."""
    from slimbench.config.values import check_device, check_imgsz
    from slimbench.measure.timing import available_cpus, device_available
    from slimbench.model.checkpoint import check_file
    from slimbench.report.attribution_report import entry, text_table
    from slimbench.runtimes.registry import missing_reason, runtime

    check_imgsz(a.imgsz, "--imgsz")
    device = check_device(a.device, "--device")
    paths = [a.checkpoint, *([a.candidate] if a.candidate else [])]
    for path in paths:
        check_file(path)
    why = missing_reason(a.runtime)
    if why:
        raise SlimbenchError(f"--runtime {a.runtime}: {why}")
    if runtime(a.runtime).runs_file and device != "cpu":
        raise SlimbenchError(f"--device {device}: {a.runtime}'s per-layer profile is read on the CPU only")
    if not device_available(device):
        raise SlimbenchError(f"--device {device}: not available here")
    threads = a.threads or available_cpus()
    models = [_check_model(path) for path in paths]  # every checkpoint loads before any work
    names = [p.stem for p in paths] if len({p.stem for p in paths}) == len(paths) else [str(p) for p in paths]
    records = [_profile(path, model, a, device, threads) for path, model in zip(paths, models, strict=True)]
    if len(records) == 2:
        table = entry(names[1], records[1], records[0], names[0])
    else:
        table = entry(names[0], records[0], None, None)
    print("\n".join(text_table(table, a.top)))
    return 0


def _profile(path: Path, model: Any, a: argparse.Namespace, device: str, threads: int) -> Any:
    """One checkpoint's attribution: the fused timing copy, its per-layer GFLOPs, and its ONNX export (cached) for a
    runtime of ONNX files."""
    from slimbench.core.files import cache_folder
    from slimbench.measure.attribution import attribute
    from slimbench.measure.timing import seeded_input, timing_model
    from slimbench.model.checkpoint import sha256_of
    from slimbench.model.layer_flops import layer_gflops
    from slimbench.runtimes.export import export_onnx
    from slimbench.runtimes.registry import runtime

    net = timing_model(model, device)
    onnx = None
    if runtime(a.runtime).runs_file:
        onnx = export_onnx(model, sha256_of(path), a.imgsz, cache_folder(), name=path.stem).path
    try:
        return attribute(
            a.runtime,
            net,
            seeded_input(a.batch, a.imgsz, device),
            threads,
            onnx_path=onnx,
            device=device,
            calls=a.calls,
            warmup=a.warmup,
            gflops=layer_gflops(net, a.imgsz),
        )
    except Exception as e:  # a runtime that cannot load or run the file: one line naming it
        if isinstance(e, SlimbenchError):
            raise
        msg = " ".join(str(e).split())[:300] or type(e).__name__
        raise SlimbenchError(f"{path}: {a.runtime} cannot profile it ({type(e).__name__}: {msg})") from e

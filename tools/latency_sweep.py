"""What accuracy does each latency or size cost? The bundled Network Slimming line at several points, plotted.

    python tools/latency_sweep.py fixtures/models/original.pt --targets 0.6 0.8 --shares 0.3 --out /work/sweep \
        --manifest fixtures/manifest.json --csv docs/sweep.csv

Each point is one ``make-fixtures`` build from the given (converged) original with the bundled plan and no control:
the same sparsity, recovery, threshold pruning and fine-tuning, about 19 minutes per point on 2 cores. Two kinds of
point differ only in where the per-layer sparsity shares come from:

- ``--targets R``: the latency plan for R on ONNX Runtime (``sparsity_target_latency``), which cuts the costly
  high-resolution layers hardest, down to 8 channels;
- ``--shares S``: the same share S in every layer (``sparsity_target``, no latency plan); with ``--layer-shares
  NAME=SHARE ...``, those layers take their own share (``sparsity_layer_shares``), for the sizes between two uniform
  shares (kept widths move in steps of 8: 0.7 gives 0.161x GFLOPs, 0.75 already 0.081x).

``--estimate`` prints each ``--shares`` point's GFLOPs and params ratios (the widths its targets leave, no training,
seconds) and builds nothing: pick the points before spending 20 minutes on each.

A point whose folder already holds a manifest is read, not rebuilt, so the sweep can grow across runs; ``--read DIR``
adds any other built set (a make-fixtures output). Writes the CSV and a PNG beside it: mAP50-95 before and after
fine-tuning minus each point's own original's, against the GFLOPs ratio, one line per kind and original (points
built on different originals never share a line), with the targets (-0.02, -0.05) and, with ``--manifest``, the
bundled point and its equal-budget control.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any


def plan_kind(plan: dict[str, Any]) -> tuple[str, float | None]:
    """The kind of a build's plan as the CSV and the plot name it, and its knob: ("latency", target), ("latency,
    cap C", target) or ("uniform", share); read from the manifest, so a point is named by what it was built with."""
    target = plan.get("sparsity_target_latency")
    if target is None:
        layers = "".join(f", {name}={share:g}" for name, share in plan.get("sparsity_layer_shares") or ())
        return f"uniform{layers}", plan.get("sparsity_target")
    cap = plan.get("latency_max_layer_ratio", 0.9)  # manifests before the knob: uncapped
    return ("latency" if cap == 0.9 else f"latency, cap {cap:g}"), target


def _build_key(manifest: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two builds the same point: the original (sha256) and the plan's kind and knob (a rebuild is not
    bit-identical: its files differ, its figures agree)."""
    return manifest["variants"]["original"].get("sha256"), *plan_kind(manifest.get("plan", {}))


def point(manifest: dict[str, Any]) -> dict[str, Any]:
    kind, value = plan_kind(manifest.get("plan", {}))
    v = manifest["variants"]
    o, p, f = v["original"], v["pruned"], v["finetuned"]
    return {
        "plan": kind,
        "value": value,
        "measured_latency_ratio": manifest.get("latency_plan", {}).get("measured"),
        "gflops_ratio": round(p["gflops_at_640"] / o["gflops_at_640"], 4),
        "params_ratio": round(p["params"] / o["params"], 4),
        "map50_95_pruned": round(p["map50_95"], 4),
        "map50_95_finetuned": round(f["map50_95"], 4),
        "original_map50_95": round(o["map50_95"], 4),
    }


def estimate(original: Path, shares: list[float], layers: tuple[tuple[str, float], ...]) -> None:
    """Each uniform point's size from the widths its targets leave (no training)."""
    from slimbench.model.checkpoint import load_detector
    from slimbench.pruning.fixture_plan import FixturePlan
    from slimbench.pruning.latency_sparsity import share_plan_size

    yolo, plan = load_detector(original), FixturePlan()
    for share in shares:
        size = share_plan_size(yolo, share, dict(layers), plan.round_to, plan.gflops_imgsz)
        print(plan_kind({"sparsity_target": share, "sparsity_layer_shares": layers}), size, flush=True)


def main() -> None:
    import pandas as pd

    from slimbench.pruning.fixture_plan import FixturePlan
    from slimbench.pruning.pipeline import make_fixtures

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("original", type=Path)
    p.add_argument("--targets", type=float, nargs="*", default=[], help="latency-planned points: ratio targets")
    p.add_argument("--shares", type=float, nargs="*", default=[], help="uniform points: the share of every layer")
    p.add_argument("--cap", type=float, default=None, help="latency points: at most this share of any one unit")
    p.add_argument(
        "--layer-shares", nargs="*", default=[], metavar="NAME=SHARE", help="uniform points: these layers' own share"
    )
    p.add_argument("--estimate", action="store_true", help="print the --shares points' sizes, build nothing")
    p.add_argument("--read", type=Path, nargs="*", default=[], help="more built points: folders holding a manifest")
    p.add_argument("--out", type=Path, required=True, help="one build folder per target under it")
    p.add_argument("--manifest", type=Path, default=None, help="the bundled set's manifest: its point and lines")
    p.add_argument("--csv", type=Path, default=Path("docs/sweep.csv"))
    a = p.parse_args()

    if not a.targets and not a.shares and not a.read:
        p.error("give --targets, --shares or --read")
    capped = {} if a.cap is None else {"latency_max_layer_ratio": a.cap}
    prefix = "target" if a.cap is None else f"cap{a.cap:g}_target"
    layers = tuple((n, float(v)) for n, v in (item.split("=", 1) for item in a.layer_shares))
    if a.estimate:
        estimate(a.original, a.shares, layers)
        return
    share_prefix = "share" + "".join(f"_{n}={v:g}" for n, v in layers)
    uniform = {"sparsity_target_latency": None, "sparsity_layer_shares": layers}
    points = [(prefix, t, {"sparsity_target_latency": t, **capped}) for t in a.targets] + [
        (share_prefix, s, {**uniform, "sparsity_target": s}) for s in a.shares
    ]
    folders = []
    for prefix, value, knobs in points:
        folder = a.out / f"{prefix}_{value:g}"
        if not (folder / "manifest.json").is_file():
            plan = replace(FixturePlan(), control=False, **knobs)
            make_fixtures(folder, plan, a.out / f"work_{prefix}_{value:g}", original=a.original, force=True)
            print(point(_manifest(folder)), flush=True)
        folders.append(folder)
    built = [_manifest(folder) for folder in [*folders, *a.read]]
    rows = [point(manifest) for manifest in built]
    bundled = json.loads(a.manifest.read_text()) if a.manifest else None
    if bundled is not None:  # the swept point built the same way from the same original, else a row of its own
        key = _build_key(bundled)
        same = [r for r, m in zip(rows, built, strict=True) if _build_key(m) == key]
        if same:
            same[0]["bundled"] = True
        else:
            rows.append({**point(bundled), "bundled": True})
    table = pd.DataFrame(rows).sort_values("gflops_ratio")
    a.csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.csv, index=False)
    print(table.to_string(index=False))
    plot(table, bundled, a.csv.with_suffix(".png"))
    print(f"wrote {a.csv} and {a.csv.with_suffix('.png')}")


def _manifest(folder: Path) -> dict[str, Any]:
    """A built point's manifest: a sweep folder or any make-fixtures output."""
    return json.loads((folder / "manifest.json").read_text())


def plot(table: Any, bundled: dict[str, Any] | None, path: Path) -> None:
    """mAP50-95 minus each point's own original's against the GFLOPs ratio, with the targets and the control."""
    import matplotlib.pyplot as plt

    # each point against its own original: points built on different originals share one axis, never one line
    table["ft_drop"] = table.map50_95_finetuned - table.original_map50_95
    table["pruned_drop"] = table.map50_95_pruned - table.original_map50_95
    fig, ax = plt.subplots(figsize=(9.6, 4.6))
    colors = iter(("tab:blue", "tab:orange", "tab:purple", "tab:red", "tab:brown", "tab:olive", "tab:cyan"))
    for (kind, orig), line in table.groupby(["plan", "original_map50_95"], sort=True):
        color = next(colors, "tab:gray")
        what = "uniform share" if kind == "uniform" else kind.replace("latency", "latency plan")
        what = f"{what} (original {orig:.3f})"
        ax.plot(line.gflops_ratio, line.ft_drop, "o-", color=color, label=f"{what}, fine-tuned")
        ax.plot(line.gflops_ratio, line.pruned_drop, "o:", color=color, alpha=0.5, label=f"{what}, before")
    for _, r in table.iterrows():
        if r.measured_latency_ratio == r.measured_latency_ratio and r.measured_latency_ratio is not None:
            ax.annotate(f"lat {r.measured_latency_ratio:.2f}", (r.gflops_ratio, r.ft_drop), fontsize=8)
        if r.get("bundled") is True:
            ax.annotate("bundled", (r.gflops_ratio, r.ft_drop), xytext=(8, -4), textcoords="offset points", fontsize=8)
    ax.axhline(0.0, color="k", ls="--", lw=1, label="its converged original")
    ax.axhline(-0.02, color="k", ls=":", lw=1, label="target after fine-tuning (-0.02)")
    ax.axhline(-0.05, color="gray", ls=":", lw=1, label="target before fine-tuning (-0.05)")
    if bundled is not None:
        control, orig = bundled.get("control", {}), bundled["variants"]["original"]["map50_95"]
        if control.get("map50_95") is not None:
            ax.axhline(control["map50_95"] - orig, color="tab:green", ls="--", lw=1, label="equal-budget control")
    ax.set_xlabel("GFLOPs ratio to the original (640 px)")
    ax.margins(x=0.08)
    ax.set_ylabel("mAP50-95 minus its original's (synthetic val, 256 px)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

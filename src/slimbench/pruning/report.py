"""The table ``slimbench prune`` prints: channels per layer before/after, params and GFLOPs."""

from __future__ import annotations

from typing import Any

import pandas as pd
from torch import nn

from slimbench.model.static_metrics import count_params, gflops
from slimbench.pruning.structural import PruneResult


def prune_table(
    before: nn.Module, after: nn.Module, result: PruneResult, imgsz: int = 640, verbose: bool = False
) -> str:
    """Per-layer output channels (changed layers unless ``verbose``) and a totals block. GFLOPs = 2 x MACs."""
    rows = [
        {"layer": name, "before": c, "after": result.channels_after.get(name, 0)}
        for name, c in result.channels_before.items()
    ]
    df = pd.DataFrame(rows)
    df["removed %"] = (100 * (1 - df["after"] / df["before"])).round(1)
    shown = df if verbose else df[df["before"] != df["after"]]
    g0, g1 = gflops(before, imgsz), gflops(after, imgsz)
    p0, p1 = count_params(before), count_params(after)
    figures = [
        ("prunable channels", result.prunable_channels_before, result.prunable_channels_after, "{:,}"),
        ("parameters", p0, p1, "{:,}"),
        (f"GFLOPs @ {imgsz}", g0, g1, "{:,.3f}"),
    ]
    totals = pd.DataFrame(
        [
            {
                "metric": m,
                "before": f.format(x0),
                "after": f.format(x1),
                "after / before": round(x1 / x0, 3) if x0 else 0,
            }
            for m, x0, x1, f in figures
        ]
    )
    rule = (
        f"threshold {result.threshold:.4g} x layer max |gamma|"
        if hasattr(result, "threshold")
        else f"ratio {result.ratio} ({'global' if result.global_pruning else 'per layer'})"
    )
    header = (
        f"pruning: {rule}, round_to {result.round_to}; {result.channels_removed_pct:.1f}% of prunable channels removed"
    )
    kept = _kept_summary(result)
    with pd.option_context("display.max_rows", None, "display.width", 120):
        return "\n".join([header, shown.to_string(index=False), "", totals.to_string(index=False), *kept])


def _kept_summary(result: PruneResult) -> list[str]:
    """One line per reason a conv kept its output channels, with how many convs it covers."""
    counts: dict[str, int] = {}
    for why in result.kept_reasons.values():
        counts[why] = counts.get(why, 0) + 1
    return ["", "kept unpruned:"] + [f"  {n:3d} conv(s): {why}" for why, n in counts.items()] if counts else []


def latency_table_text(result: Any, verbose: bool = False) -> str:
    """What ``prune --target-latency`` prints: the per-unit plan (changed units unless ``verbose``), each round's
    planned-for, predicted and measured ratio, and the totals."""
    rows = [
        {"unit": name, "width": w, "kept": k, "removed %": round(100 * (1 - k / w), 1)}
        for name, (w, k) in result.plan.items()
        if verbose or k != w
    ]
    plan = pd.DataFrame(rows).to_string(index=False) if rows else "(no unit changed)"
    rounds = pd.DataFrame(result.rounds).round(3)
    rounds.insert(0, "round", range(1, len(rounds) + 1))
    rounds["kept"] = ["<-" if i == result.chosen % len(rounds) else "" for i in range(len(rounds))]
    p0, p1 = result.params_before, result.params_after
    return "\n".join(
        [
            f"latency plan on {result.runtime} (target {result.target:g} x the original's forward):",
            plan,
            "",
            "rounds (ratio planned for, predicted by the layer latency model, measured in interleaved pairs):",
            rounds.to_string(index=False),
            "",
            f"measured {result.measured:.3f} (target {result.target:g}); parameters {p0:,} -> {p1:,} "
            f"({p1 / max(p0, 1):.3f}x); layer latencies: {result.table_measured} measured now, table "
            f"{result.table_path}",
        ]
    )

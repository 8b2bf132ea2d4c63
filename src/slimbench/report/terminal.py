"""The suite's terminal summary: what the run measured, in a few plain-text tables next to pytest-benchmark's.

Written by ``slimbench.plugin``'s ``pytest_terminal_summary`` from the session's recorded figures, so the terminal
repeats the tests' numbers and never measures anything itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from slimbench.core.undefined import shown

if TYPE_CHECKING:
    from slimbench.bench.figures import VariantFigures
    from slimbench.bench.session import SuiteSession


def static_table(static: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The terminal's static figures, one column per stored size-and-structure metric, as its declaration labels
    and formats it (``slimbench.core.metric_specs``)."""
    from slimbench.bench.checks import STATIC_SOURCE
    from slimbench.core.metric_specs import METRICS

    specs = [m for m in METRICS if m.table == "size" and m.tolerance is not None]
    cells = [[m.fmt.format(st[STATIC_SOURCE.get(m.key, m.key)]) for m in specs] for _, st in static]
    heads = [f"{m.label} ({m.unit})" if m.unit in ("MB", "%") else m.label for m in specs]
    widths = [max(len(h), *(len(row[i]) for row in cells)) + 2 for i, h in enumerate(heads)]
    name_w = max(16, *(len(n) + 2 for n, _ in static))
    out = ["variant".ljust(name_w) + "".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    for (name, _), row in zip(static, cells, strict=True):
        out.append(name.ljust(name_w) + "".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return out


def summary_lines(session: SuiteSession) -> list[str]:
    """A compact plain-text table of what this run measured (static figures, speed ratios, agreement)."""
    lines: list[str] = []
    figures, settings, reference = session.figures, session.settings, session.config.reference
    static = [(n, f.static) for n, f in figures.items() if f.static is not None]
    if static:
        imgsz = settings.imgsz
        lines.append(f"static figures (GFLOPs at {imgsz}x{imgsz}, batch 1; MB = 1e6 bytes)")
        lines += static_table(static)
    ratios = [(n, k, r) for n, f in figures.items() for k, r in f.speed_ratio.items()]
    if ratios:
        lines.append(f"speed ratio vs {reference} (median of interleaved pairs [95% interval]; < 1 is faster)")
        for name, key, r in ratios:
            iv = r.interval
            within = iv.text("{:.3f}") if iv.defined else "(no interval)"
            close = ", close" if r.decision == "close" else ""
            lines.append(f"{name:<16}{key:<18}{r.median:>7.3f} {within}  ({r.speedup:.2f}x, {r.pairs} pairs{close})")
    agreements = [(n, k, a) for n, f in figures.items() for k, a in f.agreement.items()]
    if agreements:
        lines.append(f"detections vs {reference} (conf {settings.conf}, match IoU {settings.match_iou})")
        for name, image, a in agreements:
            lines.append(
                f"{name:<16}{image:<18}{a.candidate_count:>5} vs {a.reference_count:<5} "
                f"recall {shown(a.shown('recall'), '{:.3f}')}  precision {shown(a.shown('precision'), '{:.3f}')}"
            )
    lines += deployment_lines(figures)
    if session.accuracy_if_used is not None:
        lines += session.accuracy_if_used.summary_lines({n: f.accuracy for n, f in figures.items()})
    if session.deploy_if_used is not None:
        lines += session.deploy_if_used.summary_lines()
    from slimbench.report.attribution_report import entries, terminal_lines

    lines += terminal_lines(entries(figures, reference))
    return lines


def deployment_lines(figures: Mapping[str, VariantFigures]) -> list[str]:
    """Latency percentiles and FPS per runtime, peak memory, ONNX size and parity, per variant."""
    lines: list[str] = []
    timed = [(n, k, t) for n, f in figures.items() for k, t in f.forward.items()]
    if timed:
        lines.append("latency per runtime (benchmark rounds; ort = ONNX Runtime on the ONNX export)")
        lines.append(f"{'variant':<16}{'key':<18}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'FPS':>9}{'rounds':>8}")
        for name, key, t in timed:
            lines.append(
                f"{name:<16}{key:<18}{t['median_s'] * 1e3:>9.2f}{t.get('p90_s', float('nan')) * 1e3:>9.2f}"
                f"{t.get('p99_s', float('nan')) * 1e3:>9.2f}{t.get('fps', float('nan')):>9.1f}{t['rounds']:>8}"
            )
    mem = [(n, k, m) for n, f in figures.items() for k, m in f.memory.items()]
    if mem:
        lines.append("peak memory of inference (a fresh process each; MB = 1e6 bytes)")
        for name, key, m in mem:
            cuda = m.get("cuda_max_allocated_mb")
            lines.append(
                f"{name:<16}{key:<18}peak RSS {m['peak_rss_mb']:>7.0f} MB, inference {m['inference_mb']:>6.0f} MB"
                + (f", CUDA max allocated {cuda:.0f} MB" if cuda is not None else "")
            )
    dep = [(n, f.deployment, f.parity) for n, f in figures.items()]
    if any(d or p for _, d, p in dep):
        lines.append("ONNX export and parity with the checkpoint")
        for name, d, p in dep:
            if "export_error" in d:
                lines.append(f"{name:<16}{d['export_error']}")
            elif "onnx_size_mb" in d:
                parity = ""
                if p:
                    same = all(a["identical"] for a in p["images"].values())
                    parity = (
                        f", max abs diff {p['max_abs_diff']:.2g} ({'ok' if p['ok'] else 'FAILED'}), "
                        f"detections {'identical' if same else 'DIFFER'}"
                    )
                cached = "cached" if not d.get("export_built") else f"exported in {d['export_seconds']:.1f} s"
                lines.append(f"{name:<16}ONNX {d['onnx_size_mb']:.2f} MB ({cached}){parity}")
    return lines

"""The words of the HTML report's slimbench section: what was compared, under which settings, and what each figure
means; built from the run's environment (``report.summary.environment``) so the text says this run's values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slimbench.bench.session import SuiteSession


def ort_version() -> str:
    """ONNX Runtime's installed version, for the report's method text."""
    from slimbench.core.versions import package_version

    return package_version("onnxruntime") or "(not installed)"


def oversubscribed_note(env: dict[str, Any]) -> str:
    """``"; WARNING: 64 > 2 CPUs available: ..."`` when a thread count exceeds the CPUs, else ""."""
    over = env.get("threads_oversubscribed") or []
    if not over:
        return ""
    counts = ", ".join(map(str, over))
    return f"; WARNING: {counts} > {env['available_cpus']} CPUs available: those timings measure oversubscription"


def intro(s: SuiteSession, e: dict[str, Any]) -> list[str]:
    """The section's opening paragraphs: the reference, settings, limits, and how the figures are defined."""
    lines = [
        f"Reference: {s.config.reference}. imgsz {e['imgsz']}, batches {', '.join(map(str, e['batches']))}, "
        f"CPU threads {', '.join(map(str, e['threads']))} (of {e['available_cpus']} available"
        f"{oversubscribed_note(e)}), "
        f"devices {', '.join(e['devices'])}; detections at conf {e['conf']}, NMS IoU {e['iou']}, agreement at "
        f"IoU {e['match_iou']} with the reference's boxes. Thresholds: {e['thresholds_file']}; "
        f"baseline: {e['baseline_file']}.",
        "Sizes in MB (1e6 bytes); GFLOPs = 2 x MACs for one image; latency is the forward benchmark's median "
        "(fused FP32 copy, torch.inference_mode); speed ratio = median of interleaved (variant / reference) "
        "pairs [its 95% interval, from order statistics], the figure the speed gate decides on: pass when the whole "
        "interval is under the limit, close when it straddles the limit after the most pairs or reaches within 5% of "
        "it (< 1 is faster); speedup = 1 / speed ratio, measured where the "
        "speed ratio is. summary.json/csv also keep speedup_medians = reference median / variant median of two "
        "benchmarks run minutes apart (not paired, so drift between them weighs on it). "
        "Red cells broke a limit, the baseline or a stored timing.",
    ]
    if s.smoke:
        lines.append("Smoke mode: benchmarks disabled and speed ratios from a few pairs; timings are not figures.")
    return lines


def deployment_intro() -> list[str]:
    """The deployment block's paragraph: what each runtime runs and how latency and memory are measured."""
    return [
        "torch: the fused FP32 checkpoint in eager mode; ort: its ONNX export (ultralytics' exporter, dynamic "
        f"batch, cached by checkpoint sha256) in ONNX Runtime {ort_version()}, intra-op threads as stated per "
        "row (t = threads, the same count torch runs with), thread pools not spinning between runs. Latency "
        "percentiles from pytest-benchmark's raw rounds; FPS = batch / median. "
        "Peak RSS: the peak resident memory of a fresh process that loaded the model and ran inference at that "
        "batch; inference memory: that peak minus the resident memory after loading, less library code paged in "
        "meanwhile. Model file: the checkpoint for torch, the ONNX file (FP32) for ort.",
    ]

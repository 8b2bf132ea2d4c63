"""The suite's checks as library calls: measure (through the session's caches), record, judge.

Each function returns the broken limits of one check, one line each, for ``SuiteSession.gate``; a check that
cannot run in this run skips with its reason, a measurement that failed fails with one line. A test in
``benchmarks/`` is then one call and an assert, so a user's renamed or reorganised copy of the suite measures and
judges (and reports) exactly the same. Limits, formats and labels come from ``slimbench.core.metric_specs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from slimbench.core.errors import SlimbenchError

if TYPE_CHECKING:
    from slimbench.bench.session import SuiteSession
    from slimbench.measure.paired_gate import PairSchedule
    from slimbench.measure.timing import SpeedRatio

T = TypeVar("T")


def skip(reason: str) -> NoReturn:
    import pytest

    pytest.skip(reason)


def fail(message: str) -> NoReturn:
    import pytest

    pytest.fail(message, pytrace=False)


def measured(fn: Callable[[], T]) -> T:
    """``fn()``; a missing runtime provider or device skips, a SlimbenchError (a failed export, say) fails in one
    line, so the other variants still run."""
    from slimbench.runtimes.registry import UNAVAILABLE

    try:
        return fn()
    except UNAVAILABLE as e:
        skip(str(e))
    except SlimbenchError as e:
        fail(str(e))


# ---------------------------------------------------------------- static figures

STATIC_SOURCE = {"zeroed_channels": "total_zeroed_channels"}
"""Metric -> key of ``SuiteSession.static`` where the names differ."""


def static(session: SuiteSession, name: str, metrics: tuple[str, ...]) -> list[str]:
    """Static figures (size, params, GFLOPs, channels), deterministic, judged exactly against the limits."""
    st, ref = session.static(name), session.static(session.reference.name)
    ref_name = session.reference.name
    unit = f"at {st['imgsz']}x{st['imgsz']}, batch 1"
    worst = ", ".join(f"{k} {n}" for k, n in sorted(st["zeroed_channels"].items(), key=lambda kv: -kv[1])[:3])
    notes = {
        "file_size_mb": f"as stored, {st['stored_dtype']}",
        "size_ratio": f"FP16-normalised {st['normalized_size_mb']:.2f} MB vs {ref['normalized_size_mb']:.2f} MB "
        f"of {ref_name}",
        "params_ratio": f"{st['params']:,} vs {ref['params']:,} of {ref_name}",
        "gflops": unit,
        "gflops_ratio": f"{st['gflops']:.3f} vs {ref['gflops']:.3f} GFLOPs of {ref_name}, {unit}",
        "channels_removed_pct": f"{st['prunable_channels']:,} prunable conv output channels vs "
        f"{ref['prunable_channels']:,} of {ref_name}",
        "zeroed_channels": f"all-zero output channels: mask-only pruning, nothing removed; e.g. {worst}",
    }
    return [
        line for m in metrics for line in session.judge(name, m, st[STATIC_SOURCE.get(m, m)], note=notes.get(m, ""))
    ]


# ---------------------------------------------------------------- detections and accuracy


def detections(session: SuiteSession, name: str, image: str) -> list[str]:
    """Detections on a sample image, recorded; a candidate's judged against the reference's on the same image."""
    from slimbench.model.detections import agreement

    s, ref_name = session.settings, session.reference.name
    names = dict(session.model(name).names)
    dets = session.detections(name, image)
    session.figures[name].detections[image] = {**dets.as_dict(names), "conf": s.conf, "iou": s.iou}
    if name == ref_name:
        return []
    ref_names = dict(session.model(ref_name).names)
    if names != ref_names:
        problem = f"{name}: class names {names} differ from {ref_name}'s {ref_names}"
        return session.verdict(name, "class_names", [problem], image)
    agr = agreement(session.detections(ref_name, image), dets, s.match_iou)
    session.figures[name].agreement[image] = agr
    who = f"{name} on {image}"
    counts = f"{agr.candidate_count} vs {agr.reference_count} detections of {ref_name}, conf {s.conf}"
    found = f"{agr.matched} of {agr.reference_count} {ref_name} boxes found, same class, IoU >= {s.match_iou}"
    kept = f"{agr.matched} of {agr.candidate_count} boxes also in {ref_name}"
    kw: dict[str, Any] = {"cell": image, "who": who}  # an undefined figure (0 of 0) fails a limit with its reason
    out = session.judge(name, "count_ratio", agr.count_ratio, note=counts, undefined=agr.undefined("count_ratio"), **kw)
    out += session.judge(name, "agreement_recall", agr.recall, note=found, undefined=agr.undefined("recall"), **kw)
    out += session.judge(
        name, "agreement_precision", agr.precision, note=kept, undefined=agr.undefined("precision"), **kw
    )
    return out


def dataset_map(session: SuiteSession, name: str) -> list[str]:
    """mAP of the variant on the dataset, recorded; a candidate's drop versus the reference judged, and its
    NMS-free drop too where both have a one-to-one head (YOLO26)."""
    reason = session.map_unsupported()
    if reason:
        skip(reason)
    try:
        figs, ref = session.map_metrics(name), session.map_metrics(session.reference.name)
    except SlimbenchError as e:  # the default dataset could not be generated, say: one line, no traceback
        fail(str(e))
    from slimbench.core.undefined import NA_NO_LABELS, NA_NO_PREDICTIONS

    for key in ("map50", "map50_95", "predictions", "labels", "data", "val_images", "val_imgsz", "device", "seconds"):
        session.figures[name].accuracy[key] = figs[key]
    for key, na in (("precision", NA_NO_PREDICTIONS), ("recall", NA_NO_LABELS)):  # undefined only at 0 of 0
        session.figures[name].accuracy[key] = na if figs[key] is None else figs[key]
    for key in ("map50_nms_free", "map50_95_nms_free"):  # a one-to-one (NMS-free) head's, where it has one
        if key in figs:
            session.figures[name].accuracy[key] = figs[key]
    if name == session.reference.name:
        return []
    drop = ref["map50_95"] - figs["map50_95"]
    session.figures[name].accuracy["map50_95_drop"] = drop
    free, ref_free = figs.get("map50_95_nms_free"), ref.get("map50_95_nms_free")
    both_free = free is not None and ref_free is not None
    if both_free:
        session.figures[name].accuracy["map50_95_nms_free_drop"] = ref_free - free
    where = f"{figs['data']}, {figs['val_images']} images at {figs['val_imgsz']}px"
    if session.smoke:
        skip(f"smoke mode: mAP50-95 {figs['map50_95']:.3f} on {where}, not gated")
    note = f"{figs['map50_95']:.3f} vs {ref['map50_95']:.3f} of {session.reference.name} on {where}"
    broken = session.judge(name, "map50_95_drop", drop, note=note)
    if both_free:  # unmeasurable.py stops the run at start where a limit is set and a head lacks it
        note = f"{free:.3f} vs {ref_free:.3f} of {session.reference.name}, one-to-one heads without NMS, on {where}"
        broken += session.judge(name, "map50_95_nms_free_drop", ref_free - free, note=note)
    return broken


def dataset_agreement(session: SuiteSession, name: str) -> list[str]:
    """mAP50 of a candidate on the agreement images with the reference's boxes as truth, recorded and judged."""
    from slimbench.core.undefined import shown

    if not session.accuracy.agreement_images():
        skip("no agreement images (--agreement-images DIR, settings.agreement_images or settings.images)")
    try:
        score = session.agreement_score(name)
    except SlimbenchError as e:  # an image in the folder does not decode, say
        fail(str(e))
    for key in ("map50", "recall", "precision"):  # an undefined figure is recorded as its reason, "n/a (...)"
        session.figures[name].accuracy[f"agreement_{key}"] = score.shown(key)
    session.figures[name].accuracy["agreement_images"] = score.images
    session.figures[name].accuracy["agreement_reference_boxes"] = score.reference_boxes
    s = session.settings
    note = (
        f"{session.reference.name}'s {score.reference_boxes} boxes at conf {s.conf} as truth, {score.images} images "
        f"at {s.imgsz}px; recall {shown(score.shown('recall'), '{:.3f}')}, "
        f"precision {shown(score.shown('precision'), '{:.3f}')}"
    )
    return session.judge(name, "agreement_map50", score.map50, note=note, undefined=score.undefined("map50"))


# ---------------------------------------------------------------- speed and memory

SPEED_RATIO_METRICS = {"torch": "speed_ratio", "onnxruntime": "ort_speed_ratio"}
"""Runtime -> its speed-ratio metric (pruning gains differ by runtime, hence one limit each)."""


def speed_ratio(session: SuiteSession, name: str, device: str, batch: int, threads: int, runtime: str) -> list[str]:
    """Candidate time / reference time in interleaved pairs, recorded with its 95% interval; judged on the interval
    (``measure.paired_gate``): more pairs only while it straddles the limit, "close" when it still does at the cap."""
    from slimbench.core.metric_specs import SPECS
    from slimbench.measure.paired_gate import describe, gated_ratio

    metric = SPEED_RATIO_METRICS.get(runtime)
    if metric is None:
        skip(f"no speed-ratio limit for {runtime} (its cells are in the deployment matrix, marker matrix)")
    limit_key = SPECS[metric].limits[0].key
    limit = getattr(session.limits(name), limit_key)
    if limit is None:
        skip(f"{name}: no {limit_key} in the config")
    ref_name = session.reference.name
    ref_fn = measured(lambda: session.runtime_callable(ref_name, runtime, device, batch, threads))
    cand_fn = measured(lambda: session.runtime_callable(name, runtime, device, batch, threads))
    result = gated_ratio(_pair_sampler(ref_fn, cand_fn), None if session.smoke else limit, pair_schedule(session))
    key = session.timing_key(device, batch, runtime, threads)
    session.figures[name].speed_ratio[key] = result
    if session.smoke:
        skip(f"smoke mode: speed ratio {result.median:.3f} from {result.pairs} pairs, not gated")
    where = f"{device}, batch {batch}, {threads} threads, {session.settings.imgsz}px"
    where += ", onnxruntime" if runtime == "onnxruntime" else ""
    note = f"{describe(result)}; vs {ref_name}, {result.speedup:.2f}x speedup"
    label = f"speed ratio ({where})"
    return session.judge(name, metric, result.median, cell=key, label=label, note=note, decision=result.decision)


def pair_schedule(session: SuiteSession) -> PairSchedule:
    """The speed gate's pair counts from the settings: ``speed_pairs`` first, up to ``speed_pairs_max``."""
    from slimbench.measure.paired_gate import PairSchedule

    return PairSchedule(session.settings.speed_pairs, session.settings.speed_pairs_max)


def _pair_sampler(ref_fn: Callable[[], Any], cand_fn: Callable[[], Any]) -> Callable[[int], SpeedRatio]:
    """``n`` -> n more interleaved pairs, the order inside a pair alternating across batches as within one."""
    from slimbench.measure.timing import interleaved_ratio

    taken = 0

    def sample(n: int) -> SpeedRatio:
        nonlocal taken
        result = interleaved_ratio(ref_fn, cand_fn, n, start=taken)
        taken += n
        return result

    return sample


def cell_vs_torch(
    session: SuiteSession, name: str, runtime: str, precision: str, device: str, batch: int, threads: int
) -> dict[str, Any]:
    """A matrix cell against the reference in torch FP32, timed in interleaved pairs, recorded: the whole gain a user
    gets (pruning, runtime and precision together). Side by side, so drift and whatever else runs on the machine
    weigh on both; medians of separate benchmarks minutes apart do not compare (the same torch reference read 96 ms
    in one run and 188 ms in another). Reported, not gated: the figure depends on the CPU's INT8 instructions."""
    from slimbench.bench.matrix import cell_key
    from slimbench.measure.timing import interleaved_ratio

    ref_name = session.reference.name
    ref_fn = measured(lambda: session.runtime_callable(ref_name, "torch", device, batch, threads))
    cand_fn = measured(lambda: session.deploy.callable(name, runtime, precision, device, batch, threads))
    figures = interleaved_ratio(ref_fn, cand_fn, session.settings.speed_pairs).as_dict()  # with its 95% interval
    figures.update(runtime=runtime, precision=precision, device=device, batch=batch, threads=threads)
    session.figures[name].matrix_vs_torch[cell_key(runtime, precision, device, batch, threads)] = figures
    return figures


def peak_memory(session: SuiteSession, name: str, device: str, runtime: str, batch: int, threads: int) -> list[str]:
    """Peak memory of inference in a fresh process, recorded; a candidate's ratio to the reference's judged."""
    from slimbench.measure.memory import memory_ratio

    if not session.settings.memory:
        skip("settings.memory = false")
    if runtime == "openvino":
        skip("peak memory is measured for torch and onnxruntime only")
    if runtime == "onnxruntime" and device != "cpu":
        from slimbench.runtimes.onnx_runtime import provider_for

        provider, why = provider_for(device)
        if provider is None:
            skip(why)
    figs = measured(lambda: session.memory(name, runtime, batch, device, threads))
    key = session.timing_key(device, batch, runtime, threads)
    session.figures[name].memory[key] = figs
    ref_name = session.reference.name
    if name == ref_name or session.limits(name).max_memory_ratio is None:
        return []
    ref = measured(lambda: session.memory(ref_name, runtime, batch, device, threads))
    ratio = memory_ratio(figs, ref)
    session.figures[name].memory_ratio[key] = ratio
    label = f"memory ratio ({runtime}, {device}, batch {batch}, {threads} threads)"
    note = f"{ratio['unit']} {ratio['candidate']:.0f} vs {ratio['reference']:.0f} MB of {ref_name}, same run"
    return session.judge(name, "memory_ratio", ratio["ratio"], cell=key, label=label, note=note)


def attribution(session: SuiteSession, name: str, device: str, runtime: str) -> list[str]:
    """Where the forward time goes: the variant's time per layer in ``runtime`` at batch 1, on the run's first thread
    count, recorded (measure.attribution); reported beside the reference's, never gated."""
    from slimbench.measure.attribution import PROFILED_CALLS, attribute
    from slimbench.runtimes.registry import runtime as runtime_named

    s = session.settings
    if not s.attribution:
        skip("settings.attribution = false")
    runs_file = runtime_named(runtime).runs_file
    if runs_file and device != "cpu":
        skip(f"{runtime}: per-layer profiles are read on the CPU only")
    batch, threads = 1, session.use_threads(s.threads[0])
    beside = measured(lambda: session.runtime_callable(name, runtime, device, batch, threads)) if runs_file else None
    record = measured(
        lambda: attribute(
            runtime,
            session.timing_net(name, device),
            session.timing_input(batch, device),
            threads,
            onnx_path=session.onnx(name).path if runs_file else None,
            device=device,
            calls=1 if session.smoke else PROFILED_CALLS,
            warmup=s.warmup,
            beside=beside,
            gflops=session.store.layer_gflops(name),
        )
    )
    session.figures[name].attribution[session.timing_key(device, batch, runtime, threads)] = record
    return []


# ---------------------------------------------------------------- deployment


def onnx_parity(session: SuiteSession, name: str) -> list[str]:
    """The ONNX export's raw outputs and detections against the checkpoint's (settings.parity_atol / rtol)."""
    from slimbench.runtimes.registry import missing_reason

    if "onnxruntime" not in session.settings.runtime:
        skip("onnxruntime not in settings.runtime / --runtime")
    why = missing_reason("onnxruntime")
    if why:
        skip(why)
    exported = measured(lambda: session.onnx(name))
    figs = measured(lambda: session.parity(name))
    session.figures[name].deployment["onnx_size_mb"] = exported.size_mb
    problems = []
    if not figs["ok"]:
        shape = "" if figs["shape"] else " (output shapes differ)"
        problems.append(
            f"{name}: ONNX output differs from the checkpoint's: max abs diff {figs['max_abs_diff']:.3g} "
            f"> atol {figs['atol']:g} + rtol {figs['rtol']:g} x |torch|{shape} (batch {figs['batch']})"
        )
    for image, agr in figs["images"].items():
        if not agr["identical"]:
            problems.append(
                f"{name} on {image}: ONNX detections differ from the checkpoint's: {agr['matched']} of "
                f"{agr['reference_count']} boxes kept, {agr['candidate_count']} found (same class, IoU >= "
                f"{agr['iou_threshold']})"
            )
    return session.verdict(name, "onnx_parity", problems)


def baseline(session: SuiteSession, name: str) -> list[str]:
    """Every figure that is not a timing against the stored baseline, within its tolerances (bench.baseline_check)."""
    from slimbench.bench.baseline_check import check_variant

    gate = session.baseline
    if gate is None:
        skip("no stored baseline: the --variant checkpoints alone (no suite config) give figures only")
    elif session.config.is_replaced(name) and not gate.update:
        skip(f"checkpoint replaced on the command line: the baseline {gate.path} was stored for another file")
    outcome = check_variant(session, name)
    if outcome.not_run:  # no baseline file yet, none required: not run (counted apart), with how to create it
        skip(outcome.not_run)
    return session.verdict(name, "baseline", [outcome.failure] if outcome.failure else [])


# ---------------------------------------------------------------- forward benchmarks (timed by pytest-benchmark)


def forward_info(session: SuiteSession, name: str, runtime: str, device: str, batch: int, threads: int) -> dict:
    """The forward benchmark's extra_info: the cell, the variant's shape figures and the dtype timed."""
    st, v = session.static(name), session.config.variants[name]
    info = {
        "variant": name,
        "role": v.role,
        "runtime": runtime,
        "device": device,
        "batch": batch,
        "threads": threads,
        "imgsz": session.settings.imgsz,
        "params": st["params"],
        "gflops": st["gflops"],
        "gflops_unit": st["gflops_unit"],
        "dtype": session.timing_dtype(device) if runtime == "torch" else "float32",
        "stored_dtype": st["stored_dtype"],
        "fused": True,
    }
    if runtime == "onnxruntime":
        from slimbench.runtimes.onnx_runtime import provider_for

        info["provider"] = provider_for(device)[1]
    return info


def record_forward(session: SuiteSession, name: str, key: str, rounds: list[float], batch: int, runtime: str) -> dict:
    """Percentiles, FPS and the speedup from the reference's median (timed first) of a forward benchmark, recorded.
    Two separate benchmarks' medians, not paired: the report's speedup is 1 / the paired speed ratio."""
    from slimbench.measure.timing import latency_figures

    timed = latency_figures(rounds, batch)
    ref = session.figures[session.reference.name].forward.get(key)
    if name == session.reference.name:
        timed["speedup_from_medians"] = 1.0
    elif ref and timed["median_s"] > 0:  # the reference is parametrised first, so it has been timed by now
        timed["speedup_from_medians"] = ref["median_s"] / timed["median_s"]
    timed["runtime"] = runtime
    session.figures[name].forward[key] = timed
    return timed

"""The run's outputs as a pytest plugin object: default report paths, the HTML report's slimbench section and
extras, summary.json/csv, and the baseline update. Registered by ``slimbench.plugin`` once the suite's inputs are
valid, so a bad-input run writes nothing.

Defaults are set here, not in the ``run`` script, so ``pytest benchmarks/`` from a user's own repository writes
the same files as ``./run bench``: with the suite active and no ``--html`` / ``--benchmark-json`` of the user's,

- ``reports/report.html`` (pytest-html, self-contained), ``reports/benchmark.json`` (pytest-benchmark's format;
  written by pytest-benchmark only when benchmarks ran, so not in smoke mode),
- ``reports/summary.json`` and ``reports/summary.csv`` (written here, atomically).

``--slimbench-reports DIR`` moves them; ``none`` writes none of them. The folder holds the latest run: every run
replaces these files (that is what a report folder is for; timing history lives in ``--benchmark-autosave``
storage). Give a fresh folder per run to keep old reports. The baseline file is never written without
``--update-baseline``. Outside the folder (:mod:`slimbench.report.ci_outputs`): the markdown verdicts, appended to
``$GITHUB_STEP_SUMMARY`` when it is set and written to ``--slimbench-markdown PATH``, and the dashboard JSON of
``--slimbench-github-benchmark PATH``.

Hook order, checked against pytest-benchmark 5.3 and pytest-html 4.2: pytest-benchmark writes its JSON and finds
``--benchmark-compare-fail`` regressions in a ``pytest_sessionfinish`` wrapper (before any plain impl);
this plugin's plain ``pytest_sessionfinish`` then builds the summary and the HTML section; pytest-html's
``trylast`` ``pytest_sessionfinish`` calls ``pytest_html_results_summary`` (which hands it that section) and
writes the report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from slimbench.bench import benchmark_bridge as bench_bridge
from slimbench.core.files import resolve_path, shown_path
from slimbench.report import ci_outputs
from slimbench.report.history import RunHistory
from slimbench.report.history_report import section as history_section
from slimbench.report.history_report import step_lines
from slimbench.report.intro import deployment_intro, intro, oversubscribed_note
from slimbench.report.options import DEFAULT_HISTORY, DEFAULT_REPORTS, history_limit

if TYPE_CHECKING:
    from slimbench.bench.baseline_gate import BaselineGate
    from slimbench.bench.session import SuiteSession
    from slimbench.config.suite import SuiteConfig
    from slimbench.core.timing_key import TimingKey
    from slimbench.report.facts import RunFacts

PLUGIN_NAME = "slimbench-outputs"
CAPTIONS = {
    "size": "File size as stored and FP16-normalised size (MB = 1e6 bytes)",
    "params": "Parameter count",
    "gflops": "GFLOPs (2 x MACs) of one image at the suite's imgsz",
    "latency": "Forward latency distribution: pytest-benchmark's rounds per variant, device and batch",
    "fps": "Images per second from the forward benchmark's median",
    "speedup": "Speedup vs the reference per runtime, device, batch and threads: 1 / the paired speed ratio (the gated "
    "figure) where measured, else from the benchmarks' medians (not paired); each group says which",
}


def open_baseline(config: pytest.Config, cfg: SuiteConfig) -> BaselineGate:
    """The run's baseline gate from --baseline / --update-baseline and the suite config (reads and validates)."""
    from slimbench.bench.baseline_gate import open_gate

    return open_gate(
        config.getoption("baseline", None),
        # the despite-failures flag asks for an update too: alone it must not silently write nothing
        bool(config.getoption("update_baseline", False) or config.getoption("update_baseline_despite_failures", False)),
        cfg.source,
        cfg.baseline,
        Path(config.rootpath),
        Path(config.invocation_params.dir),
        os.environ,
        _suite_dir(config),
    )


def _suite_dir(config: pytest.Config) -> str:
    """The suite's folder (its conftest says ``slimbench_suite = True``) as the user would type it after ``pytest``:
    relative to the working directory when inside it; ``benchmarks`` when no suite conftest is loaded."""
    cwd = Path(config.invocation_params.dir).resolve()
    for plugin in config.pluginmanager.get_plugins():
        try:
            suite, file = getattr(plugin, "slimbench_suite", False), getattr(plugin, "__file__", None)
        except Exception:  # noqa: BLE001 - some plugin objects raise on attribute access; not ours
            continue
        if suite is True and file:
            folder = Path(file).resolve().parent
            return folder.relative_to(cwd).as_posix() if folder.is_relative_to(cwd) else folder.as_posix()
    return "benchmarks"


def register(config: pytest.Config, session: SuiteSession) -> OutputsPlugin:
    """Set the default report paths (before pytest-html and pytest-benchmark read them) and hook in."""
    plugin = OutputsPlugin(config, session)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin


def _bench_key(info: dict[str, Any]) -> TimingKey:
    """The timing key of a forward benchmark, from the extra_info test_forward stored."""
    from slimbench.core.timing_key import TimingKey

    return TimingKey.of(
        str(info.get("runtime", "torch")),
        str(info.get("device")),
        int(info.get("batch", 0)),
        int(info.get("threads", 0)),
        int(info.get("imgsz", 0)),
    )


def _reports_dir(config: pytest.Config) -> Path | None:
    raw = str(config.getoption("slimbench_reports", DEFAULT_REPORTS) or "").strip()
    if not raw or raw.lower() == "none":
        return None
    return resolve_path(raw, Path(config.invocation_params.dir))


class OutputsPlugin:
    """Hooks that turn the session's figures into the report, the summaries and the baseline update."""

    def __init__(self, config: pytest.Config, session: SuiteSession) -> None:
        from slimbench.report.facts import RunFacts

        self.config = config
        self.session = session
        self.dir = _reports_dir(config)
        base = Path(config.invocation_params.dir)
        self.markdown_path, self.dashboard_path = ci_outputs.paths(config.getoption, base, self.dir)
        self.facts: RunFacts = RunFacts()
        self.section: str | None = None
        self.env: dict[str, Any] = {}
        self.lines: list[str] = []
        self.error: str | None = None
        self.seconds = 0.0
        self._default_json: Path | None = None
        self.summary_paths: list[Path] = []
        self.verdict_lines: list[str] = []
        self.history = RunHistory(history_limit(config.getoption("slimbench_history", DEFAULT_HISTORY)))
        self._set_defaults()

    # ------------------------------------------------------------ configure

    def _set_defaults(self) -> None:
        opt = self.config.option
        if self.dir is None or opt.collectonly:
            return
        if hasattr(opt, "htmlpath") and not opt.htmlpath:
            opt.htmlpath = str(self.dir / "report.html")
            opt.self_contained_html = True
        if bench_bridge.default_json(self.config, self.dir / "benchmark.json"):
            self._default_json = self.dir / "benchmark.json"
            self.dir.mkdir(parents=True, exist_ok=True)  # pytest-benchmark opens the file without making its folder

    @pytest.hookimpl(trylast=True)  # after -k / -m deselection
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Our default benchmark.json only when a benchmark will run (pytest-benchmark warns about an empty one)."""
        if self._default_json:
            bench_bridge.drop_json_without_benchmarks(config, items)

    @property
    def html_active(self) -> bool:
        return bool(getattr(self.config.option, "htmlpath", None))

    # ------------------------------------------------------------ start: the environment table

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Add the suite's environment to pytest-metadata's table, which pytest-html shows (it reads it trylast)."""
        from slimbench.report.facts import environment

        gate = self.session.baseline
        self.env = environment(self.session, gate.path if gate is not None else None)
        if not self.config.option.collectonly:
            self.history.read(self.config)  # before pytest-benchmark saves this run
        try:
            from pytest_metadata.plugin import metadata_key
        except ImportError:
            return
        metadata = self.config.stash.get(metadata_key, None)
        if metadata is None:
            return
        e = self.env
        metadata.update(
            {
                "slimbench": e["slimbench"],
                "torch": e["torch"],
                "ultralytics": e["ultralytics"],
                "torch-pruning": e["torch-pruning"],
                "CPU": f"{e['cpu']} ({e['cpu_count']} cores, {e['available_cpus']} available to this run)",
                "threads": f"{', '.join(map(str, e['threads']))} (torch and ONNX Runtime intra-op, per timing; "
                f"torch inter-op {e['torch_interop_threads']}{oversubscribed_note(e)}; "
                f"OMP_WAIT_POLICY {e['omp_wait_policy']})",
                "GPU": e["gpu"],
                "devices": ", ".join(e["devices"]),
                "imgsz": e["imgsz"],
                "batches": ", ".join(str(b) for b in e["batches"]),
                "conf / iou / match IoU": f"{e['conf']} / {e['iou']} / {e['match_iou']}",
                "thresholds file": e["thresholds_file"],
                "baseline file": e["baseline_file"],
                "smoke mode": str(e["smoke"]).lower(),
            }
        )

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_machine_info(self, config: pytest.Config, machine_info: dict[str, Any]) -> None:
        """pytest-benchmark's stored machine info says which thread counts the timings ran with."""
        import torch

        from slimbench.measure.timing import available_cpus
        from slimbench.report.facts import omp_wait_policy

        machine_info["slimbench"] = {  # may be asked before pytest_sessionstart: read the facts, not self.env
            "threads": list(self.session.settings.threads),
            "available_cpus": available_cpus(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "omp_wait_policy": omp_wait_policy(),
        }

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_json(self, config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
        """Every JSON pytest-benchmark writes (a saved run, --benchmark-json) carries the run's gated figures per
        variant, so that later runs can draw their history from its storage (``report.history``)."""
        from slimbench.report.rows import rows

        rows_now = rows(self.session, self.facts)
        self.history.add_figures(output_json, rows_now, self.session.config.reference, self._sha256())

    def _sha256(self) -> dict[str, str | None]:
        from slimbench.report.summary import file_sha256

        return {v.name: file_sha256(self.session, v.name) for v in self.session.variants}

    # ------------------------------------------------------------ per test: failures and annotated images

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        callspec = getattr(item, "callspec", None)
        params = dict(callspec.params) if callspec is not None else {}
        name = params.get("variant") or params.get("candidate")
        if not isinstance(name, str) or name not in self.session.figures:
            return report
        if report.failed:
            self._note_failure(params, name, report)
        image = params.get("image")
        if report.when == "call" and isinstance(image, str) and self.html_active:
            extra = self._annotated_extra(name, image)
            if extra is not None:
                report.extras = [*getattr(report, "extras", []), extra]
        return report

    def _note_failure(self, params: dict[str, Any], name: str, report: pytest.TestReport) -> None:
        """The variant, cell and first line of a failure; not the test's name, which a user's copy may change."""
        from slimbench.report.facts import Failure

        key = None
        if "device" in params and "batch" in params and "threads" in params:
            key = self.session.timing_key(
                params["device"], params["batch"], params.get("runtime", "torch"), params["threads"]
            )
        elif "image" in params:
            key = str(params["image"])
        text = report.longreprtext.strip().splitlines()
        msg = text[0] if text else report.outcome
        self.facts.failures.append(Failure(name, key, msg, report.when))

    def _annotated_extra(self, name: str, image: str) -> dict[str, Any] | None:
        record = self.session.figures[name].detections.get(image)
        picture = self.session.images.get(image)
        if record is None or picture is None:
            return None
        from pytest_html import extras

        from slimbench.report.images import annotate, jpeg_b64

        names = self.session.figures[name].class_names or {}
        b64 = jpeg_b64(annotate(picture, record, names))
        return extras.jpg(b64, name=f"{name} on {image}: {record.get('count', 0)} detections")

    # ------------------------------------------------------------ end: summaries, report section, baseline

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.config.option.collectonly or exitstatus == pytest.ExitCode.USAGE_ERROR:
            return  # nothing measured (or stopped at start on a bad input): no summaries, no baseline update
        t0 = time.perf_counter()
        try:
            self._baseline_not_run()
            self._baseline_update(exitstatus, session.testsfailed)
            self._finish()
        except Exception as e:  # noqa: BLE001 - said in the terminal summary; the run's status says it failed
            import traceback

            self.error = f"{type(e).__name__}: {e}"
            self.lines += traceback.format_exc().rstrip().splitlines()
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        self.seconds = time.perf_counter() - t0

    def _baseline_not_run(self) -> None:
        """No baseline file yet and none required: the baseline tests were not run; say so once, with the hint."""
        from slimbench.bench.baseline_gate import NOT_RUN

        gate = self.session.baseline
        if gate is not None and gate.missing and not gate.update and not gate.required and gate.current:
            self.lines.append(f"baseline {NOT_RUN}: {gate.how_to_create()}")

    def _baseline_update(self, exitstatus: int, failed: int) -> None:
        gate = self.session.baseline
        if gate is None or not gate.update:
            return
        if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            self.lines.append(f"baseline {gate.path}: not updated (run ended with exit status {int(exitstatus)})")
            return
        if exitstatus == pytest.ExitCode.TESTS_FAILED and not self.config.getoption(
            "update_baseline_despite_failures", False
        ):
            self.lines.append(
                f"baseline {gate.path}: not updated: {failed} check(s) failed in this run, and a baseline "
                "must not record a broken state; fix them, or pass --update-baseline-despite-failures to write it "
                "anyway"
            )
            return
        if exitstatus == pytest.ExitCode.TESTS_FAILED:
            self.lines.append(f"baseline {gate.path}: written despite {failed} failed check(s), as asked")
        if not gate.current:
            self.lines.append(f"baseline {gate.path}: not updated (no baseline test ran)")
            return
        self.lines += gate.write()
        for name, status in gate.statuses().items():  # the report says what the file now holds
            self.session.figures[name].baseline["status"] = status

    def _collect_benchmarks(self) -> None:
        """Raw rounds, predict medians and --benchmark-compare-fail regressions from pytest-benchmark's session."""
        import statistics

        benches = bench_bridge.benchmarks(self.config)
        names = {}
        for b in benches:
            info = b.extra_info
            variant, data = info.get("variant"), b.data
            if not variant or not data:
                continue
            names[b.name] = (variant, info)
            if str(b.group or "").startswith("forward-"):
                self.facts.rounds.setdefault(_bench_key(info).label, {})[variant] = data
            elif str(b.group or "").startswith("predict-"):
                self.facts.predict.setdefault(variant, {})[str(info.get("device"))] = statistics.median(data)
        for bench_name, why in bench_bridge.regressions(self.config):
            variant, info = names.get(str(bench_name)) or next(
                ((v, i) for n, (v, i) in names.items() if n in str(bench_name)), (None, {})
            )
            key = str(_bench_key(info)) if "batch" in info else None
            self.facts.benchmark_regressions.append(
                {"benchmark": str(bench_name), "variant": variant, "key": key, "why": str(why)}
            )
        self.facts.outputs["benchmark_json"] = bench_bridge.json_written(self.config, bool(benches))

    def _finish(self) -> None:
        from slimbench.report import summary as sm

        self._collect_benchmarks()
        self.facts.outputs["html"] = str(self.config.option.htmlpath) if self.html_active else None
        if self.dir is not None:
            self.facts.outputs["summary_json"] = str(self.dir / "summary.json")
            self.facts.outputs["summary_csv"] = str(self.dir / "summary.csv")
        doc = sm.build(self.session, self.facts, self.env)
        doc["history"] = self.history.document(self.config, doc, self._sha256())
        self.verdict_lines = [v["line"] for v in doc.get("verdicts", [])] + step_lines(doc)
        if self.dir is not None:
            self.summary_paths = [
                sm.write_json(self.dir / "summary.json", doc),
                sm.write_csv(self.dir / "summary.csv", doc),
            ]
        self.lines += ci_outputs.write(doc, self.markdown_path, self.dashboard_path, os.environ)
        if self.html_active:
            self.section = self._html(doc)

    def _html(self, doc: dict[str, Any]) -> str:
        from slimbench.report import charts, html
        from slimbench.report.images import annotate, jpeg_b64, side_by_side
        from slimbench.report.rows import DEPLOYMENT_COLUMNS, columns

        s = self.session
        formats = {c.key: c.fmt for c in (*columns(s), *DEPLOYMENT_COLUMNS)}
        pngs = charts.render_all(doc, self.facts.rounds)
        panels = {}
        for image, picture in s.images.items():
            row = []
            for v in s.variants:
                record = s.figures[v.name].detections.get(image)
                if record is not None:
                    names = s.figures[v.name].class_names or {}
                    row.append((f"{v.name}: {record.get('count', 0)} detections", annotate(picture, record, names)))
            if row:
                panels[image] = jpeg_b64(side_by_side(row))
        problems = [f.message for f in self.facts.failures]
        problems += [
            f"timing regression vs stored run: {r['benchmark']}: {r['why']}" for r in doc["benchmark_regressions"]
        ]
        texts = intro(s, self.env), deployment_intro()
        out = html.section(doc, formats, pngs, CAPTIONS, panels, texts[0], problems, texts[1], step_lines(doc))
        if doc.get("history"):
            out += history_section(doc["history"], doc["reference"])
        if s.deploy_if_used is not None:  # the deployment matrix ran (slimbench.bench.matrix)
            from slimbench.report.matrix_report import section as matrix_section

            out += matrix_section(s.deploy_if_used.rows(), s.deploy_if_used.method())
        from slimbench.report.attribution_report import section as attribution_section

        out += attribution_section(doc.get("attribution", []))  # empty when the attribution step did not run
        return out

    # ------------------------------------------------------------ pytest-html hooks (optional: pytest-html may be off)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        c = self.session.config
        cands = ", ".join(v.name for v in c.candidates) or "no candidates"
        src = f" ({shown_path(c.source)})" if c.source else ""
        report.title = f"slimbench benchmark suite: {c.reference} vs {cands}{src}"

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: Any
    ) -> None:
        if self.section:
            prefix.append(self.section)
        elif self.error:
            prefix.append(f"<p><b>slimbench could not build its report section: {self.error}</b></p>")

    # ------------------------------------------------------------ terminal

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.verdict_lines:
            terminalreporter.write_sep("-", "slimbench verdicts")
            for line in self.verdict_lines:
                terminalreporter.write_line(line)
        lines = list(self.lines)
        if self.summary_paths:
            html = " and the HTML report section" if self.section else ""
            lines.append(f"reports: {', '.join(map(str, self.summary_paths))}{html} built in {self.seconds:.2f} s")
        if self.error:
            lines.append(f"could not write the reports: {self.error}")
        if lines:
            terminalreporter.write_sep("-", "slimbench outputs")
            for line in lines:
                terminalreporter.write_line(line, red=bool(self.error) and line.startswith("could not"))

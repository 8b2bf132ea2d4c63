"""pytest plugin: the slimbench suite session, its options and the fixtures the benchmark tests use.

Registered for every pytest run in the environment (pytest11 entry point), so it stays dormant and cheap (no torch
at import) unless the run collects a slimbench suite. A suite is a directory whose conftest.py says so::

    from slimbench.plugin import add_suite_options as pytest_addoption  # --variants-file, --device, ...
    slimbench_suite = True

(``benchmarks/conftest.py`` is exactly that). The options are declared by the suite's conftest, not globally,
so that generic names such as ``--device`` or ``--batch`` never clash with other projects' conftests; they exist
when the suite's directory (or a file in it) is on the command line, as in ``pytest benchmarks/``.

When a suite conftest is loaded at start-up, every input (config, checkpoints with their sha256 pins, images,
``--reference``, option values) is validated in ``pytest_configure``, before collection and before any report
plugin starts: a bad input ends the run with one ``ERROR: slimbench: ...`` line, exit code 4 (usage error), and
nothing written. The fixtures are parametrised only for tests inside a suite directory or marked
``@pytest.mark.slimbench``; such a test in a run that did not start the suite starts it lazily, and an error
then shows as a collection error.
"""

from __future__ import annotations

import argparse
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import CACHE_DIR

if TYPE_CHECKING:
    from slimbench.bench.session import SuiteSession
    from slimbench.config.options import SuiteOptions
    from slimbench.config.suite import Variant

SUITE_FLAG = "slimbench_suite"
SUITE_CONFIG = "slimbench_config"
"""A suite conftest may name its config (relative to the conftest), as ``slimbench init`` writes it."""
DEFAULT_VARIANTS_FILE = "fixtures/slimbench.toml"
"""Under the rootdir: the generated default dataset and validator scratch space (safe to delete)."""
_SESSION = pytest.StashKey["SuiteSession"]()
RENAMED_IMAGES = "--images was renamed --agreement-images (agreement folder; --image stays the sample images)"
_PARAMETRISED = ("variant", "candidate", "device", "batch", "threads", "image", "runtime")


def add_options(addoption: Any, prefix: str = "") -> None:
    """Declare the suite's options through ``addoption`` (a pytest option group's, or argparse's)."""
    addoption(
        f"--{prefix}variants-file",
        metavar="PATH",
        default=None,
        help=f"suite config (TOML): variants, reference, settings, thresholds [default: ini slimbench_variants_file, "
        f"{DEFAULT_VARIANTS_FILE}]",
    )
    addoption(
        f"--{prefix}variant",
        metavar="NAME=PATH",
        action="append",
        default=[],
        help="add a variant or replace one's checkpoint (drops its sha256 pin); repeatable",
    )
    addoption(f"--{prefix}reference", metavar="NAME", default=None, help="variant the others are compared with")
    addoption(f"--{prefix}device", metavar="LIST", default=None, help="devices to time on, e.g. cpu,cuda")
    addoption(f"--{prefix}batch", metavar="LIST", default=None, help="batch sizes to time, e.g. 1,8")
    addoption(
        f"--{prefix}threads",
        metavar="LIST",
        default=None,
        help="CPU threads for torch and ONNX Runtime per timing, e.g. 1,4 [settings.threads, else the CPUs "
        "available to this process]",
    )
    addoption(
        f"--{prefix}runtime",
        metavar="LIST",
        default=None,
        help="runtimes to time and compare, e.g. torch,onnxruntime [settings.runtime: both; onnxruntime tests are "
        "skipped with the reason where it is not installed]",
    )
    addoption(
        f"--{prefix}precision",
        metavar="LIST",
        default=None,
        help="deployment matrix precisions of the ONNX-based runtimes, e.g. fp32,int8 (INT8: static QDQ quantization "
        "with onnxruntime.quantization) [settings.precision; none: the matrix is off]",
    )
    addoption(
        f"--{prefix}calibration",
        metavar="DIR",
        default=None,
        help="INT8 calibration images [settings.calibration, else the dataset's val split with --data, else the "
        "agreement images]",
    )
    addoption(f"--{prefix}imgsz", metavar="N", default=None, help="image size for timing, predict and GFLOPs")
    addoption(
        f"--{prefix}image",
        metavar="PATH",
        action="append",
        default=[],
        help="sample image for predict and detection checks (replaces the config's); repeatable",
    )
    addoption(
        f"--{prefix}data",
        metavar="YAML",
        default=None,
        help="YOLO dataset YAML for mAP per variant (its val split) [default: settings.data, else the bundled "
        "synthetic val split, generated into .slimbench-cache/]",
    )
    addoption(
        f"--{prefix}agreement-images",
        metavar="DIR",
        default=None,
        help="folder of unlabeled images for agreement with the reference [default: settings.agreement_images, "
        "else the sample images]",
    )
    # the old spelling, too close to --image: declared only to say it was renamed (see _options)
    addoption(f"--{prefix}images", dest=f"{prefix}renamed_images", default=None, help=argparse.SUPPRESS)
    addoption(
        f"--{prefix}slimbench-smoke",
        action="store_true",
        default=False,
        help="run every check once, fast: first batch size only, benchmarks disabled (one call each), "
        "speed ratios measured on a few pairs and not gated",
    )


def add_suite_options(parser: pytest.Parser) -> None:
    """A suite conftest's ``pytest_addoption``: the options and the ini default for the variants file."""
    group = parser.getgroup("slimbench", "slimbench: compare a YOLO detector with its pruned variants")
    add_options(group.addoption)
    from slimbench.report.options import add_output_options

    add_output_options(group.addoption)  # --slimbench-reports, --baseline, --update-baseline
    parser.addini(
        "slimbench_variants_file",
        help=f"default suite config, relative to the rootdir [{DEFAULT_VARIANTS_FILE}]",
        default=DEFAULT_VARIANTS_FILE,
    )


def _opt(config: pytest.Config, name: str, default: Any = None) -> Any:
    """An option's value, or ``default`` when no suite conftest declared the options."""
    return config.getoption(name, default)


def _suite_dirs(config: pytest.Config) -> list[Path]:
    """Directories of the loaded conftests that declare ``slimbench_suite = True``."""
    dirs = []
    for plugin in config.pluginmanager.get_plugins():
        try:
            flagged = getattr(plugin, SUITE_FLAG, False) is True
            file = getattr(plugin, "__file__", None) if flagged else None
        except Exception:  # noqa: BLE001 - some plugin objects raise on attribute access; not ours
            continue
        if flagged and file:
            dirs.append(Path(file).resolve().parent)
    return dirs


def _is_active(config: pytest.Config) -> bool:
    return bool(_suite_dirs(config) or _opt(config, "variants_file") or _opt(config, "variant"))


def _in_suite(metafunc: pytest.Metafunc) -> bool:
    """Whether a test belongs to a suite: in a suite directory, or marked ``slimbench``."""
    if metafunc.definition.get_closest_marker("slimbench") is not None:
        return True
    path = Path(metafunc.definition.path).resolve()
    return any(path.is_relative_to(d) for d in _suite_dirs(metafunc.config))


def _options(config: pytest.Config) -> SuiteOptions:
    from slimbench.config.options import SuiteOptions
    from slimbench.config.overrides import Overrides

    if _opt(config, "renamed_images") is not None:
        raise SlimbenchError(RENAMED_IMAGES)
    imgsz = _opt(config, "imgsz")
    if imgsz is not None:
        try:
            imgsz = int(str(imgsz).strip())
        except ValueError:
            raise SlimbenchError(f"--imgsz {imgsz!r}: expected an integer") from None
    return SuiteOptions(
        variants_file=_opt(config, "variants_file"),
        suite_config=_conftest_config(config),
        default_variants_file=_ini_variants_file(config),
        overrides=Overrides(
            variants=tuple(_opt(config, "variant") or ()),
            reference=_opt(config, "reference"),
            device=_opt(config, "device"),
            batch=_opt(config, "batch"),
            imgsz=imgsz,
            images=tuple(_opt(config, "image") or ()),
            data=_opt(config, "data"),
            agreement_images=_opt(config, "agreement_images"),
            runtime=_opt(config, "runtime"),
            threads=_opt(config, "threads"),
            precision=_opt(config, "precision"),
            calibration=_opt(config, "calibration"),
        ),
        smoke=bool(_opt(config, "slimbench_smoke")),
    )


def _conftest_config(config: pytest.Config) -> str | None:
    """The config a loaded suite conftest names (``slimbench_config = "slimbench.toml"``), as an absolute path."""
    for plugin in config.pluginmanager.get_plugins():
        try:
            name = getattr(plugin, SUITE_CONFIG, None) if getattr(plugin, SUITE_FLAG, False) is True else None
            file = getattr(plugin, "__file__", None)
        except Exception:  # noqa: BLE001 - some plugin objects raise on attribute access; not ours
            continue
        if isinstance(name, str) and file:
            return str(Path(file).resolve().parent / name)
    return None


def _ini_variants_file(config: pytest.Config) -> str:
    try:
        return str(config.getini("slimbench_variants_file") or DEFAULT_VARIANTS_FILE)
    except ValueError:  # no suite conftest declared the ini key
        return DEFAULT_VARIANTS_FILE


def _activate(config: pytest.Config) -> SuiteSession:
    """Build and validate the session; every bad input becomes one SlimbenchError line."""
    from slimbench.bench.session import SuiteSession
    from slimbench.config.options import build_config

    opts = _options(config)
    cfg = build_config(opts, Path(config.rootpath), Path(config.invocation_params.dir))
    session = SuiteSession(cfg, smoke=opts.smoke, cache_dir=Path(config.rootpath) / CACHE_DIR)
    session.load()
    if session.unmeasurable and not _deselects(config):  # nothing can be deselected: stop now, nothing written
        raise SlimbenchError(session.unmeasurable[0].line)
    from slimbench.report.hooks import open_baseline

    if cfg.source is not None or _opt(config, "baseline"):  # --variant alone: figures only, no stored baseline
        session.baseline = open_baseline(config, cfg)  # reads and validates the stored baseline, if there is one
    config.stash[_SESSION] = session
    return session


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Validate before anything else configures (report plugins create files and folders in their own hooks)."""
    config.addinivalue_line("markers", "slimbench: a test of the slimbench benchmark suite")
    config.addinivalue_line("markers", "accuracy: mAP and agreement checks on a dataset (deselect: -m 'not accuracy')")
    config.addinivalue_line("markers", "matrix: the deployment matrix, runtime x precision (off unless --precision)")
    config.addinivalue_line(
        "markers", "attribution: where the time goes, per-layer latency at batch 1 (deselect: -m 'not attribution')"
    )
    if getattr(config.option, "help", False) or getattr(config.option, "markers", False):
        return
    if not _is_active(config):
        return
    from slimbench.bench import benchmark_bridge

    benchmark_bridge.configure(config, smoke=bool(_opt(config, "slimbench_smoke")))  # before pytest-benchmark's own
    try:
        from slimbench.report.hooks import register as register_outputs

        register_outputs(config, _activate(config))  # default report paths, summaries, baseline update
    except (SlimbenchError, OSError) as e:  # OSError: an unreadable file, say; its message names the path
        raise pytest.UsageError(f"slimbench: {e}") from None


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Say, before any test, which config the run uses, whose limits are not applied, and thread oversubscription
    (written even with ``-q``, which hides the report header)."""
    suite = session.config.stash.get(_SESSION, None)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if suite is None or reporter is None:
        return
    for line in suite.start_lines():
        reporter.write_line(f"slimbench: {line}", yellow=line.startswith("WARNING"))


def get_session(config: pytest.Config) -> SuiteSession:
    """The run's suite session, activating the suite lazily for a test outside an active run."""
    session = config.stash.get(_SESSION, None)
    if session is None:
        try:
            session = _activate(config)
        except (SlimbenchError, OSError) as e:
            problem = str(e)
        else:
            return session
        # during collection or setup: one line for the module or test, no traceback
        pytest.fail(f"slimbench: {problem}", pytrace=False)
    return session


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise the suite's fixtures; ids are variant names, devices, ``b<batch>``, ``t<threads>``, image stems
    and short runtime names."""
    from slimbench.core.timing_key import RUNTIME_IDS

    wanted = [n for n in _PARAMETRISED if n in metafunc.fixturenames]
    if not wanted or not _in_suite(metafunc):
        return
    session = get_session(metafunc.config)
    s = session.settings
    values: dict[str, tuple[list[Any], list[str]]] = {
        "variant": ([v.name for v in session.variants], [v.name for v in session.variants]),
        "candidate": ([v.name for v in session.candidates], [v.name for v in session.candidates]),
        "device": (list(s.device), list(s.device)),
        "batch": (list(s.batch), [f"b{b}" for b in s.batch]),
        "threads": (list(s.threads), [f"t{n}" for n in s.threads]),
        "image": (list(session.image_paths), list(session.image_paths)),
        "runtime": (list(s.runtime), [RUNTIME_IDS[r] for r in s.runtime]),
    }
    for name in wanted:
        params, ids = values[name]
        metafunc.parametrize(name, params, ids=ids, indirect=True)


def _deselects(config: pytest.Config) -> bool:
    """Whether the command line can deselect tests (``-m``, ``-k``, ``--deselect``)."""
    opt = config.option
    return bool(getattr(opt, "markexpr", "") or getattr(opt, "keyword", "") or getattr(opt, "deselect", None))


def _item_key(item: pytest.Item) -> tuple[str, str | None]:
    """(test function, variant) of a collected suite test: what a limit's verdict is traced back to."""
    callspec = getattr(item, "callspec", None)
    params = dict(callspec.params) if callspec is not None else {}
    name = params.get("variant") or params.get("candidate")
    return getattr(item, "originalname", item.name), name if isinstance(name, str) else None


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Remember what ``-m`` / ``-k`` / ``--deselect`` left out, so its limits read "not run (deselected)"."""
    session = next((it.config.stash.get(_SESSION, None) for it in items[:1]), None)
    if session is not None:
        session.deselected.update(_item_key(item) for item in items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Remember why a suite test skipped, so its limits read "not run (skipped: why)"."""
    report = yield
    session = item.config.stash.get(_SESSION, None)
    if session is not None and report.skipped and isinstance(report.longrepr, tuple):  # (file, line, "Skipped: why")
        session.skipped.setdefault(_item_key(item), str(report.longrepr[2]).removeprefix("Skipped: "))
    return report


@pytest.hookimpl(trylast=True)  # after pytest's own -m / -k / --deselect
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop on a configured limit that cannot be measured when its test is selected; run the stored baseline's tests
    last (it compares what the run measured: ONNX size, peak memory, mAP)."""
    session = config.stash.get(_SESSION, None)
    if session is None:
        return
    _stop_on_unmeasurable(config, session, {_item_key(item) for item in items})
    items.sort(key=lambda item: getattr(item, "originalname", "") == "test_baseline")  # stable: the rest keep order


def _stop_on_unmeasurable(config: pytest.Config, session: SuiteSession, selected: set[tuple[str, str | None]]) -> None:
    """One line and exit status 4, before any test, for the first unmeasurable limit whose test still runs; the
    report writers are told first, so a stopped run writes no report over the last one."""
    from slimbench.core.metric_specs import gating_test

    for u in session.unmeasurable:
        test = gating_test(u.limit)
        if (test, u.variant) in selected or (test, None) in selected:
            for plugin in list(config.pluginmanager.get_plugins()):
                if type(plugin).__module__.startswith("pytest_html"):
                    config.pluginmanager.unregister(plugin)
            raise pytest.UsageError(f"slimbench: {u.line}")


@pytest.fixture
def slimbench(request: pytest.FixtureRequest) -> SuiteSession:
    """The suite session: settings, loaded variants, metrics, detections, collected figures, gates."""
    return get_session(request.config)


@pytest.fixture
def variant(request: pytest.FixtureRequest, slimbench: SuiteSession) -> Variant:
    """Each variant in turn, reference first (its checkpoint was loaded once, at session start)."""
    return slimbench.config.variants[request.param]


@pytest.fixture
def candidate(request: pytest.FixtureRequest, slimbench: SuiteSession) -> Variant:
    """Each non-reference variant in turn."""
    return slimbench.config.variants[request.param]


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    """Each device of the run; one that is absent here is skipped with the reason."""
    from slimbench.measure.timing import device_available

    name = request.param
    if not device_available(name):
        pytest.skip(f"{'CUDA' if name.startswith('cuda') else name.upper()} not available")
    return name


@pytest.fixture
def batch(request: pytest.FixtureRequest) -> int:
    """Each batch size of the run."""
    return int(request.param)


@pytest.fixture
def threads(request: pytest.FixtureRequest, slimbench: SuiteSession) -> int:
    """Each CPU thread count of the run; torch is set to it here, ONNX Runtime sessions are built with it."""
    return slimbench.use_threads(int(request.param))


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> str:
    """Each runtime of the run ("torch", "onnxruntime", "openvino"); one that is absent is skipped with the reason."""
    from slimbench.runtimes.registry import missing_reason

    name = str(request.param)
    why = missing_reason(name)
    if why:
        pytest.skip(why)
    return name


@pytest.fixture
def image(request: pytest.FixtureRequest) -> str:
    """Each sample image, by id (the file stem); the decoded array is ``slimbench.images[image]``."""
    return str(request.param)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """What the suite measured, in a few lines, next to pytest-benchmark's timing tables."""
    from slimbench.report.terminal import summary_lines

    session = config.stash.get(_SESSION, None)
    lines = summary_lines(session) if session is not None else []
    if lines:
        terminalreporter.write_sep("-", "slimbench")
        for line in lines:
            terminalreporter.write_line(line)

"""Shared fixtures for the unit and integration tests: tiny detector checkpoints built once per session, and the
pytester folder in which a test runs the benchmark suite in process (with tiny_models' run_suite).

Under pytest-xdist (``./run test``: ``-n auto --dist load --maxschedchunk 1``) the hooks at the end keep it fast and
fair: one torch thread per worker, the slow tests handed out first and run on their worker's share of the CPUs, and
a test marked ``timing`` run alone."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest
import tiny_models
import torch

if os.name == "posix":
    import fcntl

# pytester's in-process runs drop the modules first imported inside them, so a matplotlib module imported there
# comes back as a second copy with other classes ("Single argument to subplot must be a three-digit integer, not
# GridSpec"). Importing pyplot here, before any inline run, keeps one copy for the whole session.
matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402,F401

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@dataclass(frozen=True)
class TinySet:
    """Checkpoints (FP16, ultralytics format) and a scene image in one temp folder."""

    root: Path
    original: Path
    pruned: Path  # same architecture at width 0.125: fewer channels, params, GFLOPs
    copy: Path  # the original saved again: identical detections
    masked: Path  # the original with channels zeroed, same shape
    masked_channels: int
    blind: Path  # the original with class logits far below any threshold: detects nothing
    scene: Path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinySet:
    from slimbench.model.checkpoint import save_detector

    root = tmp_path_factory.mktemp("tiny")
    original = tiny_models.build_detector("yolov8n.yaml", nc=2)
    masked, n = tiny_models.masked_copy(original)
    return TinySet(
        root=root,
        original=save_detector(original, root / "original.pt"),
        pruned=save_detector(tiny_models.build_detector("yolov8n.yaml", nc=2, width=0.125), root / "pruned.pt"),
        copy=save_detector(original, root / "copy.pt"),
        masked=save_detector(masked, root / "masked.pt"),
        masked_channels=n,
        blind=save_detector(tiny_models.build_detector("yolov8n.yaml", nc=2, class_bias=-20.0), root / "blind.pt"),
        scene=tiny_models.write_scene(root / "scene.jpg", 160),
    )


@pytest.fixture(scope="session")
def imported_once(tiny: TinySet) -> None:
    """Run the suite's code paths once in this process before any in-process pytester run.

    pytester removes the modules an inner run imported when it ends; ultralytics' first predict imports
    torch._dynamo and torch._inductor, whose operator registrations live on in C++ and refuse a second import.
    onnxruntime's first import in a process writes $HOME/.cache/Microsoft/DeveloperTools/.onnxruntime, and pytester's
    HOME is its own folder, which some tests check nothing was written to. A test module whose runs reach further
    (export, ONNX Runtime sessions, the validator) overrides this fixture, requesting it, and adds its first calls.
    """
    import onnxruntime  # noqa: F401

    from slimbench.model.checkpoint import load_detector
    from slimbench.model.detections import detect

    detect(load_detector(tiny.original), tiny.scene, imgsz=64)


@pytest.fixture
def bench_dir(pytester: pytest.Pytester, imported_once: None) -> pytest.Pytester:
    """A pytester folder holding a copy of benchmarks/, to which a test adds checkpoints (tiny_models.copy_into)
    and a suite TOML (tiny_models.write_suite), then runs the suite in process (tiny_models.run_suite)."""
    shutil.copytree(BENCHMARKS, pytester.path / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
    return pytester


# pytest-xdist ------------------------------------------------------------------------------------------------------


def xdist_worker(config: pytest.Config) -> dict | None:
    """What pytest-xdist hands a worker process (None in a plain run or in the controller)."""
    return getattr(config, "workerinput", None)


class MachineShare:
    """Tests share the machine; a test marked ``timing`` has it alone: no other worker runs a test beside it.

    A readers-writer lock over two files (flock) in the run's temp folder. Every test holds the share lock shared;
    a timing test holds it exclusively, and first takes the turnstile, which every test passes on its way in, so
    that a waiting timing test stops new tests from starting (it waits only for the ones already running). A run of
    timing tests on one worker keeps the machine from the first to the last.
    """

    def __init__(self, folder: Path) -> None:
        self.turnstile = open(folder / "machine-turnstile.lock", "a+b")  # noqa: SIM115 - held for the session
        self.share = open(folder / "machine-share.lock", "a+b")  # noqa: SIM115
        self.alone = False

    def enter(self, alone: bool) -> None:
        if self.alone:
            return
        fcntl.flock(self.turnstile, fcntl.LOCK_EX)
        if not alone:
            fcntl.flock(self.turnstile, fcntl.LOCK_UN)
        fcntl.flock(self.share, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        self.alone = alone

    def leave(self) -> None:
        fcntl.flock(self.share, fcntl.LOCK_UN)
        if self.alone:
            fcntl.flock(self.turnstile, fcntl.LOCK_UN)
        self.alone = False

    def close(self) -> None:
        self.turnstile.close()
        self.share.close()


MACHINE_SHARE = pytest.StashKey[MachineShare]()
WORKER_CPUS = pytest.StashKey[set[int]]()


def pytest_configure(config: pytest.Config) -> None:
    worker = xdist_worker(config)
    if worker is None:
        return
    # torch's default is a thread per CPU in every worker: 2 workers x 2 threads on 2 cores contend. What is timed or
    # trained sets its own count.
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):  # worker i of n: every n-th CPU (2 workers on 2 CPUs: one each)
        cpus = sorted(os.sched_getaffinity(0))
        index, workers = int(worker["workerid"].removeprefix("gw")), int(worker["workercount"])
        config.stash[WORKER_CPUS] = set(cpus[index::workers]) or set(cpus)
    basetemp = config.option.basetemp  # xdist gives each worker <the run's basetemp>/popen-gwN
    if basetemp and os.name == "posix":
        config.stash[MACHINE_SHARE] = MachineShare(Path(basetemp).parent)


def pytest_unconfigure(config: pytest.Config) -> None:
    share = config.stash.get(MACHINE_SHARE, None)
    if share is not None:
        share.close()


@pytest.fixture(autouse=True)
def plain_pytest_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest runs a test starts (pytester, subprocesses) are plain runs, also when it runs in an xdist worker:
    pytest-benchmark disables itself where it sees PYTEST_XDIST_WORKER; outside GitHub Actions' step summary and CI."""
    for name in [name for name in os.environ if name.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(name)
    # this repository's own CI runs on GitHub Actions: the tiny suites' verdicts stay out of its job summary
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    # nor does CI=true (set by .ci/run) make a tiny suite's missing baseline a failure: the tests that check that
    # behaviour set CI themselves
    monkeypatch.delenv("CI", raising=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the order in which --dist load --maxschedchunk 1 hands out the tests, one at a time to whichever
    worker is free: the slow tests first, so that no worker starts a long test when the other has nothing left to do;
    the timing tests last, when every test beside them is short. A plain run keeps the file order."""
    if xdist_worker(config) is None:
        return
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else 2 if item.get_closest_marker("timing") else 1)


def is_timing(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker("timing") is not None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    with machine_share(item, nextitem), on_worker_cpus(item):
        return (yield)


@contextlib.contextmanager
def machine_share(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    share = item.config.stash.get(MACHINE_SHARE, None)
    if share is None:
        yield
        return
    share.enter(alone=is_timing(item))
    try:
        yield
    finally:
        if not (is_timing(item) and is_timing(nextitem)):
            share.leave()


@contextlib.contextmanager
def on_worker_cpus(item: pytest.Item) -> Iterator[None]:
    """A slow test (they train) runs on its worker's share of the CPUs, and so do the processes it starts.

    Training takes a torch thread per CPU the process may use (slimbench.measure.timing.available_cpus), and here two
    2-thread training loops side by side took 1.9x as long as two 1-thread ones. The other tests see every CPU: what
    they set is what they check (OpenVINO, for one, caps its threads at the process's CPUs).
    """
    cpus = item.config.stash.get(WORKER_CPUS, None)
    if cpus is None or item.get_closest_marker("slow") is None:
        yield
        return
    before = os.sched_getaffinity(0)
    set_affinity(cpus)
    try:
        yield
    finally:
        set_affinity(before)


def set_affinity(cpus: set[int]) -> None:
    """Every thread of this process on ``cpus`` (sched_setaffinity(0) moves the calling thread only)."""
    tasks = Path("/proc/self/task")
    for tid in [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, cpus)

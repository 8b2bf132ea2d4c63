"""pytest-benchmark behind one bridge: the only module that reads or writes pytest-benchmark's run state.

pytest-benchmark's public hooks are used where they serve (``pytest_benchmark_update_machine_info`` in
``report.hooks`` adds the thread counts to the stored machine info). The rest of what slimbench needs has no public
way in pytest-benchmark 5.x, so it is read here, each private name once, with the reason:

- ``config._benchmarksession`` (:data:`SESSION_ATTR`): the run's ``BenchmarkSession``, which pytest-benchmark hangs
  on the config in its ``pytest_configure`` and offers no accessor for.
- ``.benchmarks``: every benchmark of the run with its raw rounds (the report's latency histograms, the predict
  medians), also when no JSON is saved (smoke mode, ``--slimbench-reports none``); ``pytest_benchmark_update_json``
  sees them only when a file is saved.
- ``.performance_regressions``: what ``--benchmark-compare-fail`` found, (name, why) pairs; no hook reports it.
- ``.json``: the ``--benchmark-json`` target the session copied from the option in its ``pytest_configure``; set to
  None to skip our default file when no benchmark will run (pytest-benchmark warns about an empty one), read to say
  whether the file was written.
- ``.storage`` and ``.machine_id``: the storage (``--benchmark-storage``) and this machine's key in it, from which
  ``--benchmark-compare`` picks its run; the history (``report.history``) reads the earlier runs from the same place,
  through the storage's own ``load()``, so it sees exactly the files pytest-benchmark would compare with.

Its options (``config.option.benchmark_*``, its command line's destinations) are public; slimbench sets them here too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SESSION_ATTR = "_benchmarksession"
"""Where pytest-benchmark keeps its ``BenchmarkSession`` on the pytest config (see the module doc)."""


def _session(config: Any) -> Any:
    return getattr(config, SESSION_ATTR, None)


def configure(config: Any, smoke: bool) -> None:
    """Before pytest-benchmark's own (trylast) ``pytest_configure`` reads its options: no garbage-collector pause
    inside a timed round (as in the interleaved speed ratio, ``timing.gc_paused``); benchmarks off in smoke mode."""
    if smoke:
        config.option.benchmark_disable = True  # read by pytest-benchmark's own (trylast) pytest_configure
    config.option.benchmark_disable_gc = True


class JsonTarget(os.PathLike):
    """Our default ``--benchmark-json``, which pytest-benchmark declares as a path (5.2 and later: it opens it) or as
    an open file (earlier: ``with json as fh: fh.write(...)``). This is both, and the file is only opened, so only
    created, when pytest-benchmark writes it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._file: Any = None

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __enter__(self) -> Any:
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in __exit__
        return self._file

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def default_json(config: Any, path: Path) -> bool:
    """Point ``--benchmark-json`` at ``path`` when pytest-benchmark is installed and the user gave none; whether set."""
    opt = config.option
    if hasattr(opt, "benchmark_json") and opt.benchmark_json is None:
        opt.benchmark_json = JsonTarget(path)
        return True
    return False


def drop_json_without_benchmarks(config: Any, items: list[Any]) -> None:
    """No JSON file when none of the selected tests uses the ``benchmark`` fixture (an empty one draws a warning)."""
    bs = _session(config)
    if bs is not None and not any("benchmark" in getattr(i, "fixturenames", ()) for i in items):
        bs.json = None


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of the run: its name and group, the extra_info the test stored, its raw rounds (seconds)."""

    name: Any
    group: Any
    extra_info: dict[str, Any]
    data: list[float]


def benchmarks(config: Any) -> list[Benchmark]:
    """The run's benchmarks that have results, in the order pytest-benchmark holds them."""
    bs = _session(config)
    return [
        Benchmark(b.name, b.group, b.extra_info or {}, list(getattr(b.stats, "data", []) or []))
        for b in getattr(bs, "benchmarks", None) or []
        if b
    ]


def regressions(config: Any) -> list[tuple[str, str]]:
    """``--benchmark-compare-fail`` regressions: (benchmark name, why), as pytest-benchmark found them."""
    bs = _session(config)
    return [(str(name), str(why)) for name, why in getattr(bs, "performance_regressions", None) or []]


def json_written(config: Any, ran: bool) -> str | None:
    """The ``--benchmark-json`` file when pytest-benchmark wrote it (``ran``: some benchmark had results), else None."""
    path = getattr(_session(config), "json", None)
    return str(path) if bool(path) and ran and Path(path).exists() else None


def stored_runs(config: Any, limit: int) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """The newest ``limit`` saved runs of this machine in pytest-benchmark's storage, oldest first, as (file name,
    saved JSON), as ``--benchmark-compare`` would find them; and why none could be read (None when all is well)."""
    storage = getattr(_session(config), "storage", None)
    if storage is None or limit <= 0:
        return [], None
    try:
        runs = list(storage.load())  # this machine's NNNN_*.json, sorted by name: oldest first
    except Exception as e:  # noqa: BLE001 - an unreachable Elasticsearch, an unreadable folder: said, not fatal
        return [], f"{storage}: {type(e).__name__}: {e}"
    return [(Path(str(path)).name, data) for path, data in runs[-limit:]], None


def storage_name(config: Any) -> str | None:
    """Where the stored runs are (``--benchmark-storage``) and this machine's key in it, as one string."""
    bs = _session(config)
    storage = getattr(bs, "storage", None)
    return None if storage is None else f"{storage} ({getattr(bs, 'machine_id', '?')})"


def commit_info(config: Any) -> dict[str, Any]:
    """This run's commit (id, time, dirty, branch) as pytest-benchmark records it in a saved run (its public hook)."""
    hook = getattr(config.hook, "pytest_benchmark_generate_commit_info", None)
    try:
        return dict(hook(config=config) or {}) if hook is not None else {}
    except Exception:  # noqa: BLE001 - no git, no commit: the history names the run without one
        return {}

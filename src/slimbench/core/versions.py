"""Package versions, looked up one way: reports, the baseline and the fixtures manifest say what produced a figure.

Two questions with two answers: :func:`package_versions` reads the installed distributions' metadata (what pip
installed), :func:`module_version` the ``__version__`` an imported module reports (which can differ: a local build
tag such as ``+cu130``, or a module that forgot to bump it).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable


def package_version(dist: str) -> str | None:
    """The installed version of the distribution ``dist`` (``"torch-pruning"``), or None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def package_versions(dists: Iterable[str], missing: str | None = None) -> dict[str, str]:
    """Distribution -> installed version, in the order given; one not installed reads ``missing``, or is left out
    when ``missing`` is None."""
    out: dict[str, str] = {}
    for dist in dists:
        v = package_version(dist)
        if v is not None:
            out[dist] = v
        elif missing is not None:
            out[dist] = missing
    return out


def module_version(module: str) -> str:
    """``__version__`` of the imported module ``module`` (imported here if need be), or "unknown" without one."""
    return getattr(importlib.import_module(module), "__version__", "unknown")

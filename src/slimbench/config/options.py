"""What the command line says about a suite, and the run's config built from it.

Apart from pytest's option object, so the config a run uses (named file, ``--variant`` checkpoints alone, or the
default file) is decided by one plain function that tests call without pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slimbench.config.overrides import Overrides, apply_overrides
from slimbench.config.suite import SuiteConfig, load_config
from slimbench.core.errors import SlimbenchError
from slimbench.core.files import resolve_path


@dataclass(frozen=True)
class SuiteOptions:
    """Everything the command line says about the suite, independent of pytest's option object."""

    variants_file: str | None = None  # explicit --variants-file, relative to the working directory
    suite_config: str | None = None  # the config a suite conftest names (slimbench_config), absolute
    default_variants_file: str | None = None  # the ini default, relative to the rootdir: used without --variant only
    overrides: Overrides = Overrides()
    smoke: bool = False


def build_config(options: SuiteOptions, rootdir: Path, cwd: Path) -> SuiteConfig:
    """The run's config: a named one (``--variants-file``, else the suite conftest's ``slimbench_config``) with the
    command line merged over it; else the ``--variant``s alone (no limits, figures only); else the default file.

    The default file (``fixtures/slimbench.toml`` in this repository) describes its own checkpoints: it is read only
    when no ``--variant`` is given, so a user's checkpoints never inherit limits written for other files.
    """
    named = options.variants_file and resolve_path(options.variants_file, cwd)
    named = named or (options.suite_config and Path(options.suite_config))
    cfg: SuiteConfig | None = None
    if named:
        cfg = load_config(named)
    elif not options.overrides.variants and options.default_variants_file:
        default = resolve_path(options.default_variants_file, rootdir)
        if not default.exists():
            raise SlimbenchError(
                f"{default}: default variants file not found (give --variants-file PATH or --variant NAME=PATH)"
            )
        cfg = load_config(default)
    return apply_overrides(cfg, options.overrides, cwd)

"""``slimbench init``: write a ready suite into a user's repository, so ``pytest DIR`` runs it.

A suite is three things: the suite config (``slimbench.toml``, the schema of :mod:`config.suite`, with a sha256
pin of every checkpoint computed here), a ``conftest.py`` that marks the folder as a suite and names that config,
and the benchmark tests, copied from the ones shipped inside the package (``slimbench/suite/``), so an installed
slimbench needs nothing from this repository. Every input is checked and every file rendered before the first one
is written; a bad input is one :class:`SlimbenchError` line and nothing is written.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from slimbench.config.overrides import parse_variant_arg
from slimbench.config.suite import config_from_dict
from slimbench.core.errors import SlimbenchError
from slimbench.core.files import atomic_write_bytes
from slimbench.model.checkpoint import check_file, sha256_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_NAME = "slimbench.toml"

CONFTEST = '''"""This folder is a slimbench suite (written by ``slimbench init``): ``pytest {folder}`` runs it.

The slimbench plugin (installed with slimbench) declares the suite's options here, not globally, so generic names
such as --device or --batch cannot clash with other conftests, and reads the suite config named below."""

from slimbench.plugin import add_suite_options as pytest_addoption  # noqa: F401

slimbench_suite = True
slimbench_config = "{config}"  # relative to this file; --variants-file PATH overrides it
'''

PACKAGE_INIT = '"""The slimbench suite (a package, so its module names never clash with other tests in one run)."""\n'


@dataclass(frozen=True)
class InitRequest:
    """What ``slimbench init`` was asked for: the folder, variants as ``NAME=PATH`` and the reference's name."""

    folder: Path
    variants: tuple[str, ...]
    reference: str
    images: tuple[str, ...] = ()
    force: bool = False


def suite_tests() -> dict[str, bytes]:
    """The benchmark tests shipped in the package, by file name."""
    folder = resources.files("slimbench") / "suite"
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.name.startswith("test_") and f.name.endswith(".py")}


def render(req: InitRequest, cwd: Path) -> dict[str, bytes]:
    """Every file of the suite, by name, after checking every input; nothing touches the disk here."""
    folder = (cwd / req.folder).resolve()
    if folder.exists() and not folder.is_dir():
        raise SlimbenchError(f"{req.folder}: not a folder")
    if not req.variants:
        raise SlimbenchError("--variant: give at least one NAME=PATH")
    variants: dict[str, Path] = {}
    for text in req.variants:
        name, path = parse_variant_arg(text)
        if name in variants:
            raise SlimbenchError(f"--variant {text!r}: variant {name!r} given twice")
        variants[name] = check_file((cwd / path).resolve(), what=f"--variant {name}: checkpoint")
    if req.reference not in variants:
        raise SlimbenchError(f"--reference {req.reference!r}: not among the variants ({', '.join(variants)})")
    images = [check_file((cwd / p).resolve(), what="--image: sample image") for p in req.images]

    text = _config_text(folder, cwd.resolve(), req.reference, variants, images)
    config_from_dict(tomllib.loads(text), folder, folder / CONFIG_NAME)  # the suite will read it: same checks
    files = {
        CONFIG_NAME: text.encode(),
        "conftest.py": CONFTEST.format(folder=req.folder, config=CONFIG_NAME).encode(),
        "__init__.py": PACKAGE_INIT.encode(),
        **suite_tests(),
    }
    present = sorted(n for n in files if (folder / n).exists())
    if present and not req.force:
        raise SlimbenchError(f"{req.folder}: already holds a suite ({', '.join(present)}); pass --force to overwrite")
    return files


def write(req: InitRequest, cwd: Path) -> list[Path]:
    """Render, then write each file atomically; should a write fail, the files this call created are removed."""
    folder = (cwd / req.folder).resolve()
    files = render(req, cwd)
    created: list[Path] = []
    try:
        for name, data in files.items():
            target = folder / name
            new = not target.exists()
            atomic_write_bytes(target, data)
            if new:
                created.append(target)
    except OSError as e:
        for p in created:
            p.unlink(missing_ok=True)
        raise SlimbenchError(f"{folder}: cannot write the suite ({e.strerror or e})") from e
    return [folder / n for n in files]


def _rel(path: Path, folder: Path, root: Path) -> str:
    """``path`` relative to the suite folder (the config's paths are) when both are inside ``root`` (the user's
    repository, the working directory), so the suite moves with it; else absolute."""
    if path.is_relative_to(root) and folder.is_relative_to(root):
        return Path(os.path.relpath(path, folder)).as_posix()
    return path.as_posix()


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def _config_text(folder: Path, root: Path, reference: str, variants: dict[str, Path], images: list[Path]) -> str:
    lines = [
        "# A slimbench suite, written by `slimbench init`; `pytest` on this folder runs it.",
        "# Paths are relative to this file. Schema: slimbench/config/suite.py (settings and thresholds).",
        "",
        f"reference = {_q(reference)}",
        "",
        "[settings]",
        "# imgsz = 640                  # forward, predict and GFLOPs image size (multiple of 32); or --imgsz",
        "# batch = [1, 8]               # or --batch 1,8",
        '# device = ["cpu", "cuda"]     # cuda is skipped with the reason where there is none; or --device',
        f"images = [{', '.join(_q(_rel(p, folder, root)) for p in images)}]  # sample images; or --image PATH"
        if images
        else '# images = ["street.jpg"]     # sample images for predict and detection checks; or --image PATH',
        "",
    ]
    for name, path in variants.items():
        lines += [
            f"[variants.{_q(name)}]",
            f"path = {_q(_rel(path, folder, root))}",
            f"sha256 = {_q(sha256_of(path))}  # checked before the checkpoint is unpickled",
            "",
        ]
    for name in variants:
        if name != reference:
            lines += [
                f"# [thresholds.{_q(name)}]      # vs {reference}; all keys: slimbench/config/suite.py",
                "# max_params_ratio = 0.5",
                "# max_speed_ratio = 0.8",
                "",
            ]
    lines += [
        "# [baseline]                   # the stored figures, baseline.json next to this file (--update-baseline)",
        "# required = true              # no file fails the run, as under CI=true; else its check is not run",
        '# tolerances = { file_size_mb = "1%" }',
    ]
    return "\n".join(lines).rstrip() + "\n"


def next_steps(folder: Path) -> list[str]:
    """init's closing lines: the real first-run sequence, since a new suite has no baseline file until step 2."""
    dir_ = shlex.quote(folder.as_posix())
    cmds = [
        (f"pytest {dir_}", "first run: figures and report; your thresholds gate, no baseline yet"),
        (f"pytest {dir_} --update-baseline", f"store the baseline; review {folder / 'baseline.json'} and commit it"),
        (f"pytest {dir_}", "from now on: gated against the baseline (under CI=true a missing one fails)"),
    ]
    width = max(len(c) for c, _ in cmds)
    return ["next:"] + [f"  {i}. {c:<{width}}  # {why}" for i, (c, why) in enumerate(cmds, 1)]

"""The built-in suites travel with the plugin and run beside the user's own tests.

The repository's ``suites/`` directory is the source; ``pyproject.toml`` maps it to the package
``pytest_asiai.suites`` (``package-dir``), so a wheel carries it and an editable install points at
the repository copy. :func:`add_to_args` appends that directory to the session's paths when the
user named none (pytest's own ``testpaths`` or the invocation directory) and the project has an engine
matrix, or always with an explicit
``--asiai-suites``; :func:`ignored` then drops the suites the user did not pick and any built-in
file whose name the user's own tree already holds (a project that copied ``test_agentic.py`` to
change it runs its copy, once). The repository itself lists ``suites`` in ``testpaths``: the
editable install's directory is that same directory, so nothing is added there.

Choice: ``--asiai-suites=auto|all|none|NAME,...`` > environment ``ASIAI_SUITES`` > ini ``asiai_suites``
> ``auto`` (all of them, unless paths were given on the command line).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_asiai.config.options import Settings

SUITE_NAMES = ("agentic", "gates", "regression", "burst", "toolcall", "endurance")
"""The file ``suites/test_<name>.py`` of each built-in suite."""

ENV = "ASIAI_SUITES"


@dataclass
class BuiltinSuites:
    """What this session added, and the test file names seen outside it so far."""

    directory: Path
    names: frozenset[str]
    seen: set[str] = field(default_factory=set)


BUILTIN_KEY = pytest.StashKey[BuiltinSuites]()


def suites_dir() -> Path | None:
    """Where ``pytest_asiai.suites`` lives in this installation (site-packages, or the repository's suites/)."""
    spec = importlib.util.find_spec("pytest_asiai.suites")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]).resolve() if locations else None


def parse_choice(raw: str, where: str) -> frozenset[str] | None:
    """``auto`` → None; ``all`` / ``none`` / ``agentic,burst`` → the file names; a usage error otherwise."""
    value = raw.strip().lower()
    if value in ("", "auto"):
        return None
    if value == "all":
        return frozenset(SUITE_NAMES)
    if value == "none":
        return frozenset()
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITE_NAMES]
    if unknown:
        raise pytest.UsageError(
            f"{where}: unknown suite {unknown[0]!r} (expected auto, all, none or some of {', '.join(SUITE_NAMES)})"
        )
    return frozenset(names)


def _choice(config: pytest.Config) -> tuple[frozenset[str] | None, bool]:
    """The chosen suites (None: auto) and whether the choice was explicit."""
    cli = config.getoption("asiai_suites", None)
    if cli is not None:
        return parse_choice(str(cli), "--asiai-suites"), True
    env = os.environ.get(ENV, "").strip()
    if env:
        return parse_choice(env, f"environment {ENV}"), True
    ini = str(config.getini("asiai_suites") or "auto")
    return parse_choice(ini, "ini asiai_suites"), ini.strip().lower() != "auto"


def _covers(arg: str, directory: Path, base: Path) -> bool:
    """Does the command-line path ``arg`` (maybe ``file::test``) already collect ``directory``?"""
    path = (base / arg.split("::", 1)[0]).resolve()
    return path == directory or path in directory.parents


def add_to_args(config: pytest.Config, settings: Settings) -> None:
    """Append the built-in suites' directory to ``config.args`` (see the module docstring).

    ``auto`` adds nothing to a project without an engine matrix (no engines.toml, no
    ``--asiai-engines`` or ``--asiai-replay``): having the plugin installed must not break its
    unrelated test runs.
    """
    choice, explicit = _choice(config)
    if choice is not None and not choice:
        return
    if not explicit:
        named_paths = config.args_source == pytest.Config.ArgsSource.ARGS
        has_matrix = bool(settings.replay) or settings.engines_path_explicit or settings.engines_path.exists()
        if named_paths or not has_matrix:
            return
    directory = suites_dir()
    if directory is None or not directory.is_dir():
        return
    if any(_covers(arg, directory, config.invocation_params.dir) for arg in config.args):
        return
    config.args.append(str(directory))
    config.stash[BUILTIN_KEY] = BuiltinSuites(directory, choice if choice is not None else frozenset(SUITE_NAMES))


def ignored(config: pytest.Config, path: Path) -> bool | None:
    """For ``pytest_ignore_collect``: True for a built-in file not chosen or shadowed by the user's own."""
    state = config.stash.get(BUILTIN_KEY, None)
    if state is None or not path.name.startswith("test_") or path.suffix != ".py":
        return None
    if path.parent.resolve() != state.directory:
        state.seen.add(path.name)
        return None
    if path.stem.removeprefix("test_") not in state.names or path.name in state.seen:
        return True
    return None

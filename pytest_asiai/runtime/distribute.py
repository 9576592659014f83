"""pytest-xdist: keep every engine's tests on one worker, in order, without asking users to know how.

Under ``-n`` xdist's default mode (``load``) would scatter one engine's phases over several workers:
phases depend on each other's cache state, and two workers would measure one engine at once. So when
``-n`` is given and the user chose no ``--dist`` mode, the plugin hands xdist its own scheduler
(:mod:`pytest_asiai.runtime.scheduling`), which groups tests by engine host. It does not rely on the node-id
suffixes of xdist's ``loadgroup`` (broken by pytest 9.2), so test names never change with ``-n``.
An explicit ``--dist``/``-d`` is always respected.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable

import pytest

ENGINE_SCHEDULING = pytest.StashKey[bool]()


def is_worker(config: pytest.Config) -> bool:
    """True inside an xdist worker (only the controller writes reports and prints the table)."""
    return hasattr(config, "workerinput")


def dist_chosen(args: Iterable[str]) -> bool:
    """Whether the arguments choose an xdist distribution mode."""
    return any(a == "--dist" or a.startswith("--dist=") or a in ("-d", "--distload") for a in args)


def user_args(config: pytest.Config) -> list[str]:
    """Command line, ini ``addopts`` and ``PYTEST_ADDOPTS``: everywhere a user can choose a mode."""
    addopts = config.getini("addopts")
    ini = [str(a) for a in addopts] if isinstance(addopts, list) else shlex.split(str(addopts or ""))
    env = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    return [*config.invocation_params.args, *ini, *env]


def choose_engine_scheduling(config: pytest.Config) -> bool:
    """Under ``-n`` with no mode chosen, schedule by engine host; True when it did.

    ``dist`` becomes ``load`` (what xdist itself picks for ``-n``) so xdist distributes at all; the
    stash flag makes :func:`wants_engine_scheduling` answer xdist's request for a scheduler.
    """
    option = config.option
    if not getattr(option, "numprocesses", None) or not hasattr(option, "dist"):
        return False
    if dist_chosen(user_args(config)) or option.dist not in ("no", "load"):
        return False
    option.dist = "load"
    config.stash[ENGINE_SCHEDULING] = True
    return True


def wants_engine_scheduling(config: pytest.Config) -> bool:
    return config.stash.get(ENGINE_SCHEDULING, False)

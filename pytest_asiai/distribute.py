"""pytest-xdist: keep every engine's tests on one worker, in order, without asking users to know how.

The plugin marks each test with ``xdist_group(<host group>)`` (an engine's host); that mark only
works under ``--dist loadgroup``. xdist's own default with ``-n`` is ``load``, which would scatter
one engine's phases over several workers (phases depend on each other's cache state, and two
workers would measure one engine at once). So when ``-n`` is given and the user chose no ``--dist``
mode, the plugin makes ``loadgroup`` the mode; an explicit ``--dist``/``-d`` is always respected.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from typing import Any

import pytest


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


def default_to_loadgroup(config: pytest.Config) -> bool:
    """Make ``--dist loadgroup`` the mode under ``-n`` unless one was chosen; True when it did."""
    option = config.option
    if not getattr(option, "numprocesses", None) or not hasattr(option, "dist"):
        return False
    if dist_chosen(user_args(config)) or option.dist not in ("no", "load"):
        return False
    option.dist = "loadgroup"
    return True


def share_dist_mode(node: Any) -> None:
    """Controller side (``pytest_configure_node``): tell a worker that tests are grouped.

    A worker re-parses the original command line, so a mode the plugin chose is not in it; without
    this the worker never adds the ``@group`` node-id suffixes that loadgroup scheduling relies on.
    """
    node.workerinput["asiai_loadgroup"] = node.config.option.dist == "loadgroup"


def adopt_dist_mode(config: pytest.Config) -> None:
    """Worker side (``pytest_configure``): group like the controller does."""
    if getattr(config, "workerinput", {}).get("asiai_loadgroup"):
        config.option.loadgroup = True

"""Path options written with a space, which pytest takes for test paths (pytest-dev/pytest#8846).

pytest finds its rootdir and ini file before plugins have registered their options, so in
``pytest -m agentic --asiai-replay /some/dir/results`` the value counts as a test path: the rootdir
moves up to the common ancestor of the project and ``/some/dir/results``, ``testpaths`` is lost and
collection runs the wrong tree. It happens only when the value exists (pytest skips missing paths
there) and lies outside the invocation directory (a path inside it leads back to the same ini file).
:func:`check` turns that case into a one-line usage error (exit 4) before any conftest is imported;
``--asiai-replay=PATH`` is never misread.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import pytest

PATH_OPTIONS = ("--asiai-replay", "--asiai-engines", "--asiai-json", "--asiai-html", "--asiai-baseline")


def misread(args: Sequence[str], invocation_dir: Path) -> tuple[str, str] | None:
    """The first ``(option, value)`` written with a space whose value pytest takes for a test path."""
    for option, value in pairwise(args):
        if option not in PATH_OPTIONS or value.startswith("-"):
            continue
        path = (invocation_dir / value).resolve()
        inside = path == invocation_dir.resolve() or invocation_dir.resolve() in path.parents
        if path.exists() and not inside:
            return option, value
    return None


def check(args: Sequence[str], invocation_dir: Path) -> None:
    """Raise a usage error naming the option and the ``=`` form to write instead."""
    found = misread(args, invocation_dir)
    if found is not None:
        option, value = found
        raise pytest.UsageError(
            f"{option} {value}: pytest takes a path written after a space for a test path "
            f"(pytest-dev/pytest#8846); write {option}={value}"
        )

"""Gate thresholds: built-in defaults overridden by ini, engines.toml and the command line.

Precedence, lowest first: the gate's default, ini ``asiai_gates``, engines.toml (top level, then the
engine, then the model), and ``--asiai-gate NAME=VALUE`` last, so a command-line override always wins.
:meth:`Thresholds.resolve` is the one place a threshold is resolved, ``true`` included ("the default").
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import pytest

from pytest_asiai.config.matrix import Case

Value = float | bool


@dataclass(frozen=True, slots=True)
class Threshold:
    """A resolved threshold and where it came from (default, ini, engines.toml, command line)."""

    value: Value | None
    source: str

    @classmethod
    def resolved(cls, value: Value | None, default: Value | None, source: str) -> Threshold:
        """``true`` means the default for a numeric gate (a yes/no gate keeps ``true``)."""
        if value is True and not isinstance(default, bool):
            value = default
        return cls(value, source)

    @property
    def disabled(self) -> bool:
        return self.value is False

    def number(self) -> float | None:
        """The numeric limit; None when there is none (``true`` of a yes/no gate, no default)."""
        if isinstance(self.value, bool):
            return None
        return None if self.value is None else float(self.value)


def meets(value: float, limit: float, at_least: bool) -> tuple[bool, str]:
    """Whether a measured value meets its threshold, and the sign a reason shows (≥ or < ; ≤ or >)."""
    ok = value >= limit if at_least else value <= limit
    return ok, (("≥" if ok else "<") if at_least else ("≤" if ok else ">"))


def parse_value(text: str) -> Value:
    """``true``/``false`` or a number (a trailing ``%`` or unit suffix ``ms``/``mb`` is accepted)."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for suffix in ("%", "ms", "mb"):
        if low.endswith(suffix):
            low = low[: -len(suffix)]
            break
    return float(low)


@cache
def known_names() -> tuple[str, ...]:
    """Every threshold name a gate reads: the phase gates', the burst, endurance and tool-call gates'."""
    # They import this module, hence the late imports.
    from pytest_asiai.burst import gates as burst
    from pytest_asiai.endurance import gates as endurance
    from pytest_asiai.gates import phases
    from pytest_asiai.toolcall import gates as toolcall

    return tuple(dict.fromkeys([*phases.DEFAULTS, *burst.GATES, *endurance.GATES, *toolcall.GATES]))


def threshold_problem(name: str, value: object) -> str | None:
    """Why ``name = value`` cannot be a threshold (unknown name, inf/nan, negative), or None.

    A misspelt name would otherwise be ignored silently and the gate would keep its default.
    """
    if name not in known_names():
        close = difflib.get_close_matches(name, known_names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown gate {name!r} ({hint}known: {', '.join(known_names())})"
    if isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        return f"{value!r} is not a number or true/false"
    if not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if value < 0:
        return f"{value!r}: a threshold is never negative"
    return None


def parse_overrides(items: Iterable[str], where: str) -> dict[str, Value]:
    """Parse ``NAME=VALUE`` items; a malformed one is a usage error naming it."""
    out: dict[str, Value] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise pytest.UsageError(f"{where}: {item!r}: expected NAME=VALUE")
        try:
            value = parse_value(raw)
        except ValueError:
            raise pytest.UsageError(f"{where}: {item!r}: {raw!r} is not a number or true/false") from None
        problem = threshold_problem(name.strip(), value)
        if problem is not None:
            raise pytest.UsageError(f"{where}: {item!r}: {problem}")
        out[name.strip()] = value
    return out


class Thresholds:
    """Resolves a gate's threshold for a case."""

    def __init__(self, ini: Mapping[str, Value], cli: Mapping[str, Value]) -> None:
        self.ini = dict(ini)
        self.cli = dict(cli)

    def get(self, case: Case, name: str, default: Value | None) -> Value | None:
        """The threshold for ``name`` on ``case``; ``None`` means the gate has no threshold."""
        if name in self.cli:
            return self.cli[name]
        if name in case.gates:
            return case.gates[name]
        return self.ini.get(name, default)

    def resolve(self, case: Case, name: str, default: Value | None) -> Threshold:
        """The threshold of ``name`` on ``case`` and its source, ``true`` resolved to the default."""
        return Threshold.resolved(self.get(case, name, default), default, self.source(case, name))

    def source(self, case: Case, name: str) -> str:
        """Where the threshold came from, for reports."""
        if name in self.cli:
            return "command line"
        if name in case.gates:
            return "engines.toml"
        return "ini" if name in self.ini else "default"


class CaseThresholds:
    """The session's thresholds seen from one case (command line, engines.toml ``gates``, ini, default)."""

    def __init__(self, thresholds: Thresholds, case: Case) -> None:
        self._thresholds = thresholds
        self._case = case

    def get(self, name: str, default: Value | None) -> Value | None:
        """The threshold for ``name``; ``None`` means the gate has no threshold."""
        return self._thresholds.get(self._case, name, default)

    def source(self, name: str) -> str:
        """Where the threshold came from, for reports."""
        return self._thresholds.source(self._case, name)

    def resolve(self, name: str, default: Value | None) -> Threshold:
        """The threshold of ``name`` and its source, ``true`` resolved to the default."""
        return self._thresholds.resolve(self._case, name, default)

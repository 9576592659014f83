"""Gate verdicts, pure: the one declaration of a built-in gate, its outcomes, and its report entry.

Every built-in gate of every suite (the phase gates of :mod:`pytest_asiai.gates.phases`, burst,
tool calls, endurance) is a :class:`Gate` and judges to a :class:`GateResult`; the result's
:meth:`GateResult.to_dict` is the one shape of ``results.gates.<key>`` in the JSON report
(``pytest_asiai/schemas/report.schema.json``). Nothing here reads the session or writes results:
recording and the test outcome are :mod:`pytest_asiai.gates.path`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_asiai.gates.thresholds import Threshold, meets

PASS, FAIL = "pass", "fail"
NOT_MEASURED, NOT_APPLICABLE, NO_THRESHOLD, DISABLED = "not measured", "not applicable", "no threshold", "disabled"
OK, RESERVE, ELIMINATED = "ok", "reserve", "eliminated"
"""A gate's tier effect (``GateResult.tier``), the one the tier table reads (:mod:`pytest_asiai.report.tiers`)."""


@dataclass(frozen=True, slots=True)
class Gate:
    """A built-in gate: its threshold's name and default, and how its value reads in a reason.

    The phase gates (:mod:`pytest_asiai.gates.phases`) have judges of their own (tier bands, several
    thresholds); the suites' gates are judged by :func:`judge_value` alone, or nearly.
    """

    name: str
    default: float | bool | None
    unit: str | None
    """The unit the report gives the value (None: a yes/no value)."""
    at_least: bool = True
    """True: the value must reach the threshold; False: it must not exceed it."""
    what: str = ""
    """What is measured, for reasons (``clean tool-call turns``)."""
    show: str = ""
    """How a measured value reads (default ``"{what}: {value:g} {unit}"``)."""
    unmeasured: str = ""
    """Why the value can be missing (default ``"no {what} were measured"``)."""
    cite_source: bool = False
    """End a pass/fail reason with where the threshold came from (``(default)``)."""
    reads: tuple[str, ...] = ()
    """Where the value sits in the suite's result (``("summary", "clean_pct")``)."""
    part: str = ""
    """Which measurement of the suite the gate reads (an endurance scenario)."""

    def read(self, result: Mapping[str, Any]) -> float | None:
        """The gate's number in a suite's result (at ``reads``); None when it is not there."""
        value: Any = result
        for key in self.reads:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return value

    def shown(self, value: float) -> str:
        """The measured value as a reason shows it."""
        return (self.show or "{what}: {value:g} {unit}").format(what=self.what, value=value, unit=self.unit or "")

    def why_unmeasured(self) -> str:
        """Why a reason says "not measured"."""
        return self.unmeasured or (f"no {self.what} were measured" if self.what else "not measured")


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's verdict on one case, as it lands in ``results.gates.<name>`` of the report."""

    name: str
    outcome: str
    reason: str
    value: float | int | None = None
    unit: str | None = None
    threshold: float | bool | None = None
    threshold_source: str | None = None
    tier: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    gate: str | None = None
    """The declared gate when ``name`` is a report key with a parameter (``toolcall_clean[basic]``)."""
    label: str | None = None
    """How the test outcome names the verdict when not by ``name``: the gate alone, when the reason
    already says where (``burst_valid: burst of 30: …``)."""

    @property
    def passed(self) -> bool:
        return self.outcome == PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate or self.name,
            "source": "built-in",
            "value": self.value,
            "unit": self.unit,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "outcome": self.outcome,
            "reason": self.reason,
            "tier": self.tier,
            "details": dict(self.details),
        }


def unmeasured(name: str, outcome: str, reason: str, th: Threshold | None = None, **details: Any) -> GateResult:
    """A verdict with no value (not measured, not applicable, no threshold, disabled)."""
    return GateResult(
        name,
        outcome,
        reason,
        threshold=th.value if th else None,
        threshold_source=th.source if th else None,
        details=details,
    )


def _off(name: str, th: Threshold) -> str:
    return f"disabled ({name}=false from the {th.source})"


def disabled(name: str, th: Threshold) -> GateResult:
    """The verdict of a phase gate set to ``false``."""
    return unmeasured(name, DISABLED, _off(name, th), th)


def verdict(
    gate: Gate,
    th: Threshold,
    outcome: str,
    reason: str,
    value: float | None = None,
    *,
    key: str | None = None,
    tier: str | None = None,
    details: Mapping[str, Any] | None = None,
    where: str = "",
) -> GateResult:
    """A declared gate's verdict, reported under ``key`` (default the gate's name); a ``where``
    prefixes the reason (``burst of 30``), and then the test outcome names the gate alone."""
    return GateResult(
        key or gate.name,
        outcome,
        f"{where}: {reason}" if where else reason,
        value,
        gate.unit,
        th.value,
        th.source,
        tier,
        dict(details or {}),
        gate.name,
        gate.name if where else None,
    )


def judge_value(
    gate: Gate,
    value: float | None,
    th: Threshold,
    *,
    key: str | None = None,
    where: str = "",
    failures: Sequence[str] = (),
    details: Mapping[str, Any] | None = None,
) -> GateResult:
    """The verdict on one measured value against its threshold (reported under ``key``, default the name).

    ``false`` disables the gate. A value that was not measured is never a pass: it fails when
    requests failed (``failures``: the engine broke the task) and is "not measured" otherwise; with
    no threshold the value is only recorded. ``where`` prefixes the reason (``burst of 30``).
    """
    common: dict[str, Any] = {"key": key, "details": details, "where": where}
    if th.disabled:
        return verdict(gate, th, DISABLED, _off(gate.name, th), value, **common)
    if value is None:
        if failures:
            reason = f"{gate.what} not measured: " + "; ".join(failures[:3])
            return verdict(gate, th, FAIL, reason, **common)
        return verdict(gate, th, NOT_MEASURED, gate.why_unmeasured(), **common)
    limit = th.number()
    if limit is None:
        reason = f"{gate.shown(value)}; set one with --asiai-gate {gate.name}=VALUE"
        return verdict(gate, th, NO_THRESHOLD, reason, value, **common)
    passed, sign = meets(value, limit, gate.at_least)
    reason = f"{gate.shown(value)} {sign} {limit:g}" + (f" ({th.source})" if gate.cite_source else "")
    return verdict(gate, th, PASS if passed else FAIL, reason, value, **common)


def listing(items: Sequence[str], limit: int = 4) -> str:
    """The first few items of a list for a one-line reason, and how many more there are."""
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more

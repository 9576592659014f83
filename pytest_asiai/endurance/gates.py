"""The endurance gates: what a scenario's figures must reach, judged and reported per gate.

The figures come from :mod:`pytest_asiai.endurance.suite` (each scenario runs once per session);
each gate is a :class:`~pytest_asiai.gates.verdict.Gate` whose ``part`` is the scenario it reads,
judged by the shared :func:`~pytest_asiai.gates.verdict.judge_value` (derailment and resume have
their own reading) and settled on the one gate path, under ``results.gates.<gate>`` of the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_asiai.gates.path import settle
from pytest_asiai.gates.thresholds import Threshold
from pytest_asiai.gates.verdict import FAIL, NOT_MEASURED, PASS, Gate, GateResult, judge_value, verdict

if TYPE_CHECKING:
    from pytest_asiai.endurance.suite import Endurance


def _gate(
    name: str, part: str, reads: tuple[str, ...], default: float | bool, unit: str | None, doc: str, **how: Any
) -> Gate:
    show = f"{doc} {{value:g}} {unit or ''}".rstrip()
    return Gate(name, default, unit, show=show, reads=reads, part=part, **how)


GATES: Mapping[str, Gate] = {
    g.name: g
    for g in (
        _gate("endurance_clean_pct", "straight", ("summary", "clean_pct"), 80.0, "%",
              "clean calls over the straight trajectory"),
        _gate("endurance_derail_turn", "straight", ("summary", "derailment_turn"), 60.0, "turn",
              "no derailment before this turn"),
        _gate("endurance_persistence_pct", "straight", ("persistence", "probe_pct"), 100.0, "%",
              "persistence probes that edited the current line",
              unmeasured="no persistence probe was asked (no edit step before a probe turn)"),
        _gate("endurance_lost_edits", "straight", ("persistence", "lost_edits"), 0.0, "edits",
              "earlier edits undone later", at_least=False),
        _gate("endurance_prefix_reuse", "straight", ("cache", "prefix_reuse_median"), 0.5, "fraction",
              "median share of the last prompt reused", unmeasured="the engine reported no cached tokens"),
        _gate("endurance_recovery_pct", "malformed", ("recovery", "recovery_pct"), 50.0, "%",
              "broken calls repaired by the very next call", unmeasured="no broken call had a following turn"),
        _gate("endurance_resume_ok", "interrupt", ("interruption", "engine_recovered"), True, None,
              "the engine serves the resumed turn"),
        _gate("endurance_resume_cached_ratio", "interrupt", ("interruption", "resume_cached_ratio"), 0.5,
              "fraction", "prompt cached on resume", unmeasured="the resumed turn reported no cached tokens"),
    )
}  # fmt: skip


def judge(name: str, result: Mapping[str, Any], th: Threshold) -> GateResult:
    """The verdict of an endurance gate on its scenario's result (never a pass when not measured)."""
    gate = GATES[name]
    where = f"{gate.part} scenario"
    details = {"scenario": gate.part, "turns": len(result.get("turns") or [])}
    if not th.disabled and not result.get("turns"):
        reason = f"no turn was measured ({result.get('stop_reason')})"
        return verdict(gate, th, NOT_MEASURED, reason, details=details, where=where)
    if not th.disabled and name == "endurance_derail_turn":
        return _judge_derail(gate, result, th, where, details)
    if not th.disabled and name == "endurance_resume_ok":
        return _judge_resume(gate, result, th, where, details)
    return judge_value(gate, gate.read(result), th, where=where, details=details)


def _judge_derail(
    gate: Gate, result: Mapping[str, Any], th: Threshold, where: str, details: dict[str, Any]
) -> GateResult:
    summary = result["summary"]
    turn = summary["derailment_turn"]
    limit = th.number()
    if limit is None:  # no number given: the declared default
        limit = Threshold(gate.default, th.source).number() or 0.0
    if turn is None:
        return verdict(gate, th, PASS, f"never derailed in {summary['turns']} turns", details=details, where=where)
    ok = turn >= limit
    first = summary["first_failure_turn"]
    reason = f"derailed at turn {turn} (first failure at turn {first}) {'≥' if ok else '<'} {limit:g}"
    return verdict(gate, th, PASS if ok else FAIL, reason, turn, details=details, where=where)


def _judge_resume(
    gate: Gate, result: Mapping[str, Any], th: Threshold, where: str, details: dict[str, Any]
) -> GateResult:
    info = result.get("interruption")
    if info is None:
        reason = "the trajectory stopped before the interruption turn"
        return verdict(gate, th, NOT_MEASURED, reason, details=details, where=where)
    if info.get("engine_recovered"):
        reason = f"the engine served turn {info['turn']} again after the cancelled stream"
        return verdict(gate, th, PASS, reason, True, details=details, where=where)
    reason = f"the resumed turn {info['turn']} failed: {info['resume_error']}"
    return verdict(gate, th, FAIL, reason, False, details=details, where=where)


def check(endurance: Endurance, name: str) -> GateResult:
    """Judge an endurance gate on its scenario (run once per session), record it, then pass, fail or skip."""
    gate = GATES[name]
    result = endurance.scenario(gate.part)
    th = endurance.context.thresholds.resolve(name, gate.default)
    return settle(endurance.context, judge(name, result, th))

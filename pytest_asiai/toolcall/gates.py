"""The agent-quality gates: clean tool calls, empty-object bugs, brief sections, ablation errors.

The measurements come from :mod:`pytest_asiai.toolcall.core`, :mod:`pytest_asiai.toolcall.ablation`
and :mod:`pytest_asiai.toolcall.instruct`; each gate is a :class:`~pytest_asiai.gates.verdict.Gate`
judged by the shared :func:`~pytest_asiai.gates.verdict.judge_value` (a value not measured because
requests failed is a failure) and settled on the one gate path under ``results.gates.<gate>[<param>]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_asiai.gates.path import GateContext, settle
from pytest_asiai.gates.verdict import Gate, GateResult, judge_value

__all__ = ["GATES", "check"]

GATES: Mapping[str, Gate] = {
    g.name: g
    for g in (
        Gate("toolcall_clean", 90.0, "%", what="clean tool-call turns", cite_source=True),
        Gate("toolcall_empty_object", 0.0, "calls", at_least=False, what="empty-object bugs", cite_source=True),
        Gate("instruct_sections", 100.0, "%", what="brief sections delivered", cite_source=True),
        Gate("thinking_ablation_errors", 0.0, "requests", at_least=False, what="failed requests", cite_source=True),
    )
}


def check(
    context: GateContext,
    name: str,
    param: str,
    value: float | None,
    failures: Sequence[str],
    **details: Any,
) -> GateResult:
    """Judge a tool-call gate on one measurement (``param``: the suite, cell or setting), record it under
    ``results.gates.<name>[<param>]``, then pass, fail or skip."""
    gate = GATES[name]
    th = context.thresholds.resolve(name, gate.default)
    return settle(context, judge_value(gate, value, th, key=f"{name}[{param}]", failures=failures, details=details))

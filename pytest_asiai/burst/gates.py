"""The burst gates: validity and p95 latency of one burst size, judged and reported per size.

The measurements come from :mod:`pytest_asiai.burst.runner` (each size runs once per session); each
gate is a :class:`~pytest_asiai.gates.verdict.Gate` judged by the shared
:func:`~pytest_asiai.gates.verdict.judge_value` and settled on the one gate path
(:mod:`pytest_asiai.gates.path`), under ``results.gates["<gate>[n<size>]"]`` of the JSON report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_asiai.gates.path import settle
from pytest_asiai.gates.thresholds import Threshold
from pytest_asiai.gates.verdict import Gate, GateResult, judge_value

if TYPE_CHECKING:
    from pytest_asiai.burst.runner import Burst

GATES: Mapping[str, Gate] = {
    g.name: g
    for g in (
        Gate(
            "burst_valid", 80.0, "%", show="{value:.1f} % valid answers",
            unmeasured="no successful call, so no % valid answers", reads=("valid_pct",),
        ),
        Gate(
            "burst_p95_ms", None, "ms", at_least=False, show="{value:.1f} ms p95 latency",
            unmeasured="no successful call, so no ms p95 latency", reads=("total_ms", "p95"),
        ),
    )
}  # fmt: skip
"""Valid answers in % of all calls (failed calls count as invalid), at least 80; p95 latency in ms
over the successful calls (no default: an opt-in gate)."""


def judge(name: str, result: Mapping[str, Any], th: Threshold) -> GateResult:
    """The verdict of a burst gate on one size's result (never a pass when not measured)."""
    gate = GATES[name]
    size = result.get("size")
    return judge_value(
        gate,
        gate.read(result),
        th,
        key=f"{name}[n{size}]",
        where=f"burst of {size}",
        details={"burst_size": size, "calls": result.get("calls")},
    )


def check(burst: Burst, name: str, size: int) -> GateResult:
    """Judge a burst gate on the burst of ``size`` calls, record it, then pass, fail or skip."""
    result = burst.result(size)
    th = burst.context.thresholds.resolve(name, GATES[name].default)
    return settle(burst.context, judge(name, result, th))

"""The one path of a built-in gate after its pure verdict: record it, then conclude the test.

judge (a pure function: :mod:`pytest_asiai.gates.verdict`, :mod:`pytest_asiai.gates.phases`, the
suites' ``gates`` modules) → :func:`record` (``results.gates.<key>`` of the JSON report) →
:func:`conclude` (fail, skip with the reason, or pass). :func:`settle` does both.
"""

from __future__ import annotations

from typing import Any, Protocol

import pytest

from pytest_asiai.gates.thresholds import CaseThresholds
from pytest_asiai.gates.verdict import FAIL, PASS, GateResult


class Recorder(Protocol):
    """Where a case's results go: its context (pytest_asiai/runtime/context.py ``CaseContext``)."""

    def record_result(self, section: str, key: str, value: dict[str, Any]) -> None: ...


class GateContext(Recorder, Protocol):
    """A case's context as a suite's gate sees it: its thresholds, and where its results go."""

    @property
    def thresholds(self) -> CaseThresholds: ...


def record(context: Recorder, result: GateResult) -> GateResult:
    """Report a verdict under ``results.gates.<result.name>`` of the case."""
    context.record_result("gates", result.name, result.to_dict())
    return result


def conclude(result: GateResult) -> None:
    """Turn a verdict into the test outcome: fail, skip (with the reason) or pass."""
    label = result.label or result.name
    if result.outcome == FAIL:
        pytest.fail(f"{label}: {result.reason}", pytrace=False)
    if result.outcome != PASS:
        pytest.skip(f"{label} {result.outcome}: {result.reason}")


def settle(context: Recorder, result: GateResult) -> GateResult:
    """Record a verdict, then conclude the test with it (a pass returns the verdict)."""
    conclude(record(context, result))
    return result

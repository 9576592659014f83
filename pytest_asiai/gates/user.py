"""User-written gates: a test of a case that requests ``agentic`` reports as a gate (README, "Writing gates").

Its outcome becomes ``results.gates.<test name>`` with ``source: "user"``, the metrics it recorded and
a tier effect (a pass is ``ok``, a failure ``eliminated``); the plugin calls :func:`user_gate_event`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pytest_asiai.gates.verdict import ELIMINATED, FAIL, NOT_MEASURED, OK, PASS

#: Suites with their own report sections: their tests are not gates even when they use ``agentic``.
NOT_GATES = ("burst", "toolcall", "endurance")
#: Parameters of the built-in suites (phases, gates, regression checks): their tests are not user gates.
BUILT_IN_PARAMS = frozenset({"phase_name", "gate_name", "asiai_metric"})
_OUTCOMES = {"passed": PASS, "failed": FAIL, "skipped": NOT_MEASURED}


def user_gate_key(item: pytest.Item) -> str | None:
    """A user gate's report key (``test_decode_floor``, plus any extra parameters), or None.

    A user gate is any test of a case that requests ``agentic`` and is neither a phase test, a
    built-in gate, a regression check, nor part of a suite with its own report section.
    """
    callspec = getattr(item, "callspec", None)
    if callspec is None or "asiai_case" not in callspec.params:
        return None
    if "agentic" not in getattr(item, "fixturenames", ()) or BUILT_IN_PARAMS & set(callspec.params):
        return None
    if any(item.get_closest_marker(m) for m in NOT_GATES):
        return None
    case_id = callspec.params["asiai_case"].id
    extra = "-".join(p for p in str(callspec.id).split(case_id, 1) if p).strip("-")
    name = getattr(item, "originalname", None) or item.name
    return f"{name}[{extra}]" if extra else str(name)


def _failure_line(report: pytest.TestReport) -> str | None:
    """The assertion or skip message (not the ``file:line: AssertionError`` locator)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).strip().splitlines()[0] if str(crash.message).strip() else None
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    return None


def user_gate_event(
    item: pytest.Item, report: pytest.TestReport, events: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The report event of a user gate's outcome, with the metrics it recorded, or None."""
    key = user_gate_key(item)
    if key is None:
        return None
    metrics = {e["name"]: e["value"] for e in events if e.get("type") == "metric"}
    outcome = FAIL if getattr(report, "wasxfail", None) is not None else _OUTCOMES.get(report.outcome, report.outcome)
    value = {
        "gate": key,
        "source": "user",
        "nodeid": item.nodeid,
        "value": None,
        "threshold": None,
        "outcome": outcome,
        "reason": _failure_line(report) or ("passed" if outcome == PASS else None),
        "tier": {PASS: OK, FAIL: ELIMINATED}.get(outcome),
        "metrics": metrics,
    }
    return {"type": "result", "section": "gates", "key": key, "value": value}

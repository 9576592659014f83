"""The phase gates' entry: gather a case's inputs, judge one gate, record it, conclude the test.

``evaluate``, ``check`` and ``conclude`` are the names users' own gates call (README, "Writing
gates"); ``suites/test_gates.py`` calls :func:`check` once per case and gate. The verdicts are pure
(:mod:`pytest_asiai.gates.phases`, :mod:`pytest_asiai.gates.reuse`); the path after them is
:mod:`pytest_asiai.gates.path`.
"""

from __future__ import annotations

import pytest

from pytest_asiai.agentic.results import Agentic
from pytest_asiai.config.stash import session_of
from pytest_asiai.gates.inputs import gather, prefix_names, run_phase_names, samplers_of
from pytest_asiai.gates.path import conclude, record
from pytest_asiai.gates.phases import EVALUATORS, GATE_NAMES, Resolve, gate_ttft, resolver
from pytest_asiai.gates.reuse import gate_reuse
from pytest_asiai.gates.verdict import GateResult

__all__ = ["check", "conclude", "evaluate", "judge"]


def judge(agentic: Agentic, name: str, resolve: Resolve) -> GateResult:
    """The verdict of one phase gate on a case, running the phases it reads if needed."""
    if name not in GATE_NAMES:
        raise KeyError(f"unknown gate {name!r}; gates are {', '.join(GATE_NAMES)}")
    samplers = samplers_of(agentic)
    if name == "ttft":
        return gate_ttft(gather(agentic, ["warm"], samplers), resolve)
    if name == "reuse":
        names = prefix_names(agentic)
        return gate_reuse(gather(agentic, ["cold", *names], samplers), resolve, names)
    return EVALUATORS[name](gather(agentic, run_phase_names(agentic), samplers), resolve)


def evaluate(config: pytest.Config, agentic: Agentic, name: str) -> GateResult:
    """Gather the gate's inputs (running phases as needed), judge them and report the result."""
    session = session_of(config)
    resolve = resolver(session.thresholds, agentic.case)
    return record(session.context(agentic.case), judge(agentic, name, resolve))


def check(config: pytest.Config, agentic: Agentic, name: str) -> GateResult:
    """Evaluate, report and conclude one gate: what ``suites/test_gates.py`` calls."""
    result = evaluate(config, agentic, name)
    conclude(result)
    return result

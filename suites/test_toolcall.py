"""Agent quality beyond speed: tool-call cleanliness, the thinking trade-off and instruction following.

Each measurement runs once per case and session, whichever test asks first, and lands in the JSON
report under ``results.toolcall.<key>`` (``basic``, ``stress``, ``recovery``, ``thinking_ablation``,
``thinking_probes``, ``instruct``) with its per-turn scores; the gates report under
``results.gates.<gate>[<param>]``. A gate whose input was not measured is skipped with the reason,
never passed; one whose requests failed fails with the engine's message.

Tests (ids like ``test_toolcall_clean[llamacpp-smollm2-135m-mtp_off-basic]``):

* ``test_toolcall_clean`` / ``test_toolcall_empty_object``: the basic and stress suites against
  ``toolcall_clean`` (default ≥ 90 %) and ``toolcall_empty_object`` (default 0);
* ``test_toolcall_recovery``: a failing tool result, then "Fix it."; fails only when a request failed;
* ``test_thinking_ablation``: the stress load per thinking cell, against ``thinking_ablation_errors``
  (failed requests, default 0: thinking on without preserve broke the seed panel's engine);
* ``test_thinking_probe``: thinking off is honoured; no ``<think>`` tag leaks into the answer;
* ``test_instruct_sections``: the research brief with thinking off and on, against
  ``instruct_sections`` (default 100 %).

Thresholds: ``--asiai-gate toolcall_clean=80`` (ini ``asiai_gates``, engines.toml ``gates``), and
``NAME=false`` disables a gate. The prompt profile sets the workload: ``full`` is asiai's, ``smoke``
plays three turns per scenario with small output budgets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_asiai.config.stash import session_of
from pytest_asiai.gates.core import conclude
from pytest_asiai.toolcall import ablation, instruct
from pytest_asiai.toolcall import core as toolcall
from pytest_asiai.toolcall.tools import BASIC, RECOVERY, STRESS

pytestmark = pytest.mark.toolcall

SCENARIOS = {"basic": BASIC, "stress": STRESS}
THINKING = {"thinking_off": False, "thinking_on": True}


class Lab:
    """One case's agent-quality measurements, each taken once and recorded in the report."""

    def __init__(self, config: pytest.Config, engine: Any) -> None:
        self.session = session_of(config)
        self.engine = engine
        self.case = engine.case
        self.budget = toolcall.budget_for(self.session.settings.profile_for(self.case.profile))
        self.results: dict[str, Any] = {}
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = toolcall.client_for(self.engine)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _once(self, key: str, run: Callable[[], Any]) -> Any:
        if key not in self.results:
            self.results[key] = run()
        return self.results[key]

    def _record(self, key: str, value: dict[str, Any]) -> None:
        self.session.record_result(self.case.id, "toolcall", key, value)

    def conversation(self, scenario: Any) -> toolcall.Conversation:
        return toolcall.Conversation(
            self.client,
            model=self.case.model_id,
            system=scenario.system,
            history=scenario.history,
            fields=toolcall.request_fields(self.engine),
        )

    # -- measurements ----------------------------------------------------------------------------
    def suite(self, name: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            scenario = SCENARIOS[name]
            turns = toolcall.run_scenario(
                self.conversation(scenario), scenario, max_tokens=self.budget.max_tokens, turns=self.budget.turns
            )
            result = {"suite": name, "max_tokens": self.budget.max_tokens, **toolcall.summarize(turns)}
            self._record(name, result)
            return result

        return self._once(name, run)

    def recovery(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            outcome = toolcall.run_recovery(
                self.conversation(RECOVERY), RECOVERY, max_tokens=self.budget.max_tokens, observe=self.budget.observe
            )
            result = outcome.to_dict()
            self._record("recovery", result)
            return result

        return self._once("recovery", run)

    def cell(self, name: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            setting = ablation.cell(name)
            turns = ablation.run_cell(
                self.client, self.engine, setting, max_tokens=self.budget.max_tokens, turns=self.budget.turns
            )
            result = ablation.cell_summary(setting, turns)
            cells = {n: self.results[f"cell:{n}"] for n in ablation.CELL_NAMES if f"cell:{n}" in self.results}
            self._record("thinking_ablation", {"load": ablation.LOAD.name, "cells": {**cells, name: result}})
            return result

        return self._once(f"cell:{name}", run)

    def probe(self, name: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            result = ablation.probe(self.client, self.engine, name, max_tokens=self.budget.probe_max_tokens).to_dict()
            probes = {n: self.results[f"probe:{n}"] for n in ablation.PROBE_NAMES if f"probe:{n}" in self.results}
            self._record("thinking_probes", {**probes, name: result})
            return result

        return self._once(f"probe:{name}", run)

    def brief(self, setting: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            task = instruct.RESEARCH_BRIEF
            fields = toolcall.request_fields(self.engine, thinking=THINKING[setting])
            conversation = instruct.open_brief(self.client, model=self.case.model_id, task=task, fields=fields)
            outcome = instruct.run_brief(
                conversation,
                task,
                max_tokens=self.budget.brief_max_tokens,
                rounds=self.budget.brief_rounds,
                thinking=THINKING[setting],
            )
            result = outcome.to_dict()
            runs = {n: self.results[f"brief:{n}"] for n in THINKING if f"brief:{n}" in self.results}
            self._record("instruct", {"task": task.name, "runs": {**runs, setting: result}})
            return result

        return self._once(f"brief:{setting}", run)

    # -- gates -----------------------------------------------------------------------------------
    def gate(self, name: str, param: str, value: float | None, failures: list[str], **details: Any) -> None:
        spec = toolcall.GATES[name]
        key = f"{name}[{param}]"
        threshold = self.session.thresholds.get(self.case, name, spec.default)
        source = self.session.thresholds.source(self.case, name)
        verdict = toolcall.judge(spec, key, value, threshold, source, failures=failures, details=details)
        self.session.record_result(self.case.id, "gates", key, verdict.to_dict())
        conclude(verdict)


def _failures(result: dict[str, Any]) -> list[str]:
    """One line per failed request: ``turn 2: http: HTTP 500: …``."""
    return [f"turn {e['turn']}: {e['kind']}: {e['error']}" for e in result["errors"]]


@pytest.fixture(scope="session")
def _labs():
    labs: dict[str, Lab] = {}
    yield labs
    for lab in labs.values():
        lab.close()


@pytest.fixture
def lab(request, asiai_case, _labs) -> Lab:
    """The case's agent-quality measurements (one :class:`Lab` per case and session)."""
    if asiai_case.replay is not None:
        pytest.skip(f"toolcall: replayed case {asiai_case.id} holds no tool-call conversation")
    if asiai_case.id not in _labs:
        _labs[asiai_case.id] = Lab(request.config, request.getfixturevalue("engine"))
    return _labs[asiai_case.id]


# ---------------------------------------------------------------------------------------- tests


@pytest.mark.gate
@pytest.mark.parametrize("suite", SCENARIOS)
def test_toolcall_clean(lab, suite):
    result = lab.suite(suite)
    lab.gate("toolcall_clean", suite, result["pct_clean"], _failures(result))


@pytest.mark.gate
@pytest.mark.parametrize("suite", SCENARIOS)
def test_toolcall_empty_object(lab, suite):
    result = lab.suite(suite)
    lab.gate(
        "toolcall_empty_object",
        suite,
        result["empty_object_bug"],
        _failures(result),
        edit_turns_empty_object_bug=result["edit_turns_empty_object_bug"],
    )


def test_toolcall_recovery(lab):
    result = lab.recovery()
    assert result["recovered"] is not None, "recovery not measured: " + "; ".join(_failures(result))


@pytest.mark.gate
@pytest.mark.parametrize("cell", ablation.CELL_NAMES)
def test_thinking_ablation(lab, cell):
    result = lab.cell(cell)
    failed = len(result["failed_turns"])
    lab.gate("thinking_ablation_errors", cell, failed, _failures(result), failed_turns=result["failed_turns"])


@pytest.mark.gate
@pytest.mark.parametrize("probe", ablation.PROBE_NAMES)
def test_thinking_probe(lab, probe):
    result = lab.probe(probe)
    assert result["passed"] is not None, f"{probe}: {result['reason']}"
    assert result["passed"], f"{probe}: {result['reason']}"


@pytest.mark.gate
@pytest.mark.parametrize("thinking", THINKING)
def test_instruct_sections(lab, thinking):
    result = lab.brief(thinking)
    lab.gate("instruct_sections", thinking, result["pct_sections"], _failures(result), sections=result["sections"])

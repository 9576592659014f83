"""The tool-call suite's per-case object: each measurement taken once per case and session, then reported.

The ``toolcall`` fixture (pytest_asiai/runtime/fixtures.py) returns the case's :class:`Lab` from its
context (pytest_asiai/runtime/context.py); the tests in suites/test_toolcall.py only ask it for a
measurement and judge it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_asiai.toolcall import ablation, instruct, recovery, summary
from pytest_asiai.toolcall import core as toolcall
from pytest_asiai.toolcall import gates as toolcall_gates
from pytest_asiai.toolcall.tools import BASIC, RECOVERY, STRESS
from pytest_asiai.wire.client import StreamingClient

if TYPE_CHECKING:
    from pytest_asiai.runtime.context import CaseContext

SCENARIOS = {"basic": BASIC, "stress": STRESS}
THINKING = {"thinking_off": False, "thinking_on": True}


class Lab:
    """One case's agent-quality measurements, each taken once and recorded in the report."""

    def __init__(self, context: CaseContext) -> None:
        self.context = context
        self.engine = context.engine
        self.case = context.case
        self.budget = toolcall.budget_for(context.settings.profile_for(self.case.profile))
        self.results: dict[str, dict[str, Any]] = {}

    @property
    def client(self) -> StreamingClient:
        """The case's client (its context's: closed with the session)."""
        return self.context.client()

    def _once(self, key: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if key not in self.results:
            self.results[key] = run()
        return self.results[key]

    def _record(self, key: str, value: dict[str, Any]) -> None:
        self.context.record_result("toolcall", key, value)

    def conversation(self, scenario: Any) -> toolcall.Conversation:
        return toolcall.Conversation(
            self.client,
            model=self.case.model_id,
            system=scenario.system,
            history=scenario.history,
            fields=self.context.requests.fields(),
        )

    # -- measurements ----------------------------------------------------------------------------
    def suite(self, name: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            scenario = SCENARIOS[name]
            turns = toolcall.run_scenario(
                self.conversation(scenario), scenario, max_tokens=self.budget.max_tokens, turns=self.budget.turns
            )
            result = {"suite": name, "max_tokens": self.budget.max_tokens, **summary.summarize(turns)}
            self._record(name, result)
            return result

        return self._once(name, run)

    def recovery(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            outcome = recovery.run_recovery(
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
            fields = self.context.requests.fields(thinking=THINKING[setting])
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
        toolcall_gates.check(self.context, name, param, value, failures, **details)


def failures(result: dict[str, Any]) -> list[str]:
    """One line per failed request: ``turn 2: http: HTTP 500: …``."""
    return [f"turn {e['turn']}: {e['kind']}: {e['error']}" for e in result["errors"]]

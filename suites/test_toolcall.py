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

import pytest

from pytest_asiai.toolcall import ablation
from pytest_asiai.toolcall.lab import SCENARIOS, THINKING, failures

pytestmark = pytest.mark.toolcall


# ---------------------------------------------------------------------------------------- tests


@pytest.mark.gate
@pytest.mark.parametrize("suite", SCENARIOS)
def test_toolcall_clean(toolcall, suite):
    result = toolcall.suite(suite)
    toolcall.gate("toolcall_clean", suite, result["pct_clean"], failures(result))


@pytest.mark.gate
@pytest.mark.parametrize("suite", SCENARIOS)
def test_toolcall_empty_object(toolcall, suite):
    result = toolcall.suite(suite)
    toolcall.gate(
        "toolcall_empty_object",
        suite,
        result["empty_object_bug"],
        failures(result),
        edit_turns_empty_object_bug=result["edit_turns_empty_object_bug"],
    )


def test_toolcall_recovery(toolcall):
    result = toolcall.recovery()
    assert result["recovered"] is not None, "recovery not measured: " + "; ".join(failures(result))


@pytest.mark.gate
@pytest.mark.parametrize("cell", ablation.CELL_NAMES)
def test_thinking_ablation(toolcall, cell):
    result = toolcall.cell(cell)
    failed = len(result["failed_turns"])
    toolcall.gate("thinking_ablation_errors", cell, failed, failures(result), failed_turns=result["failed_turns"])


@pytest.mark.gate
@pytest.mark.parametrize("probe", ablation.PROBE_NAMES)
def test_thinking_probe(toolcall, probe):
    result = toolcall.probe(probe)
    assert result["passed"] is not None, f"{probe}: {result['reason']}"
    assert result["passed"], f"{probe}: {result['reason']}"


@pytest.mark.gate
@pytest.mark.parametrize("thinking", THINKING)
def test_instruct_sections(toolcall, thinking):
    result = toolcall.brief(thinking)
    toolcall.gate("instruct_sections", thinking, result["pct_sections"], failures(result), sections=result["sections"])

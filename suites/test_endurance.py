"""The endurance suite: long sequential tool-call trajectories, ``test_endurance[<case>-<scenario>]``.

Each scenario runs once per case and session: ``straight`` (the whole trajectory: 80 calls from ~10K
to ~50K tokens in the full profile, 10 in smoke), ``interrupt`` (a stream cancelled mid-way, then
resumed) and ``malformed`` (a call cut in half before the environment sees it). The per-turn curve
lands in the JSON report under ``results.endurance.<scenario>``; a scenario test fails only when a
request failed. The gates judge the same measurements and report under ``results.gates``.

Thresholds: ``--asiai-gate endurance_clean_pct=90`` (ini ``asiai_gates``, engines.toml ``gates``).
"""

import pytest

from pytest_asiai.endurance.gates import GATES, check
from pytest_asiai.endurance.suite import SCENARIOS, failure_message

pytestmark = pytest.mark.endurance


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_endurance(endurance, scenario):
    result = endurance.scenario(scenario)
    assert result["stop_reason"] is None, failure_message(result)


@pytest.mark.gate
@pytest.mark.parametrize("gate", list(GATES))
def test_endurance_gate(endurance, gate):
    check(endurance, gate)

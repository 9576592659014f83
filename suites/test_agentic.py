"""The agentic protocol, one test per case and phase: ``test_phase[<case>-<phase>]``.

Each test runs its phase (and the phases before it, once per session) and fails with the engine's
own message when a request failed. The measurements land in the JSON report either way.
"""

import pytest

pytestmark = pytest.mark.agentic


def test_phase(agentic, phase_name):
    result = agentic.phase(phase_name)
    assert result.ok, result.failure_message()
    assert all(run.record.ttft_ms is not None for run in result.runs), "a request produced no token"

"""The agentic protocol, one test per case and phase: ``test_phase[<case>-<phase>]``.

Phases, in order: cold, warm, prefix-test-1, prefix-test-2, prefix-test-3, cold-prefix, long-context,
long-prefix, and restart-prefix (only for engines the plugin manages; deselected otherwise). Each
test runs its phase (and the phases before it, once per session) and fails with the engine's own
message when a request failed or could not be sent (a long phase that does not fit the context
says how much it needs and how much there is). The measurements land in the JSON report either
way. Whether a phase met its designed cache state is a gate's verdict, not this test's: a cold
``restart-prefix`` on llama.cpp is a finding, not a failure.
"""

import pytest

pytestmark = pytest.mark.agentic


def test_phase(agentic, phase_name):
    result = agentic.phase(phase_name)
    assert result.ok, result.failure_message()
    assert all(run.record.ttft_ms is not None for run in result.runs), "a request produced no token"
    if "text" not in getattr(agentic, "unrecorded", ()):  # asiai v1 recordings hold no answer text
        answered = [r.record.content.strip() or r.record.reasoning or r.record.tool_calls for r in result.runs]
        blank = [r.repeat for r, ok in zip(result.runs, answered, strict=True) if not ok]
        assert not blank, f"repeat(s) {blank}: the answer is only whitespace"

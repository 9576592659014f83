"""Quality gates, one test per case and gate: ``test_gate[<case>-<gate>]``.

Each gate reads the case's measurements (running the phases it needs, once per session), compares
them with its threshold and reports value, threshold, outcome and reason in the JSON report under
``results.gates``. A gate fails with the reason, or is skipped as "not measured" when its input
was not measured (a remote engine's memory, a recording without answer text), never passed.

Thresholds: ``--asiai-gate NAME=VALUE``, ini ``asiai_gates``, or ``gates = {...}`` in engines.toml.
Replayed recordings (``--asiai-replay``) are gated exactly like live cases.
"""

import pytest

from pytest_asiai.gates import check

pytestmark = [pytest.mark.agentic, pytest.mark.gate]


def test_gate(agentic, gate_name, request):
    check(request.config, agentic, gate_name)

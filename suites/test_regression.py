"""Regression against a stored baseline, one test per case and metric:
``test_regression[<case>-<phase>.<metric>]``, e.g. ``test_regression[llamacpp-smollm2-135m-mtp_off-warm.ttft_ms]``.

Generated only with ``--asiai-baseline PATH`` (deselected otherwise) and run after every other test,
so they compare what this session measured. The baseline case is the one measured under the same
conditions (engine, engine family, model, MTP, profile, machine), never the same node id. A change
the wrong way beyond the metric's tolerance (``--asiai-tolerance ttft_ms=20%``) fails with the old
value, the new one and the change; an improvement beyond it warns that the baseline is stale; a
missing baseline is skipped with a warning (failed with ``--asiai-require-baseline``).
"""

import pytest

pytestmark = pytest.mark.agentic


def test_regression(asiai_baseline, agentic, asiai_metric):
    verdict = asiai_baseline.check(agentic, asiai_metric)
    assert verdict.ok, verdict.message

"""Bursts of simultaneous calls, one test per case and burst size: ``test_burst[<case>-n30]``.

Each size's calls are prepared, then released at once; every pass lands in the JSON report under
``results.burst["<size>"]`` with its per-call records, aggregates and serialization verdict. The
burst gates judge the same measurements (each size runs once per session) and report under
``results.gates["burst_valid[n30]"]``; they are marked ``burst`` only, so ``-m gate`` never starts a burst.
"""

import pytest

from pytest_asiai.burst.analysis import failure_message
from pytest_asiai.burst.gates import check

pytestmark = pytest.mark.burst


def test_burst(burst, burst_size):
    result = burst.result(burst_size)
    assert result["errors"] == 0, failure_message(result)


def test_burst_valid(burst, burst_size):
    """At least 80 % of the calls answer the arithmetic correctly (failed calls count as invalid)."""
    check(burst, "burst_valid", burst_size)


def test_burst_p95_ms(burst, burst_size):
    """The p95 latency stays under a threshold you set (``--asiai-gate burst_p95_ms=MS``); opt-in."""
    check(burst, "burst_p95_ms", burst_size)

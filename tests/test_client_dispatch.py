"""Burst dispatch timing fields (issue 15 item 5d): write starts and write ends are both reported.

On loopback a write that wakes the engine's thread can be preempted for 2-4 ms; the spread of the
write *ends* then looks tight (0.04-0.11 ms in 6 of 16 real bursts) while the write *starts* spanned
2.2-4.5 ms. These burst values are synthetic, with exactly that shape.
"""

from __future__ import annotations

import pytest

from pytest_asiai.burst.analysis import analyse_pass
from pytest_asiai.wire.dispatch import BurstDispatch, DispatchedCall
from pytest_asiai.wire.records import RequestRecord

MS = 1_000_000
RELEASE = 10_000 * MS


def call(index: int, start_ms: float, sent_ms: float | None) -> DispatchedCall:
    record = RequestRecord(
        started_at=0.0, status=200, ttft_ms=20.0, last_token_ms=30.0, total_ms=31.0,
        token_chunk_ms=(20.0, 30.0), completion_tokens=2, finish_reason="stop", content=str(index),
    )  # fmt: skip
    start_ns = RELEASE + int(start_ms * MS)
    sent_ns = None if sent_ms is None else RELEASE + int(sent_ms * MS)
    return DispatchedCall(index, start_ns, sent_ns, start_ns + 31 * MS, record)


def test_a_preempted_write_shows_in_the_write_start_spread_and_the_dispatch_spread() -> None:
    # Call 0 starts writing at the release and is preempted until 4.5 ms; the others start and end
    # right after it resumes, so every write *ends* within 0.06 ms.
    calls = (call(0, 0.0, 4.50), call(1, 4.46, 4.52), call(2, 4.50, 4.56))
    analysis = analyse_pass(BurstDispatch(RELEASE, 0.0, 1.0, calls), None)
    assert analysis["write_end_spread_ms"] == pytest.approx(0.06, abs=1e-6)
    assert analysis["write_start_spread_ms"] == pytest.approx(4.50, abs=1e-6)
    assert analysis["dispatch_spread_ms"] == pytest.approx(4.56, abs=1e-6)  # first start → last end
    assert analysis["release_to_last_send_ms"] == pytest.approx(4.56, abs=1e-6)
    assert [c["write_start_ms"] for c in analysis["calls"]] == pytest.approx([0.0, 4.46, 4.50])


def test_a_call_never_written_has_no_write_times() -> None:
    calls = (call(0, 0.0, 0.05), call(1, 0.05, None))
    analysis = analyse_pass(BurstDispatch(RELEASE, 0.0, 1.0, calls), None)
    assert analysis["calls"][1]["write_start_ms"] is None and analysis["calls"][1]["sent_ms"] is None
    assert analysis["write_start_spread_ms"] == 0.0 and analysis["dispatch_spread_ms"] == pytest.approx(0.05)

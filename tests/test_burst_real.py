"""Burst mode end to end on the real llama-server + SmolLM2: one slot is serialized, four are not.

With ``--parallel 1`` llama-server queues requests FIFO (every call after the first hits the prefix
cache of the one slot); with ``--parallel 4`` four calls decode in one batch. llama.cpp splits the
context across slots, so the 4-slot server gets 16384 tokens (4096 per slot) to hold the smoke prompt.
Only ``test_burst`` runs: SmolLM2-135M cannot do the arithmetic, so the validity gate is not the point.
"""

from __future__ import annotations

import json

import pytest
from real_engine import copy_suites, engines_toml


def run_burst(pytester: pytest.Pytester, parallel: int, ctx: int) -> dict:
    pytester.makefile(".toml", engines=engines_toml(parallel=parallel, ctx=ctx))
    copy_suites(pytester.path, "test_burst.py")
    report_path = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "test_burst.py::test_burst", "--asiai-burst-sizes=4", f"--asiai-json={report_path}", "-p", "no:cacheprovider"
    )
    assert result.ret == 0, result.stdout.str()
    (case,) = json.loads(report_path.read_text())["cases"]
    size = case["results"]["burst"]["4"]
    (one,) = size["passes"]
    assert one["ok"] == 4 and one["sent"] == 4
    assert one["dispatch_spread_ms"] < 50, "the four requests did not leave together"
    assert all(c["completion_tokens"] and c["cached_tokens"] is not None for c in one["calls"])
    assert size["single_stream_decode_tok_s"] > 0
    return size


def test_one_slot_is_serialized(pytester):
    size = run_burst(pytester, parallel=1, ctx=8192)
    ser = size["passes"][0]["serialization"]
    assert size["verdict"] == "serialized (FIFO)", ser["reason"]
    assert ser["concurrency"] == 1
    # The one slot keeps the shared system prompt: every call but the first reuses it.
    assert size["passes"][0]["cache"]["hit_calls"] >= 3


def test_four_slots_are_not_serialized(pytester):
    size = run_burst(pytester, parallel=4, ctx=16384)
    ser = size["passes"][0]["serialization"]
    # Four calls on four slots: all four decode together (a partial overlap still is not FIFO).
    assert size["verdict"] != "serialized (FIFO)" and ser["concurrency"] >= 2, ser["reason"]

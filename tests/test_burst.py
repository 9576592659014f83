"""Burst mode: the dispatcher, the per-call records, the aggregates and the serialization verdict.

The verdict logic runs against the scripted test engine, whose slots make FIFO, k-slot and fully
parallel engines exactly; the suite runs through pytester like a user's project.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai.burst import serialization
from pytest_asiai.burst.analysis import analyse_pass, summarize_passes
from pytest_asiai.burst.calls import expected_answer, is_valid, user_message
from pytest_asiai.burst.runner import sizes_for
from pytest_asiai.burst.serialization import (
    OVERLAP_EPSILON_MS,
    PARALLEL,
    SERIALIZED,
    UNDETERMINED,
    fifo_bound_tok_s,
    peak_concurrency,
    throughput_check,
)
from pytest_asiai.config.options import burst_sizes
from pytest_asiai.wire.client import Timeouts
from pytest_asiai.wire.dispatch import BurstDispatch, Endpoint, run_dispatch

SUITE = (Path(__file__).parent.parent / "suites" / "test_burst.py").read_text(encoding="utf-8")
SYSTEM = "You are a careful calculator. " * 20
# Decode pacing makes each call's generation window tens of ms; the prefill of the uncached user
# message (about 30 scripted tokens) keeps a FIFO engine's next first token well after the last end.
TIMED = {"prefill_ms_per_token": 0.5, "decode_ms_per_token": 2.0, "completion_tokens": 10}


def bodies(n: int) -> list[dict[str, Any]]:
    return [
        {
            "model": "m",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user_message(i)}],
            "max_tokens": 32,
            "temperature": 0.0,
        }
        for i in range(n)
    ]


def fire(engine: ScriptedEngine, n: int, deadline_s: float = 20.0) -> BurstDispatch:
    return run_dispatch(engine.base_url, bodies(n), timeouts=Timeouts(connect_s=5.0, deadline_s=deadline_s))


# ----------------------------------------------------------------------------- prompts and validity


def test_user_message_is_asiais_and_the_answer_is_checkable():
    assert user_message(3).startswith("Burst call #3. Compute (12345 + 3) * 7 and answer")
    assert expected_answer(3) == 86436


@pytest.mark.parametrize(
    ("content", "valid"),
    [
        ("86436", True),
        ("The answer is 86,436.", True),
        ("(12345 + 3) * 7 = 86436", True),
        ("864360", False),
        ("-86436", False),
        ("86435", False),
        ("", False),
    ],
)
def test_validity_is_the_exact_integer(content, valid):
    assert is_valid(content, 3) is valid


# ----------------------------------------------------------------------------- sizes and options


def settings(cli=None, ini=None, profile="smoke"):
    return SimpleNamespace(
        burst_sizes_override=cli, burst_sizes_default=ini, profile_for=lambda case_profile: case_profile or profile
    )


def test_sizes_precedence_command_line_then_engines_toml_then_ini_then_profile():
    case = SimpleNamespace(burst_sizes=(5,), profile=None)
    bare = SimpleNamespace(burst_sizes=None, profile=None)
    assert sizes_for(settings(cli=(2, 3), ini=(7,)), case) == (2, 3)
    assert sizes_for(settings(ini=(7,)), case) == (5,)
    assert sizes_for(settings(ini=(7,)), bare) == (7,)
    assert sizes_for(settings(), bare) == (4, 8)
    assert sizes_for(settings(profile="full"), bare) == (30, 60, 80)


def test_burst_sizes_option_parsing():
    assert burst_sizes("4, 8,4", "--asiai-burst-sizes") == (4, 8)
    assert burst_sizes("", "ini asiai_burst_sizes") is None
    for bad in ("4,x", "0", "501", "4,,8"):
        with pytest.raises(pytest.UsageError, match=r"^--asiai-burst-sizes: .*whole numbers from 1 to 500"):
            burst_sizes(bad, "--asiai-burst-sizes")


# ----------------------------------------------------------------------------- the statistic


def test_peak_concurrency_counts_calls_generating_at_one_instant():
    fifo = [(10.0, 50.0), (60.0, 100.0), (110.0, 150.0)]
    assert peak_concurrency(fifo) == 1
    # The next first token read 1 ms before the previous end (both arrived together) is not overlap.
    assert peak_concurrency([(10.0, 50.0), (49.0, 90.0)]) == 1
    assert peak_concurrency([(10.0, 50.0), (40.0, 90.0), (45.0, 95.0), (91.0, 130.0)]) == 3
    # Two slots: a long call beside a row of short ones is 2 at a time, not "overlaps 4 calls".
    assert peak_concurrency([(0.0, 400.0), (10.0, 100.0), (110.0, 200.0), (210.0, 300.0), (310.0, 390.0)]) == 2
    assert peak_concurrency([(10.0, 11.0), (10.5, 11.5)]) == 0


@given(st.lists(st.tuples(st.floats(0, 1000), st.floats(0, 300)), max_size=25))
def test_peak_concurrency_matches_counting_at_every_first_token(spans):
    windows = [(first, first + length) for first, length in spans]
    brute = max(
        (sum(1 for f, e in windows if f <= t < e - OVERLAP_EPSILON_MS) for t, _ in windows),
        default=0,
    )
    assert peak_concurrency(windows) == brute


def test_fifo_bound_is_back_to_back_decoding_at_the_single_stream_rate():
    # 3 calls of 11 tokens at 100 tok/s: 30 decode intervals = 0.3 s for 33 tokens.
    assert fifo_bound_tok_s([11, 11, 11], 100.0) == pytest.approx(110.0)
    assert fifo_bound_tok_s([1, 1], 100.0) is None


def test_verdict_rules():
    assert serialization._verdict(4, 1)[0] == SERIALIZED
    assert serialization._verdict(1, 1)[0] == UNDETERMINED
    assert serialization._verdict(4, 0)[0] == UNDETERMINED
    assert serialization._verdict(4, 4)[0] == PARALLEL
    assert serialization._verdict(4, 3)[0] == "partially parallel (3 slots)"


def test_throughput_cross_checks_but_never_overturns_the_timing():
    check, note = throughput_check(SERIALIZED, aggregate=500.0, bound=100.0)
    assert check == "inconsistent" and "500.0 tok/s > 1.25 × FIFO bound 100.0" in note
    assert throughput_check(SERIALIZED, aggregate=120.0, bound=100.0)[0] == "consistent"
    assert throughput_check(SERIALIZED, aggregate=None, bound=100.0)[0] == "not measured"
    assert throughput_check(PARALLEL, aggregate=300.0, bound=100.0) == (
        "consistent",
        "300.0 tok/s > 1.25 × FIFO bound 100.0: more than one call at a time",
    )
    assert throughput_check(PARALLEL, aggregate=80.0, bound=100.0)[1].endswith(
        "no throughput gain from running calls together"
    )


# ----------------------------------------------------------------------------- the dispatcher


def test_endpoint_from_base_url():
    assert Endpoint.for_chat("http://127.0.0.1:8080") == Endpoint(
        "127.0.0.1", 8080, "/v1/chat/completions", "127.0.0.1:8080", False
    )
    assert Endpoint.for_chat("https://host/v1").port == 443
    with pytest.raises(ValueError, match="not an http"):
        Endpoint.for_chat("ftp://host")


def test_no_request_leaves_before_the_release_and_all_leave_together(scripted_engine):
    scripted_engine.behaviour = Behaviour(slots=8)
    result = fire(scripted_engine, 8)
    assert all(c.record.ok for c in result.calls)
    sent = [c.sent_ns for c in result.calls]
    assert all(s is not None and s >= result.release_ns for s in sent)
    received = [r["_received_ns"] for r in scripted_engine.requests]
    assert len(received) == 8 and min(received) >= result.release_ns
    assert [c.index for c in result.calls] == list(range(8))
    # Each record's clock starts at its own send, just before its write.
    assert all(c.start_ns <= (c.sent_ns or 0) < c.end_ns for c in result.calls)


def test_each_call_has_its_own_deadline(scripted_engine):
    # One slot, ~500 ms per call, 0.9 s deadline from each send: the first call ends in time; the
    # queued second one cannot, and is kept as a timeout with what it streamed, not thrown away.
    scripted_engine.behaviour = Behaviour(slots=1, decode_ms_per_token=20.0, completion_tokens=25)
    first, second = fire(scripted_engine, 2, deadline_s=0.9).calls
    assert first.record.ok and first.record.completion_tokens == 25
    assert second.record.error_kind == "timeout" and second.record.ttft_ms is not None
    assert second.record.total_ms == pytest.approx(900, abs=300)


@pytest.mark.parametrize(
    ("behaviour", "kind", "message"),
    [
        (Behaviour(http_status=503), "http", "HTTP 503: scripted status 503"),
        (Behaviour(error_in_stream_after_tokens=2), "stream_error", "scripted stream error"),
        (Behaviour(disconnect_after_tokens=3), "disconnect", "incomplete chunked read"),
    ],
    ids=["http-error", "error-in-200-stream", "disconnect"],
)
def test_failures_are_classified_like_the_clients_do(scripted_engine, behaviour, kind, message):
    scripted_engine.behaviour = behaviour
    result = fire(scripted_engine, 2)
    for call in result.calls:
        assert call.record.error_kind == kind and message in (call.record.error or "")


def test_unreachable_engine_gives_connect_errors_and_nothing_sent():
    result = run_dispatch("http://127.0.0.1:9", bodies(3), timeouts=Timeouts(connect_s=2.0, deadline_s=5.0))
    assert [c.record.error_kind for c in result.calls] == ["connect"] * 3
    assert all(c.sent_ns is None for c in result.calls)
    analysis = analyse_pass(result, None)
    assert analysis["sent"] == 0 and analysis["dispatch_spread_ms"] is None and analysis["aggregate_tok_s"] is None
    assert analysis["errors"]["kinds"] == {"connect": 3} and analysis["valid_pct"] == 0.0


# ----------------------------------------------------------------------------- verdicts, exactly


def single_rate() -> float:
    return 1000.0 / TIMED["decode_ms_per_token"]


@pytest.mark.parametrize(
    ("slots", "verdict", "concurrency"),
    [
        (1, SERIALIZED, 1),
        (2, "partially parallel (2 slots)", 2),
        (3, "partially parallel (3 slots)", 3),
        (6, PARALLEL, 6),
    ],
    ids=["fifo", "2-slots", "3-slots", "fully-parallel"],
)
def test_verdict_on_scripted_slots(scripted_engine, slots, verdict, concurrency):
    scripted_engine.behaviour = Behaviour(slots=slots, **TIMED)
    analysis = analyse_pass(fire(scripted_engine, 6), single_rate())
    result = analysis["serialization"]
    assert (result["verdict"], result["concurrency"]) == (verdict, concurrency), result["reason"]
    assert analysis["ok"] == 6 and analysis["errors"]["count"] == 0
    assert result["throughput_ratio"] is not None and result["fifo_bound_tok_s"] is not None
    if slots == 1:
        # FIFO: below the single-stream rate, and each first token waits for the call before it.
        assert result["throughput_ratio"] < 1.0 and result["ttft_slope_ms_per_call"] > 10
        assert result["throughput_check"] == "consistent"


def test_errors_in_the_middle_of_a_burst(scripted_engine):
    scripted_engine.behaviour = Behaviour(slots=1, http_500_after=3, **TIMED)
    analysis = analyse_pass(fire(scripted_engine, 6), single_rate())
    assert analysis["ok"] == 3 and analysis["errors"]["kinds"] == {"http": 3}
    assert analysis["errors"]["messages"] == ["http: HTTP 500: scripted failure (×3)"]
    assert analysis["serialization"]["verdict"] == SERIALIZED
    assert len(analysis["serialization"]["end_ms_by_completion"]) == 3
    failed = [c for c in analysis["calls"] if not c["ok"]]
    assert all(c["valid"] is False and c["total_ms"] is None and c["status"] == 500 for c in failed)


def test_per_call_records_and_aggregates(scripted_engine):
    scripted_engine.behaviour = Behaviour(slots=1, content_text=str(expected_answer(1)), **TIMED)
    analysis = analyse_pass(fire(scripted_engine, 4), single_rate())
    calls = analysis["calls"]
    assert [c["index"] for c in calls] == [0, 1, 2, 3]
    assert [c["valid"] for c in calls] == [False, True, False, False] and analysis["valid_pct"] == 25.0
    for c in calls:
        assert c["scheduled_ms"] == 0.0 and 0 <= c["sent_ms"] < c["first_token_ms"] < c["end_ms"]
        assert c["completion_tokens"] == 10 and c["cached_source"] == "usage.prompt_tokens_details.cached_tokens"
    # One slot, one shared system prompt: every call after the first hits the prefix cache.
    assert analysis["cache"]["hit_calls"] == 3 and analysis["cache"]["reported_calls"] == 4
    assert analysis["completion_tokens"] == 40
    assert analysis["aggregate_tok_s"] == pytest.approx(40 / analysis["wall_s"])
    assert analysis["calls_per_s"] == pytest.approx(4 / analysis["wall_s"])
    assert analysis["total_ms"]["max"] >= analysis["total_ms"]["p95"] >= analysis["total_ms"]["p50"]
    assert analysis["dispatch_spread_ms"] <= analysis["release_to_last_send_ms"]
    json.dumps(analysis, allow_nan=False)


def test_summary_across_passes():
    def fake(verdict, errors, valid):
        calls = [{"ok": True, "valid": valid, "total_ms": 100.0, "ttft_ms": 10.0}]
        return {
            "serialization": {"verdict": verdict, "concurrency": 1},
            "errors": {"count": errors, "kinds": {"http": errors}},
            "calls": calls,
            "aggregate_tok_s": 50.0,
        }

    out = summarize_passes([fake(SERIALIZED, 0, True), fake(SERIALIZED, 1, False), fake(PARALLEL, 1, True)])
    assert out["verdict"] == SERIALIZED and out["verdicts"] == [SERIALIZED, SERIALIZED, PARALLEL]
    assert out["consistent"] is False
    assert out["errors"] == 2 and out["error_kinds"] == {"http": 2}
    assert out["valid_pct"] == pytest.approx(200 / 3)
    assert out["summary"]["aggregate_tok_s"]["median"] == 50.0 and out["summary"]["aggregate_tok_s"]["n"] == 3
    assert out["summary"]["peak_rss_mb"]["n"] == 0  # not measured stays unmeasured


# ----------------------------------------------------------------------------- the suite, via pytester


def engines_toml(base_url: str, extra: str = "") -> str:
    return (
        f'profile = "smoke"\n[[engines]]\nname = "scripted"\nkind = "llamacpp"\nbase_url = "{base_url}"\n'
        f'deadline_s = 20\n[[engines.models]]\nname = "m"\n{extra}'
    )


@pytest.fixture
def project(pytester: pytest.Pytester, scripted_engine: ScriptedEngine) -> pytest.Pytester:
    pytester.makefile(".toml", engines=engines_toml(scripted_engine.base_url))
    pytester.makepyfile(test_burst_suite=SUITE)
    return pytester


def report(project: pytest.Pytester) -> dict[str, Any]:
    return json.loads((project.path / "r.json").read_text(encoding="utf-8"))


def test_ids_default_smoke_sizes_and_engines_toml_sizes(project, scripted_engine):
    result = project.runpytest("--collect-only", "-q", "-m", "burst")
    result.stdout.fnmatch_lines(
        [
            "test_burst_suite.py::test_burst[scripted-m-mtp_off-n4]",
            "test_burst_suite.py::test_burst_valid[scripted-m-mtp_off-n4]",
            "test_burst_suite.py::test_burst_p95_ms[scripted-m-mtp_off-n4]",
            "test_burst_suite.py::test_burst[scripted-m-mtp_off-n8]",
        ]
    )
    project.makefile(".toml", engines=engines_toml(scripted_engine.base_url, "burst_sizes = [2, 5]\n"))
    result = project.runpytest("--collect-only", "-q", "-k", "test_burst[")
    result.stdout.fnmatch_lines(
        [
            "test_burst_suite.py::test_burst[scripted-m-mtp_off-n2]",
            "test_burst_suite.py::test_burst[scripted-m-mtp_off-n5]",
        ]
    )


def test_burst_suite_reports_every_call_and_its_gates(project, scripted_engine):
    answers = " ".join(str(expected_answer(i)) for i in range(3))
    scripted_engine.behaviour = Behaviour(slots=1, content_text=answers, **TIMED)
    args = ["-m", "burst", "--asiai-burst-sizes=3", "--asiai-burst-runs=2", "--asiai-json=r.json", "-rs"]
    result = project.runpytest(*args)
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*burst_p95_ms no threshold: burst of 3: *ms p95 latency; set one with*"])
    case = report(project)["cases"][0]
    size = case["results"]["burst"]["3"]
    assert (size["size"], size["runs"], size["calls"]) == (3, 2, 6)
    assert size["verdict"] == SERIALIZED and size["consistent"] is True
    assert size["valid_pct"] == 100.0 and size["errors"] == 0
    assert size["summary"]["aggregate_tok_s"]["n"] == 2
    # The single-stream reference is the agentic warm phase, measured before the burst.
    assert list(case["phases"])[:2] == ["cold", "warm"]
    assert size["single_stream_decode_tok_s"] == case["phases"]["warm"]["stats"]["decode_tok_s"]["median"]
    for one in size["passes"]:
        assert [c["index"] for c in one["calls"]] == [0, 1, 2]
        assert one["serialization"]["statistic"].startswith("peak number of successful calls")
    gate = case["results"]["gates"]["burst_valid[n3]"]
    assert (gate["outcome"], gate["value"], gate["threshold"], gate["threshold_source"]) == (
        "pass",
        100.0,
        80.0,
        "default",
    )
    # Passes are salted (not replays of each other); calls of one pass share their system prompt.
    burst_requests = [r for r in scripted_engine.requests if r["messages"][-1]["content"].startswith("Burst call")]
    systems = [r["messages"][0]["content"] for r in burst_requests]
    assert len(set(systems[:3])) == 1 and len(set(systems[3:])) == 1 and systems[0] != systems[3]
    assert all(r["temperature"] == 0.0 for r in burst_requests)


def test_invalid_answers_and_a_latency_threshold_fail_their_gates(project, scripted_engine):
    scripted_engine.behaviour = Behaviour(slots=2, **TIMED)
    result = project.runpytest(
        "-m", "burst", "--asiai-burst-sizes=2", "--asiai-gate=burst_p95_ms=1", "--asiai-json=r.json"
    )
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        ["*burst_valid: burst of 2: 0.0 % valid answers < 80", "*burst_p95_ms: burst of 2: * ms p95 latency > 1"]
    )
    gates = report(project)["cases"][0]["results"]["gates"]
    assert gates["burst_p95_ms[n2]"]["threshold_source"] == "command line"


def test_failed_calls_fail_the_burst_test_and_stay_in_the_report(project, scripted_engine):
    # The agentic cold and warm requests come first; then 2 of the 4 burst calls get a 500.
    scripted_engine.behaviour = Behaviour(slots=1, http_500_after=4, **TIMED)
    result = project.runpytest("-m", "burst", "-k", "test_burst[", "--asiai-burst-sizes=4", "--asiai-json=r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*2 of 4 calls failed:*"])
    size = report(project)["cases"][0]["results"]["burst"]["4"]
    assert size["errors"] == 2 and size["error_kinds"] == {"http": 2}
    assert sum(c["ok"] for c in size["passes"][0]["calls"]) == 2


@pytest.mark.parametrize(
    ("args", "engines", "message"),
    [
        (["--asiai-burst-sizes=4,x"], "", "ERROR: --asiai-burst-sizes: '4,x': expected comma-separated whole numbers*"),
        (["--asiai-burst-runs=0"], "", "ERROR: --asiai-burst-runs: expected a whole number of at least 1, got '0'"),
        (
            [],
            "burst_sizes = [0]\n",
            "ERROR: *engines.toml: engines[[]0[]].models[[]0[]].burst_sizes[[]0[]]: 0 is less*",
        ),
    ],
    ids=["sizes", "runs", "engines-toml"],
)
def test_bad_burst_settings_are_one_line_usage_errors(project, scripted_engine, args, engines, message):
    project.makefile(".toml", engines=engines_toml(scripted_engine.base_url, engines))
    result = project.runpytest("--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])

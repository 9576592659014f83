"""The pure metric functions: exact formulas, None for what was not measured, and statistics."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_asiai.measure import metrics
from pytest_asiai.wire.records import RequestRecord


def rec(**fields) -> RequestRecord:
    return RequestRecord(started_at=0.0, **fields)


def streamed(times: list[float], completion: int | None, **fields) -> RequestRecord:
    """A successful record whose token-bearing chunks arrived at ``times`` (ms)."""
    return rec(
        ttft_ms=times[0] if times else None,
        last_token_ms=times[-1] if times else None,
        token_chunk_ms=tuple(times),
        completion_tokens=completion,
        **fields,
    )


# ------------------------------------------------------------------------------------- decode


def test_decode_rate_is_tokens_after_the_first_over_first_to_last_token():
    record = streamed([100.0, 110.0, 120.0, 600.0], completion=51)
    assert metrics.decode_tok_s(record) == pytest.approx(50 / 0.5)


def test_a_counted_but_unstreamed_stop_token_is_not_decode_output():
    # llama.cpp: 4 visible tokens one per chunk, then the end-of-generation token, counted but not sent.
    times = [100.0, 110.0, 120.0, 130.0]
    stopped = streamed(times, completion=5, finish_reason="stop")
    assert metrics.streamed_tokens(stopped) == 4
    assert metrics.decode_tok_s(stopped) == pytest.approx(3 / 0.03)
    assert metrics.tokens_per_chunk(stopped) == 1.0 and metrics.itl_ms(stopped) == pytest.approx([10.0] * 3)
    # At the length limit every counted token was streamed; so it is when counts and chunks agree.
    assert metrics.streamed_tokens(streamed(times, completion=5, finish_reason="length")) == 5
    assert metrics.streamed_tokens(streamed(times, completion=4, finish_reason="stop")) == 4
    assert metrics.streamed_tokens(streamed(times, completion=12, finish_reason="stop")) == 12  # batching
    assert metrics.streamed_tokens(streamed(times, completion=None, finish_reason="stop")) is None
    # Speculative decoding accepts the stop token with the last drafted tokens: no step after the span.
    drafting = streamed(times, completion=5, finish_reason="stop", timings={"draft_n": 8, "draft_n_accepted": 7})
    assert metrics.streamed_tokens(drafting) == 5


@pytest.mark.parametrize(
    "record",
    [
        streamed([100.0, 200.0], completion=None),  # no usage: chunks are not tokens
        streamed([100.0], completion=1),
        streamed([100.0, 100.0], completion=5),  # zero span
        rec(completion_tokens=10),  # no token ever arrived
    ],
)
def test_decode_rate_is_none_when_not_measurable(record):
    assert metrics.decode_tok_s(record) is None


def test_tokens_per_chunk_shows_batching():
    assert metrics.tokens_per_chunk(streamed([1.0, 2.0, 3.0, 4.0], completion=12)) == 3.0
    assert metrics.tokens_per_chunk(streamed([1.0, 2.0], completion=None)) is None
    assert metrics.tokens_per_chunk(rec(completion_tokens=3)) is None


# ---------------------------------------------------------------------------------------- ITL


def test_itl_with_one_token_per_chunk_is_the_chunk_gaps():
    record = streamed([10.0, 12.0, 15.0, 25.0], completion=4)
    assert metrics.itl_ms(record) == [2.0, 3.0, 10.0]
    assert metrics.itl_percentiles(record) == {
        "p50": 3.0,
        "p95": pytest.approx(9.3),
        "p99": pytest.approx(9.86),
    }


def test_itl_spreads_a_multi_token_chunk_over_its_tokens():
    # 1 token first, then two chunks of 2 tokens each: each gap covers 2 tokens.
    record = streamed([0.0, 10.0, 30.0], completion=5)
    assert metrics.itl_ms(record) == [5.0, 5.0, 10.0, 10.0]


def test_itl_is_empty_without_two_chunks_or_usage():
    assert metrics.itl_ms(streamed([1.0], completion=1)) == []
    assert metrics.itl_ms(streamed([1.0, 2.0], completion=None)) == []
    assert metrics.itl_percentiles(streamed([1.0], completion=1)) == {"p50": None, "p95": None, "p99": None}


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=50))
def test_percentile_matches_inclusive_quantiles(values):
    assert metrics.percentile(values, 0) == min(values)
    assert metrics.percentile(values, 100) == max(values)
    assert metrics.percentile(values, 50) == pytest.approx(statistics.median(values))
    if len(values) > 1:
        quartiles = statistics.quantiles(values, n=4, method="inclusive")
        assert metrics.percentile(values, 25) == pytest.approx(quartiles[0])
        assert metrics.percentile(values, 75) == pytest.approx(quartiles[2])
    assert metrics.percentile([], 50) is None


# --------------------------------------------------------------------------- cache and tokens


def test_cached_fraction():
    assert metrics.cached_fraction(rec(prompt_tokens=200, cached_tokens=150)) == 0.75
    assert metrics.cached_fraction(rec(prompt_tokens=200)) is None
    assert metrics.cached_fraction(rec(cached_tokens=5)) is None


def test_token_split_from_usage_from_the_stream_or_unknown():
    assert metrics.token_split(rec(completion_tokens=64, reasoning_tokens=10, reasoning_chars=50)) == {
        "reasoning_tokens": 10,
        "content_tokens": 54,
        "source": "usage",
    }
    # No reasoning text streamed at all: every completion token is content.
    assert metrics.token_split(rec(completion_tokens=64, content_chars=300)) == {
        "reasoning_tokens": 0,
        "content_tokens": 64,
        "source": "stream",
    }
    unknown = {"reasoning_tokens": None, "content_tokens": None, "source": None}
    assert metrics.token_split(rec(completion_tokens=64, reasoning_chars=50)) == unknown  # chunks are not tokens
    assert metrics.token_split(rec(reasoning_chars=0)) == unknown
    assert metrics.token_split(rec(completion_tokens=3, error="boom", error_kind="http")) == unknown


# --------------------------------------------------------------------------------- engine side

TIMINGS = {"prompt_ms": 812.5, "prompt_per_second": 1600.0, "predicted_per_second": 91.2, "cache_n": 0}


def test_engine_figures_come_from_timings():
    record = rec(ttft_ms=817.0, timings=TIMINGS)
    assert metrics.engine_prefill_ms(record) == 812.5
    assert metrics.engine_prefill_tok_s(record) == 1600.0
    assert metrics.engine_decode_tok_s(record) == 91.2
    assert metrics.ttft_overhead_ms(record) == pytest.approx(4.5)


def test_engine_figures_are_none_without_timings_or_with_non_numbers():
    assert metrics.engine_prefill_ms(rec(ttft_ms=5.0)) is None
    assert metrics.ttft_overhead_ms(rec(ttft_ms=5.0)) is None
    assert metrics.ttft_overhead_ms(rec(timings=TIMINGS)) is None
    assert metrics.engine_decode_tok_s(rec(timings={"predicted_per_second": True})) is None
    assert metrics.engine_prefill_ms(rec(timings={"prompt_ms": "12"})) is None


def test_derived_has_every_per_request_metric():
    derived = metrics.derived(streamed([10.0, 20.0], completion=2, timings=TIMINGS))
    assert set(derived) == {
        "decode_tok_s",
        "tokens_per_chunk",
        "itl_ms",
        "cached_fraction",
        "token_split",
        "engine_prefill_ms",
        "engine_prefill_tok_s",
        "engine_decode_tok_s",
        "ttft_overhead_ms",
    }
    assert derived["decode_tok_s"] == pytest.approx(100.0) and derived["cached_fraction"] is None


# ---------------------------------------------------------------------------------- statistics


def test_summarize():
    assert metrics.summarize([3.0, None, 1.0, 2.0]) == {
        "n": 3,
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "cv": pytest.approx(0.5),
    }
    assert metrics.summarize([4.0]) == {"n": 1, "median": 4.0, "min": 4.0, "max": 4.0, "cv": None}
    assert metrics.summarize([0.0, 0.0])["cv"] is None
    assert metrics.summarize([None, None]) == {"n": 0, "median": None, "min": None, "max": None, "cv": None}


@given(st.lists(st.floats(min_value=0.001, max_value=1e6), min_size=2, max_size=30))
def test_summarize_bounds_and_cv(values):
    s = metrics.summarize(values)
    assert s["n"] == len(values) and s["min"] <= s["median"] <= s["max"]
    assert s["cv"] == pytest.approx(statistics.stdev(values) / statistics.fmean(values))


def test_phase_stats_ignore_failed_requests():
    good = streamed([100.0, 200.0], completion=11, prompt_tokens=50, cached_tokens=40)
    failed = rec(error="HTTP 500: boom", error_kind="http", status=500)
    stats = metrics.phase_stats([good, failed])
    assert set(stats) == set(metrics.PHASE_METRICS)
    assert stats["ttft_ms"]["n"] == 1 and stats["ttft_ms"]["median"] == 100.0
    assert stats["decode_tok_s"]["median"] == pytest.approx(100.0)
    assert stats["cached_fraction"]["median"] == 0.8
    assert stats["content_tokens"]["median"] == 11 and stats["reasoning_tokens"]["median"] == 0
    assert stats["engine_prefill_ms"]["n"] == 0
    only_failed = metrics.phase_stats([failed])
    assert all(s["n"] == 0 and s["median"] is None for s in only_failed.values())

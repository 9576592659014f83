"""Pure metric functions over request records. Nothing here does I/O or reads a clock.

Conventions: every function returns ``None`` when its inputs were not measured (never 0), token
counts come from the engine's ``usage`` (chunks are not tokens), and the decode span ends at the
last token-bearing chunk, not at the end of the stream.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .records import RequestRecord


def decode_tok_s(record: RequestRecord) -> float | None:
    """(completion_tokens − 1) / (t_last_token − t_first_token), in tokens per second."""
    n = record.completion_tokens
    if n is None or n < 2 or record.ttft_ms is None or record.last_token_ms is None:
        return None
    span_ms = record.last_token_ms - record.ttft_ms
    if span_ms <= 0:
        return None
    return (n - 1) / (span_ms / 1000.0)


def tokens_per_chunk(record: RequestRecord) -> float | None:
    """Tokens per token-bearing chunk: above 1 shows speculative/MTP batching."""
    if record.completion_tokens is None or record.chunks == 0:
        return None
    return record.completion_tokens / record.chunks


def itl_ms(record: RequestRecord) -> list[float]:
    """Inter-token latency per token: each chunk gap spread over the tokens that chunk carried.

    Tokens per chunk are not reported per chunk, so each gap is divided by the record's mean
    tokens per chunk (after the first chunk); with one token per chunk this is the plain gap.
    """
    times = record.token_chunk_ms
    n = record.completion_tokens
    if len(times) < 2 or n is None or n < 2:
        return []
    per_chunk = (n - 1) / (len(times) - 1)
    if per_chunk <= 0:
        return []
    out: list[float] = []
    for a, b in itertools.pairwise(times):
        gap = (b - a) / per_chunk
        out.extend([gap] * max(1, round(per_chunk)))
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def itl_percentiles(record: RequestRecord) -> dict[str, float | None]:
    """p50/p95/p99 of the per-token inter-token latency."""
    values = itl_ms(record)
    return {f"p{q}": percentile(values, q) for q in (50, 95, 99)}


def engine_prefill_ms(record: RequestRecord) -> float | None:
    """The engine's own prompt-processing time (llama.cpp ``timings.prompt_ms``)."""
    return _timing(record, "prompt_ms")


def engine_decode_tok_s(record: RequestRecord) -> float | None:
    """The engine's own decode rate (llama.cpp ``timings.predicted_per_second``)."""
    return _timing(record, "predicted_per_second")


def _timing(record: RequestRecord, key: str) -> float | None:
    value = (record.timings or {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def derived(record: RequestRecord) -> dict[str, Any]:
    """The per-request metrics a report shows next to the raw record."""
    return {
        "decode_tok_s": decode_tok_s(record),
        "tokens_per_chunk": tokens_per_chunk(record),
        "itl_ms": itl_percentiles(record),
        "engine_prefill_ms": engine_prefill_ms(record),
        "engine_decode_tok_s": engine_decode_tok_s(record),
    }


def summarize(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """n, median, min, max and coefficient of variation over the measured values."""
    xs = [v for v in values if v is not None]
    if not xs:
        return {"n": 0, "median": None, "min": None, "max": None, "cv": None}
    mean = statistics.fmean(xs)
    cv = statistics.stdev(xs) / mean if len(xs) > 1 and mean != 0 else None
    return {"n": len(xs), "median": statistics.median(xs), "min": min(xs), "max": max(xs), "cv": cv}


def phase_stats(records: Sequence[RequestRecord]) -> dict[str, Mapping[str, float | int | None]]:
    """Statistics per metric over the successful requests of one phase."""
    ok = [r for r in records if r.ok]
    return {
        "ttft_ms": summarize(r.ttft_ms for r in ok),
        "ttfc_ms": summarize(r.ttfc_ms for r in ok),
        "decode_tok_s": summarize(decode_tok_s(r) for r in ok),
        "total_ms": summarize(r.total_ms for r in ok),
        "prompt_tokens": summarize(r.prompt_tokens for r in ok),
        "completion_tokens": summarize(r.completion_tokens for r in ok),
        "cached_tokens": summarize(r.cached_tokens for r in ok),
        "tokens_per_chunk": summarize(tokens_per_chunk(r) for r in ok),
        "engine_prefill_ms": summarize(engine_prefill_ms(r) for r in ok),
        "engine_decode_tok_s": summarize(engine_decode_tok_s(r) for r in ok),
    }

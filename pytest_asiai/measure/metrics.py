"""Pure metric functions over request records. Nothing here does I/O or reads a clock.

Conventions: every function returns ``None`` when its inputs were not measured (never 0), token
counts come from the engine's ``usage`` (chunks are not tokens), and the decode span ends at the
last token-bearing chunk, not at the end of the stream. A token the engine counted but never streamed
(llama.cpp's end-of-generation token) is left out of the tokens over that span: see
:func:`streamed_tokens`. Statistics only ever see successful
requests: a failed request is never a valid empty one.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pytest_asiai.wire.records import RequestRecord

# ---------------------------------------------------------------------------------- per request


def streamed_tokens(record: RequestRecord) -> int | None:
    """The output tokens that reached the client as chunks: ``completion_tokens`` less an unstreamed stop token.

    llama.cpp counts the end-of-generation token it sampled (one decode step after the last visible
    token) in ``completion_tokens`` but streams nothing for it: a stream that did not end on the length
    limit and has exactly one chunk fewer than tokens shows that. Counting it over a span that ends at
    the last visible token overstated decode by 1/(n − 2): 2.6 % on a 40-token answer (measured on
    llama-server b11434, see benchmarks/client_vs_engine.py). Engines that batch several tokens per
    chunk cannot be told apart this way and keep ``completion_tokens``. So does a speculative request
    (``timings.draft_n``): the stop token is accepted in the same verification step as the last visible
    tokens, within the span (measured: leaving it out put the client 3 % under the engine). A stream
    that reached the requested ``max_tokens`` sampled no stop token whatever its ``finish_reason`` says
    (mlx-openai-server 1.8.1 says ``"stop"`` there: tests/data/wire/mlxopenai-cold300.sse).
    """
    n = record.completion_tokens
    drafting = isinstance(record.timings, Mapping) and record.timings.get("draft_n") is not None
    ended_by_model = record.finish_reason is not None and not record.limit_reached
    if n is not None and not drafting and ended_by_model and n == record.chunks + 1:
        return n - 1
    return n


def decode_tok_s(record: RequestRecord) -> float | None:
    """(streamed tokens − 1) / (t_last_token − t_first_token), in tokens per second."""
    n = streamed_tokens(record)
    if n is None or n < 2 or record.ttft_ms is None or record.last_token_ms is None:
        return None
    span_ms = record.last_token_ms - record.ttft_ms
    if span_ms <= 0:
        return None
    return (n - 1) / (span_ms / 1000.0)


def tokens_per_chunk(record: RequestRecord) -> float | None:
    """Tokens per token-bearing chunk: above 1 shows speculative/MTP batching."""
    n = streamed_tokens(record)
    if n is None or record.chunks == 0:
        return None
    return n / record.chunks


def itl_ms(record: RequestRecord) -> list[float]:
    """Inter-token latency per token: each chunk gap spread over the tokens that chunk carried.

    Tokens per chunk are not reported per chunk, so each gap is divided by the record's mean
    tokens per chunk (after the first chunk); with one token per chunk this is the plain gap.
    """
    times = record.token_chunk_ms
    n = streamed_tokens(record)
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


def cached_fraction(record: RequestRecord) -> float | None:
    """Reported cached prompt tokens over prompt tokens (None when either is not reported)."""
    if record.cached_tokens is None or not record.prompt_tokens:
        return None
    return record.cached_tokens / record.prompt_tokens


def token_split(record: RequestRecord) -> dict[str, int | str | None]:
    """Reasoning versus content tokens (content includes tool-call tokens), and where the split comes from.

    ``usage``: the engine reported ``completion_tokens_details.reasoning_tokens``. ``stream``: it did
    not, but the stream carried no reasoning text at all, so every completion token is content.
    Reasoning streamed without a reported count leaves both unknown (chunks are not tokens).
    """
    n = record.completion_tokens
    if n is not None and record.reasoning_tokens is not None:
        return {
            "reasoning_tokens": record.reasoning_tokens,
            "content_tokens": n - record.reasoning_tokens,
            "source": "usage",
        }
    if n is not None and record.ok and record.reasoning_chars == 0:
        return {"reasoning_tokens": 0, "content_tokens": n, "source": "stream"}
    return {"reasoning_tokens": None, "content_tokens": None, "source": None}


def _timing(record: RequestRecord, key: str) -> float | None:
    value = (record.timings or {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def engine_prefill_ms(record: RequestRecord) -> float | None:
    """The engine's own prompt-processing time (llama.cpp ``timings.prompt_ms``: slot start to the
    first sampled token, so it excludes HTTP, templating and tokenizing)."""
    return _timing(record, "prompt_ms")


def engine_prefill_tok_s(record: RequestRecord) -> float | None:
    """The engine's own prefill rate over the tokens it processed (``timings.prompt_per_second``)."""
    return _timing(record, "prompt_per_second")


def engine_decode_tok_s(record: RequestRecord) -> float | None:
    """The engine's own decode rate (llama.cpp ``timings.predicted_per_second``).

    llama.cpp (b11434) computes it as (predicted_n − 1) over the time from the first sampled token to
    the last, the same formula as :func:`decode_tok_s`, so the two are directly comparable.
    """
    return _timing(record, "predicted_per_second")


def ttft_overhead_ms(record: RequestRecord) -> float | None:
    """TTFT minus the engine's own prefill time: HTTP, templating, tokenizing, queueing, first sample."""
    prefill = engine_prefill_ms(record)
    if prefill is None or record.ttft_ms is None:
        return None
    return record.ttft_ms - prefill


def derived(record: RequestRecord) -> dict[str, Any]:
    """The per-request metrics a report shows next to the raw record."""
    return {
        "decode_tok_s": decode_tok_s(record),
        "tokens_per_chunk": tokens_per_chunk(record),
        "itl_ms": itl_percentiles(record),
        "cached_fraction": cached_fraction(record),
        "token_split": token_split(record),
        "engine_prefill_ms": engine_prefill_ms(record),
        "engine_prefill_tok_s": engine_prefill_tok_s(record),
        "engine_decode_tok_s": engine_decode_tok_s(record),
        "ttft_overhead_ms": ttft_overhead_ms(record),
    }


# ---------------------------------------------------------------------------------- statistics


def summarize(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """n, median, min, max and coefficient of variation over the measured values."""
    xs = [v for v in values if v is not None]
    if not xs:
        return {"n": 0, "median": None, "min": None, "max": None, "cv": None}
    mean = statistics.fmean(xs)
    cv = statistics.stdev(xs) / mean if len(xs) > 1 and mean != 0 else None
    return {"n": len(xs), "median": statistics.median(xs), "min": min(xs), "max": max(xs), "cv": cv}


def _itl(q: int) -> Callable[[RequestRecord], float | None]:
    return lambda r: itl_percentiles(r)[f"p{q}"]


def _split(key: str) -> Callable[[RequestRecord], float | None]:
    def value(r: RequestRecord) -> float | None:
        v = token_split(r)[key]
        return float(v) if isinstance(v, int) else None

    return value


#: Every per-phase statistic: name → the per-request value it summarises.
PHASE_METRICS: dict[str, Callable[[RequestRecord], float | None]] = {
    "ttft_ms": lambda r: r.ttft_ms,
    "ttfc_ms": lambda r: r.ttfc_ms,
    "headers_ms": lambda r: r.headers_ms,
    "decode_tok_s": decode_tok_s,
    "total_ms": lambda r: r.total_ms,
    "itl_p50_ms": _itl(50),
    "itl_p95_ms": _itl(95),
    "itl_p99_ms": _itl(99),
    "prompt_tokens": lambda r: r.prompt_tokens,
    "completion_tokens": lambda r: r.completion_tokens,
    "reasoning_tokens": _split("reasoning_tokens"),
    "content_tokens": _split("content_tokens"),
    "cached_tokens": lambda r: r.cached_tokens,
    "cached_fraction": cached_fraction,
    "tokens_per_chunk": tokens_per_chunk,
    "engine_prefill_ms": engine_prefill_ms,
    "engine_prefill_tok_s": engine_prefill_tok_s,
    "engine_decode_tok_s": engine_decode_tok_s,
    "ttft_overhead_ms": ttft_overhead_ms,
}


def phase_stats(records: Sequence[RequestRecord]) -> dict[str, Mapping[str, float | int | None]]:
    """Statistics per metric over the successful requests of one phase."""
    ok = [r for r in records if r.ok]
    return {name: summarize(value(r) for r in ok) for name, value in PHASE_METRICS.items()}

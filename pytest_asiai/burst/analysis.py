"""The pure analysis of burst passes: one released pass's aggregates, errors, cache reuse, memory
and verdict, then every pass summarized across the runs of one size.

Inputs are what the dispatcher and the samplers recorded (pytest_asiai/wire/dispatch.py,
pytest_asiai/measure/samplers.py); nothing here sends a request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_asiai.burst.calls import CallView, call_dict, views
from pytest_asiai.burst.serialization import UNDETERMINED, serialization
from pytest_asiai.measure import metrics
from pytest_asiai.measure.samplers import CaseSampler
from pytest_asiai.wire.dispatch import BurstDispatch

CACHE_HIT_FRACTION = 0.5
"""A call hits the prefix cache when at least this share of its prompt was cached (the shared system
prompt is most of a burst prompt)."""


# ----------------------------------------------------------------------------- one pass


def _quantiles(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": metrics.percentile(values, 50),
        "p95": metrics.percentile(values, 95),
        "p99": metrics.percentile(values, 99),
        "max": max(values) if values else None,
    }


def _errors(calls: Iterable[CallView]) -> dict[str, Any]:
    failed = [v.call.record for v in calls if not v.ok]
    kinds = Counter(str(r.error_kind) for r in failed)
    messages = Counter(f"{r.error_kind}: {r.error}" for r in failed)
    return {
        "count": len(failed),
        "kinds": dict(kinds),
        "messages": [f"{m} (×{n})" for m, n in messages.most_common(10)],
    }


def _cache(ok: Sequence[CallView]) -> dict[str, Any]:
    """Prefix-cache reuse per call; a hit reuses at least ``CACHE_HIT_FRACTION`` of its prompt (a few
    template tokens, which llama.cpp keeps from any previous prompt of the slot, are not a hit)."""
    records = [v.call.record for v in ok]
    reported = [r for r in records if r.cached_tokens is not None]
    fractions = [r.cached_tokens / r.prompt_tokens for r in reported if r.cached_tokens is not None and r.prompt_tokens]
    return {
        "reported_calls": len(reported),
        "hit_calls": sum(1 for f in fractions if f >= CACHE_HIT_FRACTION) if fractions else None,
        "hit_fraction_threshold": CACHE_HIT_FRACTION,
        "cached_tokens": metrics.summarize(r.cached_tokens for r in reported),
        "cached_fraction": metrics.summarize(fractions),
        "sources": sorted({str(r.cached_source) for r in reported if r.cached_source}),
    }


def _tokens(ok: Sequence[CallView]) -> int | None:
    """Output tokens of the successful calls, from usage; None when there is none or one lacks usage."""
    counts = [v.call.record.completion_tokens for v in ok]
    return None if not counts or any(c is None for c in counts) else sum(c for c in counts if c is not None)


def _rate(count: float | None, seconds: float) -> float | None:
    return None if count is None or seconds <= 0 else count / seconds


def analyse_pass(burst: BurstDispatch, single_stream_tok_s: float | None) -> dict[str, Any]:
    """Aggregates, errors, cache hits and the serialization verdict of one released burst."""
    calls = views(burst)
    ok = [v for v in calls if v.ok]
    sent = [v.sent_ms for v in calls if v.sent_ms is not None]
    starts = [v.write_start_ms for v in calls if v.write_start_ms is not None]
    wall_s = max((v.end_ms for v in calls), default=0.0) / 1000.0
    tokens = _tokens(ok)
    aggregate = _rate(tokens, wall_s)
    return {
        "released_at": burst.released_at,
        "connect_ms": burst.connect_ms,
        "n": len(calls),
        "sent": len(sent),
        "ok": len(ok),
        # A write that wakes the engine can be preempted for milliseconds (issue 15 item 5d): the spread
        # of write ends alone hid that, so the starts are reported too, and the dispatch spread runs
        # from the first write start to the last write end (how long the burst took to leave).
        "write_start_spread_ms": max(starts) - min(starts) if starts else None,
        "write_end_spread_ms": max(sent) - min(sent) if sent else None,
        "dispatch_spread_ms": max(sent) - min(starts) if sent and starts else None,
        "release_to_last_send_ms": max(sent) if sent else None,
        "wall_s": wall_s,
        "total_ms": _quantiles([v.call.record.total_ms for v in ok if v.call.record.total_ms is not None]),
        "ttft_ms": _quantiles([v.call.record.ttft_ms for v in ok if v.call.record.ttft_ms is not None]),
        "completion_tokens": tokens,
        "aggregate_tok_s": aggregate,
        "calls_per_s": _rate(len(ok), wall_s),
        "errors": _errors(calls),
        "valid": sum(v.valid for v in calls),
        "valid_pct": 100.0 * sum(v.valid for v in calls) / len(calls) if calls else None,
        "cache": _cache(ok),
        "serialization": serialization(ok, aggregate, single_stream_tok_s),
        "calls": [call_dict(v) for v in calls],
    }


# ----------------------------------------------------------------------------- across passes

#: Per-pass scalars summarized across passes as {n, median, min, max, cv}.
_SCALARS: dict[str, tuple[str, ...]] = {
    "dispatch_spread_ms": ("dispatch_spread_ms",),
    "write_start_spread_ms": ("write_start_spread_ms",),
    "write_end_spread_ms": ("write_end_spread_ms",),
    "release_to_last_send_ms": ("release_to_last_send_ms",),
    "wall_s": ("wall_s",),
    "total_p50_ms": ("total_ms", "p50"),
    "total_p95_ms": ("total_ms", "p95"),
    "total_p99_ms": ("total_ms", "p99"),
    "total_max_ms": ("total_ms", "max"),
    "ttft_p50_ms": ("ttft_ms", "p50"),
    "ttft_p95_ms": ("ttft_ms", "p95"),
    "ttft_p99_ms": ("ttft_ms", "p99"),
    "ttft_max_ms": ("ttft_ms", "max"),
    "aggregate_tok_s": ("aggregate_tok_s",),
    "calls_per_s": ("calls_per_s",),
    "valid_pct": ("valid_pct",),
    "errors": ("errors", "count"),
    "concurrency": ("serialization", "concurrency"),
    "throughput_ratio": ("serialization", "throughput_ratio"),
    "swap_delta_mb": ("memory", "swap_delta_mb"),
    "peak_rss_mb": ("memory", "peak_rss_mb"),
}


def _dig(obj: Mapping[str, Any], path: Sequence[str]) -> float | None:
    value: Any = obj
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize_passes(passes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every per-pass scalar as {n, median, min, max, cv}; pooled validity, latency and errors; the
    verdict that most passes reached (``consistent`` says whether they all did)."""
    calls = [c for p in passes for c in p["calls"]]
    ok = [c for c in calls if c["ok"]]
    verdicts = [p["serialization"]["verdict"] for p in passes]
    top = Counter(verdicts).most_common(1)[0][0] if verdicts else UNDETERMINED
    return {
        "summary": {name: metrics.summarize(_dig(p, path) for p in passes) for name, path in _SCALARS.items()},
        "calls": len(calls),
        "valid_pct": 100.0 * sum(c["valid"] for c in calls) / len(calls) if calls else None,
        "total_ms": _quantiles([c["total_ms"] for c in ok if c["total_ms"] is not None]),
        "ttft_ms": _quantiles([c["ttft_ms"] for c in ok if c["ttft_ms"] is not None]),
        "errors": sum(p["errors"]["count"] for p in passes),
        "error_kinds": dict(sum((Counter(p["errors"]["kinds"]) for p in passes), Counter())),
        "verdict": top,
        "verdicts": verdicts,
        "consistent": len(set(verdicts)) <= 1,
    }


# ----------------------------------------------------------------------------- memory


def memory_of(probe: CaseSampler) -> dict[str, Any]:
    """Swap growth and the engine's peak RSS over the burst; None (with the reason) when not measured."""
    swap, engine = probe.swap(), probe.engine_memory()
    sv, ev = swap.value or {}, engine.value or {}
    reasons = {k: r.reason for k, r in (("swap", swap), ("engine", engine)) if not r.measured}
    return {
        "swap_delta_mb": sv.get("growth_mb"),
        "swapouts_delta": sv.get("swapouts_delta"),
        "peak_rss_mb": ev.get("rss_peak_mb"),
        "samples": sv.get("samples"),
        "interval_s": probe.interval_s,
        "not_measured": reasons,
    }


# ----------------------------------------------------------------------------- messages


def failure_message(result: Mapping[str, Any]) -> str | None:
    """One line per kind of failed call, or None when every call succeeded."""
    if not result["errors"]:
        return None
    lines = [f"{result['errors']} of {result['calls']} calls failed:"]
    for p in result["passes"]:
        lines += [f"  pass {p['pass']}: {m}" for m in p["errors"]["messages"]]
    return "\n".join(lines)

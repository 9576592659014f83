"""The serialization verdict of one burst: were the calls generated one at a time, k at a time, or all together?

The verdict is computed, with its statistic and thresholds stated in the report: how many calls were
generating at the same instant (from each call's first token and end, in completion order), checked
against the aggregate throughput a one-at-a-time engine could reach at the case's single-stream
decode rate (``agentic.phase("warm").decode_tok_s``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from pytest_asiai.burst.calls import CallView

OVERLAP_EPSILON_MS = 2.0
"""Two calls overlap only if one's first token precedes the other's end by more than this: a FIFO
engine's next first token can be read a hair before the previous end when both arrive together."""
FIFO_THROUGHPUT_TOLERANCE = 1.25
"""A one-at-a-time engine cannot beat its FIFO bound; beyond this factor "serialized" is contradicted."""

SERIALIZED, PARALLEL, UNDETERMINED = "serialized (FIFO)", "parallel", "undetermined"


def peak_concurrency(windows: Iterable[tuple[float, float]], epsilon_ms: float = OVERLAP_EPSILON_MS) -> int:
    """The most calls generating at one instant: a sweep over ``[first token, end − ε)`` windows.

    A call's window opens at its first token and closes at its end; shortening it by ``ε`` keeps a
    FIFO engine's next first token, read together with the previous end, from counting as overlap.
    Windows no longer than ``ε`` cannot overlap anything (0 when all are that short).
    """
    events: list[tuple[float, int]] = []
    for first, end in windows:
        if end - epsilon_ms > first:
            events += [(first, 1), (end - epsilon_ms, -1)]
    events.sort()  # at equal times a window closes (-1) before another opens (+1)
    live = peak = 0
    for _, step in events:
        live += step
        peak = max(peak, live)
    return peak


def fifo_bound_tok_s(token_counts: Sequence[int], single_stream_tok_s: float) -> float | None:
    """The aggregate tok/s of calls decoded one after another at the single-stream rate, with no
    prefill at all: the most a serialized engine can show (each call's first token is free)."""
    decode_s = sum(max(n - 1, 0) for n in token_counts) / single_stream_tok_s
    return sum(token_counts) / decode_s if decode_s > 0 else None


def _ttft_slope(ok: Sequence[CallView]) -> float | None:
    """Least-squares slope of first-token time (from the release) over completion rank, ms per call."""
    ordered = sorted((v for v in ok if v.first_token_ms is not None), key=lambda v: v.end_ms)
    if len(ordered) < 2:
        return None
    ranks = list(range(len(ordered)))
    return statistics.linear_regression(ranks, [v.first_token_ms or 0.0 for v in ordered]).slope


def serialization(
    ok: Sequence[CallView], aggregate_tok_s: float | None, single_stream_tok_s: float | None
) -> dict[str, Any]:
    """``serialized (FIFO)``, ``partially parallel (k slots)``, ``parallel`` or ``undetermined``.

    The verdict comes from timing, which is direct evidence: the peak number of successful calls
    between their first token and their end at the same instant (:func:`peak_concurrency`), 1 for
    ``serialized``, every successful call for ``parallel``, k in between. Throughput is the
    cross-check: the aggregate tok/s against the FIFO bound computed from the single-stream decode
    rate. That reference is measured at another moment (the ``warm`` phase), so on a machine whose
    load changes it can be off: a disagreement is reported (``throughput_check: inconsistent``)
    rather than allowed to overturn what the timestamps show.
    """
    by_end = sorted((v for v in ok if v.first_token_ms is not None), key=lambda v: v.end_ms)
    peak = peak_concurrency([(v.first_token_ms or 0.0, v.end_ms) for v in by_end])
    tokens = [v.call.record.completion_tokens for v in by_end]
    known = [n for n in tokens if n is not None]
    bound = fifo_bound_tok_s(known, single_stream_tok_s) if single_stream_tok_s and len(known) == len(tokens) else None
    verdict, reason = _verdict(len(by_end), peak)
    check, note = throughput_check(verdict, aggregate_tok_s, bound)
    return {
        "verdict": verdict,
        "reason": f"{reason}; throughput {check}: {note}",
        "concurrency": peak if by_end else None,
        "statistic": (
            "peak number of successful calls between first token and end of stream at one instant "
            f"(windows [first token, end − {OVERLAP_EPSILON_MS:g} ms), completion order)"
        ),
        "thresholds": {
            SERIALIZED: "concurrency == 1",
            "partially parallel (k slots)": "1 < concurrency = k < successful calls",
            PARALLEL: "concurrency == successful calls",
            UNDETERMINED: f"fewer than 2 successful calls, or every call streamed ≤ {OVERLAP_EPSILON_MS:g} ms",
            "throughput_check": (
                f"inconsistent when a serialized burst's aggregate tok/s exceeds {FIFO_THROUGHPUT_TOLERANCE:g} × "
                "the FIFO bound (calls decoded back to back at the single-stream rate, no prefill)"
            ),
        },
        "overlap_epsilon_ms": OVERLAP_EPSILON_MS,
        "throughput_check": check,
        "single_stream_decode_tok_s": single_stream_tok_s,
        "throughput_ratio": (
            aggregate_tok_s / single_stream_tok_s if aggregate_tok_s is not None and single_stream_tok_s else None
        ),
        "fifo_bound_tok_s": bound,
        "ttft_slope_ms_per_call": _ttft_slope(by_end),
        "first_token_ms_by_completion": [v.first_token_ms for v in by_end],
        "end_ms_by_completion": [v.end_ms for v in by_end],
    }


def _verdict(n_ok: int, peak: int) -> tuple[str, str]:
    if n_ok < 2:
        return UNDETERMINED, f"{n_ok} successful call(s): at least 2 are needed"
    if peak == 0:
        return UNDETERMINED, f"every call streamed for at most {OVERLAP_EPSILON_MS:g} ms: overlap cannot be seen"
    if peak == 1:
        return SERIALIZED, "each call's first token came after the previous call ended"
    if peak >= n_ok:
        return PARALLEL, f"all {n_ok} successful calls were generating at the same time"
    return f"partially parallel ({peak} slots)", f"at most {peak} of {n_ok} calls were generating at the same time"


def throughput_check(verdict: str, aggregate: float | None, bound: float | None) -> tuple[str, str]:
    """``consistent``, ``inconsistent`` or ``not measured``, and the comparison in words."""
    if aggregate is None or bound is None:
        return "not measured", "no single-stream decode rate or no usage to compare with"
    limit = FIFO_THROUGHPUT_TOLERANCE * bound
    above = aggregate > limit
    comparison = f"{aggregate:.1f} tok/s {'>' if above else '≤'} {FIFO_THROUGHPUT_TOLERANCE:g} × FIFO bound {bound:.1f}"
    if verdict == SERIALIZED and above:
        return "inconsistent", f"{comparison}: one call at a time cannot reach it at the single-stream rate"
    if verdict == SERIALIZED or verdict == UNDETERMINED:
        return "consistent", comparison
    gain = "more than one call at a time" if above else "no throughput gain from running calls together"
    return "consistent", f"{comparison}: {gain}"

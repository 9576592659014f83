"""Burst mode: N simultaneous calls released together, per-call records, and a serialization verdict.

asiai's burst (protocol digest §4) submits calls to a thread pool with no barrier (a 50 ms-1 s
dispatch spread), cuts a whole pass at one deadline, uses temperature 0.7, repeats the same prompts
in every pass, throws the per-call records away and leaves "is it serialized?" to the reader's eye.
Here every call of a burst is prepared first and released at once (:mod:`pytest_asiai.wire.dispatch`),
has its own deadline, runs at temperature 0 on the shared system prompt salted per pass (passes are
not replays of each other: llama-server's host-RAM cache would restore a repeated prompt), and every
call is kept in the report with its send time, first token, end, tokens, cached tokens and validity.

The verdict is computed, with its statistic and thresholds stated in the report: how many calls were
generating at the same instant (from each call's first token and end, in completion order), checked
against the aggregate throughput a one-at-a-time engine could reach at the case's single-stream
decode rate (``agentic.phase("warm").decode_tok_s``).
"""

from __future__ import annotations

import re
import secrets
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from pytest_asiai.config.matrix import Case
from pytest_asiai.config.stash import session_of
from pytest_asiai.gates.thresholds import meets
from pytest_asiai.measure import metrics
from pytest_asiai.measure.samplers import CaseProbe, EngineLocator
from pytest_asiai.wire.client import Timeouts
from pytest_asiai.wire.dispatch import BurstDispatch, DispatchedCall, run_dispatch

if TYPE_CHECKING:
    from pytest_asiai.config.options import Settings
    from pytest_asiai.engines.handle import EngineHandle
    from pytest_asiai.runtime.session import AsiaiSession

SECTION = "burst"

#: Burst sizes per prompt profile when neither the command line, engines.toml nor ini says.
DEFAULT_SIZES: dict[str, tuple[int, ...]] = {"full": (30, 60, 80), "smoke": (4, 8), "tiny": (2,)}
MAX_SIZE = 500
"""asiai's ``MAX_BURST_SIZE``; also keeps a burst within the usual open-files limit."""
MAX_TOKENS = 200
"""asiai's ``--burst-max-tokens``; the smoke profile's smaller output budget wins when it is lower."""

USER_TEMPLATE = (
    "Burst call #{i}. Compute (12345 + {i}) * 7 and answer with the resulting number as a single integer. "
    "Do not show any intermediate steps, only the final integer."
)
"""asiai's burst user message, so validity compares across tools."""

OVERLAP_EPSILON_MS = 2.0
"""Two calls overlap only if one's first token precedes the other's end by more than this: a FIFO
engine's next first token can be read a hair before the previous end when both arrive together."""
FIFO_THROUGHPUT_TOLERANCE = 1.25
"""A one-at-a-time engine cannot beat its FIFO bound; beyond this factor "serialized" is contradicted."""

CACHE_HIT_FRACTION = 0.5
"""A call hits the prefix cache when at least this share of its prompt was cached (the shared system
prompt is most of a burst prompt)."""

SERIALIZED, PARALLEL, UNDETERMINED = "serialized (FIFO)", "parallel", "undetermined"

GATE_DEFAULTS: dict[str, float | None] = {"burst_valid": 80.0, "burst_p95_ms": None}
"""Gate thresholds: valid answers in % of all calls (failed calls count as invalid); p95 latency in
ms over the successful calls (no default: an opt-in gate)."""

_INTEGER = re.compile(r"-?\d[\d,]*")


# ----------------------------------------------------------------------------- sizes and prompts


def sizes_for(settings: Settings, case: Case) -> tuple[int, ...]:
    """The burst sizes of a case: command line, then engines.toml, then ini, then the profile's."""
    return (
        settings.burst_sizes_override
        or case.burst_sizes
        or settings.burst_sizes_default
        or DEFAULT_SIZES[settings.profile_for(case.profile)]
    )


def parametrization(settings: Settings, cases: Sequence[Case]) -> tuple[list[tuple[Case, int]], list[str]]:
    """Every (case, size) pair and its test id, e.g. ``llamacpp-smollm2-135m-mtp_off-n30``."""
    pairs = [(case, size) for case in cases for size in sizes_for(settings, case)]
    return pairs, [f"{case.id}-n{size}" for case, size in pairs]


def user_message(i: int) -> str:
    return USER_TEMPLATE.format(i=i)


def expected_answer(i: int) -> int:
    return (12345 + i) * 7


def is_valid(content: str, i: int) -> bool:
    """asiai's check: the answer contains the integer ``(12345 + i) * 7`` (thousands separators allowed)."""
    want = expected_answer(i)
    for match in _INTEGER.findall(content):
        digits = match.replace(",", "")
        if digits.lstrip("-") and int(digits) == want:
            return True
    return False


# ----------------------------------------------------------------------------- per-call records


@dataclass(frozen=True, slots=True)
class CallView:
    """One call as the analysis sees it: times in ms from the burst's release (None: not observed)."""

    call: DispatchedCall
    sent_ms: float | None
    """Release to the end of this call's request write (None: never written)."""
    write_start_ms: float | None
    """Release to the start of this call's request write, the clock of its TTFT (None: never written)."""
    first_token_ms: float | None
    end_ms: float
    valid: bool

    @property
    def ok(self) -> bool:
        return self.call.record.ok


def views(burst: BurstDispatch) -> list[CallView]:
    out = []
    for call in burst.calls:
        record = call.record
        start = (call.start_ns - burst.release_ns) / 1e6
        first = None if record.ttft_ms is None else start + record.ttft_ms
        valid = record.ok and is_valid(record.content, call.index)
        written = start if call.sent_ns is not None else None
        end = (call.end_ns - burst.release_ns) / 1e6
        out.append(CallView(call, burst.offset_ms(call.sent_ns), written, first, end, valid))
    return out


def call_dict(view: CallView) -> dict[str, Any]:
    """One call in the report: when it was scheduled, sent, answered and finished, and what it said."""
    record = view.call.record
    return {
        "index": view.call.index,
        "scheduled_ms": 0.0,
        "write_start_ms": view.write_start_ms,
        "sent_ms": view.sent_ms,
        "first_token_ms": view.first_token_ms,
        "end_ms": view.end_ms,
        "ttft_ms": record.ttft_ms,
        "latency_ms": record.total_ms if record.ok else None,
        "ok": record.ok,
        "status": record.status,
        "error_kind": record.error_kind,
        "error": record.error,
        "finish_reason": record.finish_reason,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cached_tokens": record.cached_tokens,
        "cached_source": record.cached_source,
        "chunks": record.chunks,
        "decode_tok_s": metrics.decode_tok_s(record),
        "expected": expected_answer(view.call.index),
        "valid": view.valid,
        "answer": record.content[:200],
    }


# ----------------------------------------------------------------------------- aggregates


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
        "latency_ms": _quantiles([v.call.record.total_ms for v in ok if v.call.record.total_ms is not None]),
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


# ----------------------------------------------------------------------------- serialization


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


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


# ----------------------------------------------------------------------------- across passes

#: Per-pass scalars summarized across passes as {n, median, min, max, cv}.
_SCALARS: dict[str, tuple[str, ...]] = {
    "dispatch_spread_ms": ("dispatch_spread_ms",),
    "write_start_spread_ms": ("write_start_spread_ms",),
    "write_end_spread_ms": ("write_end_spread_ms",),
    "release_to_last_send_ms": ("release_to_last_send_ms",),
    "wall_s": ("wall_s",),
    "latency_p50_ms": ("latency_ms", "p50"),
    "latency_p95_ms": ("latency_ms", "p95"),
    "latency_p99_ms": ("latency_ms", "p99"),
    "latency_max_ms": ("latency_ms", "max"),
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
        "latency_ms": _quantiles([c["latency_ms"] for c in ok if c["latency_ms"] is not None]),
        "ttft_ms": _quantiles([c["ttft_ms"] for c in ok if c["ttft_ms"] is not None]),
        "errors": sum(p["errors"]["count"] for p in passes),
        "error_kinds": dict(sum((Counter(p["errors"]["kinds"]) for p in passes), Counter())),
        "verdict": top,
        "verdicts": verdicts,
        "consistent": len(set(verdicts)) <= 1,
    }


# ----------------------------------------------------------------------------- memory


def memory_of(probe: CaseProbe) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------- the fixture's object


class Burst:
    """The ``burst`` fixture's object: one case's bursts, each size run once per session (all passes)."""

    PROBE_INTERVAL_S = 0.5

    def __init__(self, session: AsiaiSession, case: Case) -> None:
        self.session = session
        self.case = case
        self.runs = session.settings.burst_runs
        self.sizes = sizes_for(session.settings, case)
        self.results: dict[int, dict[str, Any]] = {}
        self._salt = secrets.token_hex(4)

    def result(self, size: int) -> dict[str, Any]:
        """The burst of ``size`` calls (every pass), run now unless this session already ran it."""
        if self.case.replay is not None:
            pytest.skip(f"burst: replayed case {self.case.id} holds no burst results (bursts are measured live)")
        if size not in self.results:
            self.results[size] = self._run(size)
            self.session.record_result(self.case.id, SECTION, str(size), self.results[size])
        return self.results[size]

    def threshold(self, name: str) -> tuple[float | bool | None, str]:
        """A burst gate's threshold for this case, and where it came from."""
        value = self.session.thresholds.get(self.case, name, GATE_DEFAULTS[name])
        if value is True:
            value = GATE_DEFAULTS[name]
        return value, self.session.thresholds.source(self.case, name)

    def _run(self, size: int) -> dict[str, Any]:
        handle = self.session.handle(self.case)
        base_url = handle.ensure_running()
        agentic = self.session.agentic(self.case)
        # Measured first, one request alone on the idle engine: the rate a serialized engine can reach.
        single = agentic.phase("warm").decode_tok_s
        profile = agentic.profile
        max_tokens = min(MAX_TOKENS, profile.max_tokens)
        passes = []
        for index in range(self.runs):
            salt = f"{self._salt}-n{size}-p{index}"
            system = agentic.corpus().system("A", salt)
            bodies = [self._body(system, i, max_tokens, handle) for i in range(size)]
            passes.append({"pass": index, "salt": salt, **self._pass(handle, base_url, bodies, single)})
        return {
            "size": size,
            "runs": self.runs,
            "profile": profile.name,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "prompt": {"system": "A, salted per pass", "user": USER_TEMPLATE},
            "dispatch": "connections opened before the release; all requests written in one loop at it",
            "single_stream_decode_tok_s": single,
            **summarize_passes(passes),
            "passes": passes,
        }

    def _pass(
        self, handle: EngineHandle, base_url: str, bodies: list[dict[str, Any]], single: float | None
    ) -> dict[str, Any]:
        timeouts = Timeouts(connect_s=self.case.connect_timeout_s, deadline_s=self.case.deadline_s)
        probe = CaseProbe(EngineLocator(handle), self.PROBE_INTERVAL_S).start()
        try:
            burst = run_dispatch(base_url, bodies, api_key=self.case.api_key, timeouts=timeouts)
        finally:
            probe.stop()
        return {**analyse_pass(burst, single), "memory": memory_of(probe)}

    def _body(self, system: str, i: int, max_tokens: int, handle: EngineHandle) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.case.model_id,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user_message(i)}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        if self.case.thinking is not None:
            body.update(handle.family.thinking_fields(self.case.thinking == "on"))
        body.update(self.case.request)
        return body


# ----------------------------------------------------------------------------- gates and messages


def failure_message(result: Mapping[str, Any]) -> str | None:
    """One line per kind of failed call, or None when every call succeeded."""
    if not result["errors"]:
        return None
    lines = [f"{result['errors']} of {result['calls']} calls failed:"]
    for p in result["passes"]:
        lines += [f"  pass {p['pass']}: {m}" for m in p["errors"]["messages"]]
    return "\n".join(lines)


PASS, FAIL, NOT_MEASURED, NO_THRESHOLD, DISABLED = "pass", "fail", "not measured", "no threshold", "disabled"


@dataclass(frozen=True, slots=True)
class _Gate:
    path: tuple[str, ...]
    unit: str
    at_least: bool
    """True: the value must reach the threshold (validity); False: stay under it (latency)."""


GATES = {
    "burst_valid": _Gate(("valid_pct",), "% valid answers", at_least=True),
    "burst_p95_ms": _Gate(("latency_ms", "p95"), "ms p95 latency", at_least=False),
}


def judge(name: str, result: Mapping[str, Any], threshold: float | bool | None) -> tuple[str, str, float | None]:
    """(outcome, reason, value) of a burst gate on one size's result; never a pass when not measured."""
    gate = GATES[name]
    value = _dig(result, gate.path)
    where = f"burst of {result.get('size')}"
    if threshold is False:
        return DISABLED, f"{name}=false", value
    if value is None:
        return NOT_MEASURED, f"{where}: no successful call, so no {gate.unit}", None
    if threshold is None or threshold is True:
        return NO_THRESHOLD, f"{where}: {value:.1f} {gate.unit}; set one with --asiai-gate {name}=VALUE", value
    limit = float(threshold)
    ok, sign = meets(value, limit, gate.at_least)
    return (PASS if ok else FAIL), f"{where}: {value:.1f} {gate.unit} {sign} {limit:g}", value


def check(burst: Burst, name: str, size: int) -> None:
    """Evaluate a burst gate, report it under ``results.gates["<name>[n<size>]"]``, then pass, fail or skip."""
    result = burst.result(size)
    threshold, source = burst.threshold(name)
    outcome, reason, value = judge(name, result, threshold)
    burst.session.record_result(
        burst.case.id,
        "gates",
        f"{name}[n{size}]",
        {
            "gate": name,
            "source": "built-in",
            "value": value,
            "unit": "%" if name == "burst_valid" else "ms",
            "threshold": threshold,
            "threshold_source": source,
            "outcome": outcome,
            "reason": reason,
            "tier": None,
            "details": {"burst_size": size, "calls": result.get("calls")},
        },
    )
    if outcome == FAIL:
        pytest.fail(f"{name}: {reason}", pytrace=False)
    if outcome != PASS:
        pytest.skip(f"{name} {outcome}: {reason}")


_BURSTS: pytest.StashKey[dict[str, Burst]] = pytest.StashKey()


def burst_of(config: pytest.Config, case: Case) -> Burst:
    """The session's :class:`Burst` of a case (one per case and session)."""
    bursts = config.stash.setdefault(_BURSTS, {})
    if case.id not in bursts:
        bursts[case.id] = Burst(session_of(config), case)
    return bursts[case.id]


@pytest.fixture(name="burst")
def burst_fixture(request: pytest.FixtureRequest, asiai_case: Case) -> Burst:
    """The case's bursts: ``burst.result(size)`` releases ``size`` calls at once (each size once per session)."""
    return burst_of(request.config, asiai_case)

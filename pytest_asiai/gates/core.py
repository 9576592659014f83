"""Quality gates: pure verdicts over one case's measurements, live or replayed.

Each gate reads what it needs (phases through the ``agentic`` object, samplers through a probe
view), compares it with a threshold (default here, overridable by ``--asiai-gate NAME=VALUE``, ini
``asiai_gates`` and engines.toml ``gates``) and returns a :class:`GateResult`: the value, the
threshold and where it came from, the outcome and a one-line reason. What was not measured is
"not measured" (a skipped test), never a pass. ``tier`` says what the outcome means for the tier
table: ``eliminated`` (a hard failure), ``reserve`` (passes the hard gates but is mediocre, as in
the seed panel) or ``ok``.

Where asiai's gates are weak (protocol digest §10), these differ on purpose: early stop ignores
requests that ended with ``finish_reason == "stop"``; failed requests count against validity;
reuse publishes both the reported cached fraction and the TTFT ratio and flags when they disagree.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_asiai.agentic.replay import ReplayAgentic
from pytest_asiai.agentic.runner import Agentic, PhaseResult, PhaseRun
from pytest_asiai.config.matrix import Case
from pytest_asiai.config.stash import session_of
from pytest_asiai.gates.thresholds import Thresholds
from pytest_asiai.measure.samplers import ProbeView, Reading
from pytest_asiai.measure.validity import degenerate_reason, has_think_tag, thinking_off_requested

GATE_NAMES = ("valid", "ttft", "reuse", "swap", "early_stop", "solo", "duplicates", "thinking", "memory")

#: Every threshold name and its default (None: no default, the gate only records its value).
DEFAULTS: dict[str, float | bool | None] = {
    "valid": 80.0,  # % of requests with valid output
    "valid_clean": 95.0,  # below it a valid case is "reserve" (asiai VALID_CLEAN)
    "ttft_ok": 500.0,  # ms, warm median: above it a passing case is "reserve" (asiai TTFT_OK_MS)
    "ttft": 1500.0,  # ms, warm median: above it the gate fails (the case stays reserve)
    "ttft_hard": 3000.0,  # ms: above it the case is eliminated
    "reuse": 0.0,  # cached fraction on the prefix tests must be above it
    "reuse_ok": 0.5,  # below it a reusing case is "reserve" (asiai REUSE_OK)
    "reuse_ttft_ratio": 0.5,  # prefix/cold TTFT below it means the cache works (asiai's "partial")
    "swap": 500.0,  # MB of swap growth during the case
    "swapouts": 1000.0,  # pages swapped out during the case
    "early_stop": 2.0,  # this many cut requests fail the gate (asiai DEFAULT_EARLY_STOP_MIN_RUNS)
    "early_stop_ratio": 0.5,  # a request is cut below this share of its max_tokens
    "solo": True,
    "duplicates": True,
    "thinking": True,
    "memory": None,  # MB of engine peak RSS; no default
}

#: "Reported but ineffective": at least this cached fraction is claimed...
INEFFECTIVE_MIN_FRACTION = 0.1
#: ...while the prefix tests' TTFT is not lower than cold (ratio at least this).
NOT_LOWER_RATIO = 0.9

PASS, FAIL = "pass", "fail"
NOT_MEASURED, NOT_APPLICABLE, NO_THRESHOLD, DISABLED = "not measured", "not applicable", "no threshold", "disabled"
OK, RESERVE, ELIMINATED = "ok", "reserve", "eliminated"


@dataclass(frozen=True, slots=True)
class Threshold:
    """A resolved threshold and where it came from (default, ini, engines.toml, command line)."""

    value: float | bool | None
    source: str

    @property
    def disabled(self) -> bool:
        return self.value is False

    def number(self) -> float | None:
        """The numeric limit; ``true`` keeps the default, a missing default gives None."""
        if isinstance(self.value, bool):
            return None
        return None if self.value is None else float(self.value)


Resolve = Callable[[str], Threshold]


def resolver(thresholds: Thresholds, case: Case) -> Resolve:
    """Thresholds of one case, falling back to :data:`DEFAULTS` (``true`` means "the default")."""

    def resolve(name: str) -> Threshold:
        default = DEFAULTS.get(name)
        value = thresholds.get(case, name, default)
        if value is True and not isinstance(default, bool):
            value = default
        return Threshold(value, thresholds.source(case, name))

    return resolve


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's verdict on one case, as it lands in ``results.gates.<name>`` of the report."""

    name: str
    outcome: str
    reason: str
    value: float | int | None = None
    unit: str | None = None
    threshold: float | bool | None = None
    threshold_source: str | None = None
    tier: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome == PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.name,
            "source": "built-in",
            "value": self.value,
            "unit": self.unit,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "outcome": self.outcome,
            "reason": self.reason,
            "tier": self.tier,
            "details": dict(self.details),
        }


def _not(name: str, outcome: str, reason: str, th: Threshold | None = None, **details: Any) -> GateResult:
    return GateResult(
        name,
        outcome,
        reason,
        threshold=th.value if th else None,
        threshold_source=th.source if th else None,
        details=details,
    )


def _disabled(name: str, th: Threshold) -> GateResult:
    return _not(name, DISABLED, f"disabled ({name}=false from the {th.source})", th)


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class GateInputs:
    """What a case measured, as the gates see it."""

    phases: Mapping[str, PhaseResult]
    """Phases that sent requests, in protocol order (failed requests included)."""
    missing: Mapping[str, str]
    """Phases that were wanted but not measured, and why."""
    probes: ProbeView
    unrecorded: frozenset[str] = frozenset()
    """Request fields a recording does not have (``text``, ``finish_reason``, ``reasoning_chars``)."""
    thinking_off: bool | None = None
    """Whether thinking was requested off; None when a recording does not say."""
    source: str = "this run"

    def runs(self) -> list[PhaseRun]:
        return [run for result in self.phases.values() for run in result.runs]

    def not_sent(self) -> list[str]:
        """Requests of measured phases that could not be sent (engine down, context too small)."""
        return [error for result in self.phases.values() for error in result.errors]

    def usable(self, name: str) -> PhaseResult | None:
        """A phase whose requests all succeeded (a failed phase is "not measured" for a gate)."""
        result = self.phases.get(name)
        return result if result is not None and result.ok else None

    def why_missing(self, name: str) -> str:
        result = self.phases.get(name)
        if result is not None and not result.ok:
            return f"phase {name} failed: {result.failure_message()}"
        return self.missing.get(name, f"phase {name} was not measured")

    def nothing_measured(self) -> str:
        reasons = "; ".join(f"{k}: {v}" for k, v in self.missing.items())
        return "no phase request was measured" + (f" ({reasons})" if reasons else "")


class _NoProbes:
    """A case no sampler watched (it never started a live request)."""

    def swap(self) -> Reading:
        return Reading(None, "no sampler ran for this case")

    engine_memory = processes = swap


def thinking_requested_off(case: Case) -> bool:
    """Thinking was asked off for this case (engines.toml ``thinking`` or its request fields)."""
    return thinking_off_requested(case.request, case.thinking)


def all_phase_names(agentic: Agentic) -> list[str]:
    """Every phase this case can have: the protocol's for its engine, or the recorded ones."""
    return list(agentic.phase_names)


def run_phase_names(agentic: Agentic) -> list[str]:
    """The phases of this run: those selected with the phase tests, else all of them."""
    names = all_phase_names(agentic)
    planned = set(agentic.planned)
    return [n for n in names if n in planned] or names


def prefix_names(agentic: Agentic) -> list[str]:
    return [n for n in all_phase_names(agentic) if n.startswith("prefix-test")]


def gather(agentic: Agentic, names: Iterable[str], probes: ProbeView) -> GateInputs:
    """Request each phase (running it if needed); what cannot run is recorded as missing."""
    phases: dict[str, PhaseResult] = {}
    missing: dict[str, str] = {}
    for name in names:
        try:
            result = agentic.phase(name)
        except KeyError as exc:
            missing[name] = f"not part of this run ({exc.args[0] if exc.args else name})"
            continue
        except pytest.skip.Exception as exc:
            missing[name] = str(exc.msg)
            continue
        if result.runs:
            phases[name] = result
        else:
            missing[name] = result.failure_message() or f"phase {name} sent no request"
    replay = agentic if isinstance(agentic, ReplayAgentic) else None
    return GateInputs(
        phases=phases,
        missing=missing,
        probes=probes,
        unrecorded=replay.unrecorded if replay else frozenset(),
        thinking_off=replay.thinking_off if replay else thinking_requested_off(agentic.case),
        source=replay.source_name if replay else "this run",
    )


# ----------------------------------------------------------------------------- the gates


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.0f}"


def _where(run: PhaseRun) -> str:
    return f"{run.phase}#{run.repeat}"


def _listing(items: Sequence[str], limit: int = 4) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def gate_valid(inp: GateInputs, resolve: Resolve) -> GateResult:
    """Output validity ≥ 80% over every phase request; a failed request is never a valid one."""
    th = resolve("valid")
    if th.disabled:
        return _disabled("valid", th)
    if "text" in inp.unrecorded:
        return _not("valid", NOT_MEASURED, f"answer text not recorded in {inp.source}", th)
    runs = inp.runs()
    if not runs:
        return _not("valid", NOT_MEASURED, inp.nothing_measured(), th)
    bad: list[dict[str, Any]] = []
    for run in runs:
        why = f"failed ({run.record.error_kind})" if not run.record.ok else degenerate_reason(run.record.content)
        if why is not None:
            bad.append({"phase": run.phase, "repeat": run.repeat, "reason": why})
    not_sent = inp.not_sent()
    bad += [{"phase": error.split(":", 1)[0], "repeat": None, "reason": "not sent"} for error in not_sent]
    total = len(runs) + len(not_sent)
    pct = round(100.0 * (total - len(bad)) / total, 1)
    limit, clean = th.number() or 0.0, resolve("valid_clean").number() or 0.0
    passed = pct >= limit
    tier = ELIMINATED if not passed else RESERVE if pct < clean else OK
    reason = f"{pct:g}% of {total} requests valid ({'≥' if passed else '<'} {limit:g}%)"
    if bad:
        reason += "; invalid: " + _listing([f"{b['phase']}#{b['repeat']} {b['reason']}" for b in bad])
    details = {"requests": total, "invalid": bad, "not_sent": not_sent, "clean_threshold": clean}
    return GateResult("valid", PASS if passed else FAIL, reason, pct, "%", th.value, th.source, tier, details)


def gate_ttft(inp: GateInputs, resolve: Resolve) -> GateResult:
    """Warm median TTFT ≤ 1500 ms (the pass/fail gate). The tier bands are asiai's (digest §3.9):
    above ``ttft_ok`` (500 ms) a case is reserve even when it passes, above ``ttft`` it fails and
    stays reserve, above ``ttft_hard`` (3000 ms) it is eliminated. ``details.bound`` names the bound
    that decided the band, so the tier table can say which one put the case where."""
    th, hard, band_ok = resolve("ttft"), resolve("ttft_hard"), resolve("ttft_ok")
    if th.disabled:
        return _disabled("ttft", th)
    warm = inp.usable("warm")
    if warm is None:
        return _not("ttft", NOT_MEASURED, inp.why_missing("warm"), th)
    value = warm.ttft_ms
    if value is None:
        return _not("ttft", NOT_MEASURED, "no warm request produced a token", th)
    soft_ms, hard_ms, ok_ms = th.number(), hard.number(), band_ok.number()
    if soft_ms is None:
        return _not("ttft", NO_THRESHOLD, f"warm median TTFT {value:.0f} ms; no threshold", th)
    details: dict[str, Any] = {
        "hard_threshold": hard_ms,
        "hard_threshold_source": hard.source,
        "ok_threshold": ok_ms,
        "ok_threshold_source": band_ok.source,
        "requests": len(warm.runs),
    }
    shown = f"warm median TTFT {value:.0f} ms"
    if hard_ms is not None and value > hard_ms:
        outcome, tier, bound = FAIL, ELIMINATED, ("ttft_hard", hard_ms)
        reason = f"{shown} > {hard_ms:g} ms (ttft_hard): hard fail, eliminated"
    elif value > soft_ms:
        outcome, tier, bound = FAIL, RESERVE, ("ttft", soft_ms)
        hard_text = "no hard limit" if hard_ms is None else f"hard fail above {hard_ms:g} ms"
        reason = f"{shown} > {soft_ms:g} ms (ttft): fails, reserve ({hard_text})"
    elif ok_ms is not None and value > ok_ms:
        outcome, tier, bound = PASS, RESERVE, ("ttft_ok", ok_ms)
        reason = f"{shown} ≤ {soft_ms:g} ms (ttft): passes; > {ok_ms:g} ms (ttft_ok): reserve"
    else:
        outcome, tier, bound = PASS, OK, ("ttft", soft_ms) if ok_ms is None else ("ttft_ok", ok_ms)
        reason = f"{shown} ≤ {bound[1]:g} ms ({bound[0]})"
    details.update(bound=bound[0], bound_ms=bound[1])
    return GateResult("ttft", outcome, reason, round(value, 1), "ms", th.value, th.source, tier, details)


def _median(values: Iterable[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return statistics.median(xs) if xs else None


def reuse_signals(inp: GateInputs, names: Sequence[str]) -> dict[str, Any]:
    """Both reuse signals: the reported cached fraction and the prefix/cold TTFT ratio, per phase too.

    Only phases whose requests all succeeded count. Early-stopped requests do count (unlike asiai):
    the prompt was processed, so what the engine cached is still a fact.
    """
    per_phase: dict[str, Any] = {}
    cached = prompt = 0
    pairs = 0
    prefix_ttfts: list[float] = []
    for name in names:
        result = inp.usable(name)
        if result is None:
            continue
        recs = result.records
        got = [(r.cached_tokens, r.prompt_tokens) for r in recs if r.cached_tokens is not None and r.prompt_tokens]
        per_phase[name] = {
            "cached_tokens": [r.cached_tokens for r in recs],
            "prompt_tokens": [r.prompt_tokens for r in recs],
            "fraction": round(sum(c for c, _ in got) / sum(p for _, p in got), 3) if got else None,
            "ttft_ms": result.ttft_ms,
        }
        cached += sum(c for c, _ in got)
        prompt += sum(p for _, p in got)
        pairs += len(got)
        prefix_ttfts += [r.ttft_ms for r in recs if r.ttft_ms is not None]
    cold = inp.usable("cold")
    cold_ttft = cold.ttft_ms if cold is not None else None
    prefix_ttft = _median(prefix_ttfts)
    ratio = prefix_ttft / cold_ttft if prefix_ttft is not None and cold_ttft else None
    return {
        "fraction": min(1.0, max(0.0, cached / prompt)) if pairs else None,
        "ttft_ratio": None if ratio is None else round(ratio, 3),
        "cold_ttft_ms": cold_ttft,
        "prefix_ttft_ms": prefix_ttft,
        "per_phase": per_phase,
    }


def reuse_flags(fraction: float | None, ratio: float | None, effective_ratio: float) -> dict[str, bool]:
    """Disagreements between what the engine reports and what TTFT shows."""
    return {
        "reported_but_ineffective": fraction is not None
        and fraction >= INEFFECTIVE_MIN_FRACTION
        and ratio is not None
        and ratio >= NOT_LOWER_RATIO,
        "effective_but_unreported": (fraction is None or fraction == 0.0)
        and ratio is not None
        and ratio < effective_ratio,
    }


def gate_reuse(inp: GateInputs, resolve: Resolve, names: Sequence[str]) -> GateResult:
    """Prefix-cache reuse > 0: the reported cached fraction when there is one, else the TTFT ratio."""
    th, by_ttft = resolve("reuse"), resolve("reuse_ttft_ratio")
    if th.disabled:
        return _not("reuse", DISABLED, f"disabled (reuse=false from the {th.source})", th)
    signals = reuse_signals(inp, names)
    if not signals["per_phase"]:
        reasons = "; ".join(inp.why_missing(n) for n in names) or "the protocol has no prefix-test phase"
        return _not("reuse", NOT_MEASURED, f"no prefix test measured ({reasons})", th)
    fraction, ratio = signals["fraction"], signals["ttft_ratio"]
    effective_ratio = by_ttft.number() or 0.0
    flags = reuse_flags(fraction, ratio, effective_ratio)
    details = {**signals, **flags, "ttft_ratio_threshold": effective_ratio, "ttft_ratio_source": by_ttft.source}
    ratio_text = "—" if ratio is None else f"{ratio:.3g}"
    if fraction is not None:
        limit = th.number() or 0.0
        passed = fraction > limit
        reason = f"reported cached fraction {fraction:.3f} {'>' if passed else '≤'} {limit:g} on the prefix tests"
        reason += f" (source: reported cached_tokens; TTFT ratio prefix/cold {ratio_text})"
        value: float = round(fraction, 3)
        unit, threshold, source = "fraction", th.value, th.source
        low = fraction < (resolve("reuse_ok").number() or 0.0) or flags["reported_but_ineffective"]
    elif ratio is not None:
        passed = ratio < effective_ratio
        reason = f"no cached_tokens reported; TTFT ratio prefix/cold {ratio:.3f} {'<' if passed else '≥'} "
        reason += f"{effective_ratio:g} (source: TTFT ratio)"
        value, unit, threshold, source, low = ratio, "ratio", by_ttft.value, by_ttft.source, False
    else:
        return _not("reuse", NOT_MEASURED, "neither cached_tokens nor a cold and prefix TTFT were measured", th)
    reason += "".join(f"; flag: {name.replace('_', ' ')}" for name, on in flags.items() if on)
    details["verdict_source"] = "reported" if fraction is not None else "ttft_ratio"
    tier = ELIMINATED if not passed else RESERVE if low else OK
    return GateResult("reuse", PASS if passed else FAIL, reason, value, unit, threshold, source, tier, details)


def gate_swap(inp: GateInputs, resolve: Resolve) -> GateResult:
    """Swap growth < 500 MB and swap-outs < 1000 pages during the case."""
    th, outs_th = resolve("swap"), resolve("swapouts")
    if th.disabled:
        return _disabled("swap", th)
    reading = inp.probes.swap()
    if reading.value is None:
        return _not("swap", NOT_MEASURED, reading.reason, th)
    growth, outs = reading.value.get("growth_mb"), reading.value.get("swapouts_delta")
    if growth is None:
        return _not("swap", NOT_MEASURED, "swap growth not recorded", th)
    limit, out_limit = th.number() or 0.0, outs_th.number()
    problems = []
    if growth >= limit:
        problems.append(f"swap grew {growth:g} MB ≥ {limit:g} MB")
    if outs is not None and out_limit is not None and outs >= out_limit:
        problems.append(f"{outs} swap-outs ≥ {out_limit:g}")
    outs_text = "not recorded" if outs is None else f"{outs}"
    summary = f"swap growth {growth:g} MB (limit {limit:g}), swap-outs {outs_text} (limit {out_limit:g})"
    details = {**reading.value, "swapouts_threshold": out_limit, "swapouts_threshold_source": outs_th.source}
    if problems:
        return GateResult("swap", FAIL, "; ".join(problems), growth, "MB", th.value, th.source, ELIMINATED, details)
    return GateResult("swap", PASS, summary, growth, "MB", th.value, th.source, OK, details)


def gate_early_stop(inp: GateInputs, resolve: Resolve) -> GateResult:
    """Fewer than 2 requests cut below half their max_tokens without ``finish_reason == "stop"``.

    A model that chose to stop is not an engine bug (asiai ignored finish_reason); an unknown
    finish reason (not recorded) is not "stop", so old recordings are judged as asiai judged them.
    """
    th, ratio_th = resolve("early_stop"), resolve("early_stop_ratio")
    if th.disabled:
        return _disabled("early_stop", th)
    ratio = ratio_th.number() or 0.0
    judged, cut = 0, []
    for run in inp.runs():
        rec = run.record
        if not rec.ok or run.max_tokens <= 0 or rec.completion_tokens is None:
            continue
        judged += 1
        if rec.completion_tokens < ratio * run.max_tokens and rec.finish_reason != "stop":
            cut.append(
                {"phase": run.phase, "repeat": run.repeat, "completion_tokens": rec.completion_tokens,
                 "max_tokens": run.max_tokens, "finish_reason": rec.finish_reason}
            )  # fmt: skip
    if judged == 0:
        return _not("early_stop", NOT_MEASURED, "no successful request reported its completion tokens", th)
    limit = th.number()
    if limit is None:
        return _not("early_stop", NO_THRESHOLD, f"{len(cut)} of {judged} requests cut early; no threshold", th)
    listing = _listing([f"{c['phase']}#{c['repeat']} {c['completion_tokens']}/{c['max_tokens']}" for c in cut])
    details = {"requests": judged, "cut": cut, "ratio": ratio, "ratio_source": ratio_th.source}
    finish_note = " (finish_reason not recorded)" if "finish_reason" in inp.unrecorded else ""
    if len(cut) >= limit:
        reason = f"early stop: {len(cut)} of {judged} requests cut below {ratio:g}× max_tokens without "
        reason += f'finish_reason "stop"{finish_note}: {listing}'
        return GateResult("early_stop", FAIL, reason, len(cut), "requests", th.value, th.source, ELIMINATED, details)
    reason = f"{len(cut)} of {judged} requests cut early (fails at {limit:g})" + (f": {listing}" if cut else "")
    return GateResult("early_stop", PASS, reason, len(cut), "requests", th.value, th.source, OK, details)


def _short(command: Any, width: int = 60) -> str:
    """A command line for a one-line reason: the program's base name, then its arguments."""
    program, _, args = str(command or "").partition(" ")
    text = f"{program.rsplit('/', 1)[-1]} {args}".strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def _process_gate(name: str, key: str, what: str, inp: GateInputs, resolve: Resolve) -> GateResult:
    th = resolve(name)
    if th.disabled:
        return _disabled(name, th)
    reading = inp.probes.processes()
    if reading.value is None:
        return _not(name, NOT_MEASURED, reading.reason, th)
    found = reading.value.get(key)
    if found is None:
        return _not(name, NOT_MEASURED, f"{what} not recorded in {inp.source}", th)
    details = {key: list(found), "engine_pids": reading.value.get("engine_pids")}
    if not found:
        return GateResult(name, PASS, f"no {what}", 0, "processes", th.value, th.source, OK, details)
    listing = _listing([f"{p.get('engine') or ''} pid {p.get('pid')}: {_short(p.get('command'))}" for p in found])
    reason = f"{len(found)} {what}: {listing}"
    return GateResult(name, FAIL, reason, len(found), "processes", th.value, th.source, ELIMINATED, details)


def gate_solo(inp: GateInputs, resolve: Resolve) -> GateResult:
    """SOLO: no other known engine resident while this one is measured."""
    return _process_gate("solo", "others", "other engine process(es) resident", inp, resolve)


def gate_duplicates(inp: GateInputs, resolve: Resolve) -> GateResult:
    """No second process of this engine (its own process tree excluded)."""
    return _process_gate("duplicates", "duplicates", "duplicate process(es) of this engine", inp, resolve)


def gate_thinking(inp: GateInputs, resolve: Resolve) -> GateResult:
    """Thinking requested off is honoured: no reasoning streamed, no inline ``<think>`` in the answer."""
    th = resolve("thinking")
    if th.disabled:
        return _disabled("thinking", th)
    if inp.thinking_off is None:
        return _not("thinking", NOT_MEASURED, f"whether thinking was requested off is not recorded in {inp.source}", th)
    if not inp.thinking_off:
        return _not("thinking", NOT_APPLICABLE, "thinking was not requested off for this case", th)
    if "reasoning_chars" in inp.unrecorded:
        return _not("thinking", NOT_MEASURED, f"reasoning not recorded in {inp.source}", th)
    runs = inp.runs()
    if not runs:
        return _not("thinking", NOT_MEASURED, inp.nothing_measured(), th)
    leaks = []
    for run in runs:
        rec = run.record
        if rec.reasoning_chars > 0 or (rec.reasoning_tokens or 0) > 0:
            leaks.append(f"{_where(run)} streamed {rec.reasoning_chars} reasoning chars")
        elif "text" not in inp.unrecorded and has_think_tag(rec.content):
            leaks.append(f"{_where(run)} has inline <think> in its answer")
    details = {"requests": len(runs), "leaks": leaks}
    if leaks:
        reason = f"thinking requested off but {len(leaks)} of {len(runs)} requests reasoned: {_listing(leaks)}"
        return GateResult("thinking", FAIL, reason, len(leaks), "requests", th.value, th.source, ELIMINATED, details)
    reason = f"thinking off honoured: no reasoning in {len(runs)} requests"
    return GateResult("thinking", PASS, reason, 0, "requests", th.value, th.source, OK, details)


def gate_memory(inp: GateInputs, resolve: Resolve) -> GateResult:
    """The engine's peak RSS during the case is recorded; it fails only above a threshold you set."""
    th = resolve("memory")
    if th.disabled:
        return _disabled("memory", th)
    reading = inp.probes.engine_memory()
    peak = reading.value.get("rss_peak_mb") if reading.value is not None else None
    if reading.value is None or peak is None:
        return _not("memory", NOT_MEASURED, reading.reason or "engine RSS not recorded", th)
    details = dict(reading.value)
    limit = th.number()
    if limit is None:
        reason = f"engine peak RSS {peak:g} MB recorded; no threshold (set one with --asiai-gate memory=MB)"
        return GateResult("memory", NO_THRESHOLD, reason, peak, "MB", None, th.source, None, details)
    passed = peak <= limit
    reason = f"engine peak RSS {peak:g} MB {'≤' if passed else '>'} {limit:g} MB"
    tier = OK if passed else ELIMINATED
    return GateResult("memory", PASS if passed else FAIL, reason, peak, "MB", th.value, th.source, tier, details)


# ----------------------------------------------------------------------------- running a gate


def probes_of(config: pytest.Config, agentic: Agentic) -> ProbeView:
    """The probe view of a case: the recording's, or the live sampler started with the case."""
    if isinstance(agentic, ReplayAgentic):
        return agentic.probes
    view = session_of(config).probes.views.get(agentic.case.id)
    return view if view is not None else _NoProbes()


def evaluate(config: pytest.Config, agentic: Agentic, name: str) -> GateResult:
    """Gather the gate's inputs (running phases as needed), judge them and report the result."""
    if name not in GATE_NAMES:
        raise KeyError(f"unknown gate {name!r}; gates are {', '.join(GATE_NAMES)}")
    session = session_of(config)
    resolve = resolver(session.thresholds, agentic.case)
    probes = probes_of(config, agentic)
    if name == "ttft":
        result = gate_ttft(gather(agentic, ["warm"], probes), resolve)
    elif name == "reuse":
        names = prefix_names(agentic)
        result = gate_reuse(gather(agentic, ["cold", *names], probes), resolve, names)
    else:
        result = EVALUATORS[name](gather(agentic, run_phase_names(agentic), probes), resolve)
    session.record_result(agentic.case.id, "gates", name, result.to_dict())
    return result


EVALUATORS: dict[str, Callable[[GateInputs, Resolve], GateResult]] = {
    "valid": gate_valid,
    "ttft": gate_ttft,
    "swap": gate_swap,
    "early_stop": gate_early_stop,
    "solo": gate_solo,
    "duplicates": gate_duplicates,
    "thinking": gate_thinking,
    "memory": gate_memory,
}


def conclude(result: GateResult) -> None:
    """Turn a verdict into the test outcome: fail, skip (with the reason) or pass."""
    if result.outcome == FAIL:
        pytest.fail(f"{result.name}: {result.reason}", pytrace=False)
    if result.outcome != PASS:
        pytest.skip(f"{result.name} {result.outcome}: {result.reason}")


def check(config: pytest.Config, agentic: Agentic, name: str) -> GateResult:
    """Evaluate, report and conclude one gate: what ``suites/test_gates.py`` calls."""
    result = evaluate(config, agentic, name)
    conclude(result)
    return result


# ----------------------------------------------------------------------------- user-written gates

#: Suites with their own report sections: their tests are not gates even when they use ``agentic``.
NOT_GATES = ("burst", "toolcall", "endurance")
#: Parameters of the built-in suites (phases, gates, regression checks): their tests are not user gates.
BUILT_IN_PARAMS = frozenset({"phase_name", "gate_name", "asiai_metric"})
_OUTCOMES = {"passed": PASS, "failed": FAIL, "skipped": NOT_MEASURED}


def user_gate_key(item: pytest.Item) -> str | None:
    """A user gate's report key (``test_decode_floor``, plus any extra parameters), or None.

    A user gate is any test of a case that requests ``agentic`` and is neither a phase test, a
    built-in gate, a regression check, nor part of a suite with its own report section.
    """
    callspec = getattr(item, "callspec", None)
    if callspec is None or "asiai_case" not in callspec.params:
        return None
    if "agentic" not in getattr(item, "fixturenames", ()) or BUILT_IN_PARAMS & set(callspec.params):
        return None
    if any(item.get_closest_marker(m) for m in NOT_GATES):
        return None
    case_id = callspec.params["asiai_case"].id
    extra = "-".join(p for p in str(callspec.id).split(case_id, 1) if p).strip("-")
    name = getattr(item, "originalname", None) or item.name
    return f"{name}[{extra}]" if extra else str(name)


def _failure_line(report: pytest.TestReport) -> str | None:
    """The assertion or skip message (not the ``file:line: AssertionError`` locator)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).strip().splitlines()[0] if str(crash.message).strip() else None
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    return None


def user_gate_event(
    item: pytest.Item, report: pytest.TestReport, events: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The report event of a user gate's outcome, with the metrics it recorded, or None."""
    key = user_gate_key(item)
    if key is None:
        return None
    metrics = {e["name"]: e["value"] for e in events if e.get("type") == "metric"}
    outcome = FAIL if getattr(report, "wasxfail", None) is not None else _OUTCOMES.get(report.outcome, report.outcome)
    value = {
        "gate": key,
        "source": "user",
        "nodeid": item.nodeid,
        "value": None,
        "threshold": None,
        "outcome": outcome,
        "reason": _failure_line(report) or ("passed" if outcome == PASS else None),
        "tier": {PASS: OK, FAIL: ELIMINATED}.get(outcome),
        "metrics": metrics,
    }
    return {"type": "result", "section": "gates", "key": key, "value": value}

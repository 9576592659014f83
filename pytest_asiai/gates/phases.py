"""The phase gates: validity, TTFT, swap, early stop, SOLO, duplicates, thinking and memory of a case.

Each gate is a pure function of a case's measurements (:class:`~pytest_asiai.gates.inputs.GateInputs`)
and its thresholds (:data:`DEFAULTS`, overridable by ``--asiai-gate NAME=VALUE``, ini ``asiai_gates``
and engines.toml ``gates``), returning a :class:`~pytest_asiai.gates.verdict.GateResult` with its tier
effect: ``eliminated`` (a hard failure), ``reserve`` (passes the hard gates but is mediocre, as in
the seed panel) or ``ok``. What was not measured is "not measured", never a pass. Reuse lives in
:mod:`pytest_asiai.gates.reuse`; :mod:`pytest_asiai.gates.core` runs them.

Where asiai's gates are weak (docs/asiai-protocol.md, "Verdicts and gates"), these differ on
purpose: early stop ignores requests that ended with ``finish_reason == "stop"``; failed requests
count against validity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_asiai.agentic.results import PhaseRun
from pytest_asiai.config.matrix import Case
from pytest_asiai.gates.inputs import GateInputs
from pytest_asiai.gates.thresholds import Threshold, Thresholds
from pytest_asiai.gates.verdict import (
    DISABLED,
    ELIMINATED,
    FAIL,
    NO_THRESHOLD,
    NOT_APPLICABLE,
    NOT_MEASURED,
    OK,
    PASS,
    RESERVE,
    Gate,
    GateResult,
    disabled,
    listing,
    unmeasured,
    verdict,
)
from pytest_asiai.measure.validity import degenerate_reason, has_think_tag

__all__ = ["DEFAULTS", "DISABLED", "EVALUATORS", "GATES", "GATE_NAMES", "Resolve", "resolver"]

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

GATES: Mapping[str, Gate] = {
    g.name: g
    for g in (
        Gate("valid", DEFAULTS["valid"], "%", what="valid requests"),
        Gate("ttft", DEFAULTS["ttft"], "ms", at_least=False, what="warm median TTFT"),
        Gate("reuse", DEFAULTS["reuse"], "fraction", what="prefix-cache reuse"),
        Gate("swap", DEFAULTS["swap"], "MB", at_least=False, what="swap growth"),
        Gate("early_stop", DEFAULTS["early_stop"], "requests", at_least=False, what="requests cut early"),
        Gate("solo", DEFAULTS["solo"], "processes", at_least=False, what="other engine processes"),
        Gate("duplicates", DEFAULTS["duplicates"], "processes", at_least=False, what="duplicate processes"),
        Gate("thinking", DEFAULTS["thinking"], "requests", at_least=False, what="requests that reasoned"),
        Gate("memory", DEFAULTS["memory"], "MB", at_least=False, what="engine peak RSS"),
    )
}
"""The phase gates, in the order of their tests (``test_gate[<case>-<gate>]``)."""
GATE_NAMES = tuple(GATES)

Resolve = Callable[[str], Threshold]


def resolver(thresholds: Thresholds, case: Case) -> Resolve:
    """Thresholds of one case, falling back to :data:`DEFAULTS` (``true`` means "the default")."""
    return lambda name: thresholds.resolve(case, name, DEFAULTS.get(name))


def _where(run: PhaseRun) -> str:
    return f"{run.phase}#{run.repeat}"


def gate_valid(inp: GateInputs, resolve: Resolve) -> GateResult:
    """Output validity ≥ 80% over every phase request; a failed request is never a valid one."""
    th = resolve("valid")
    if th.disabled:
        return disabled("valid", th)
    if "text" in inp.unrecorded:
        return unmeasured("valid", NOT_MEASURED, f"answer text not recorded in {inp.source}", th)
    runs = inp.runs()
    if not runs:
        return unmeasured("valid", NOT_MEASURED, inp.nothing_measured(), th)
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
        reason += "; invalid: " + listing([f"{b['phase']}#{b['repeat']} {b['reason']}" for b in bad])
    details = {"requests": total, "invalid": bad, "not_sent": not_sent, "clean_threshold": clean}
    return verdict(GATES["valid"], th, PASS if passed else FAIL, reason, pct, tier=tier, details=details)


def gate_ttft(inp: GateInputs, resolve: Resolve) -> GateResult:
    """Warm median TTFT ≤ 1500 ms (the pass/fail gate).

    The tier bands are asiai's (docs/asiai-protocol.md, "Tiers"): above ``ttft_ok`` (500 ms) a case
    is reserve even when it passes, above ``ttft`` it fails and stays reserve, above ``ttft_hard``
    (3000 ms) it is eliminated. ``details.bound`` names the bound
    that decided the band, so the tier table can say which one put the case where."""
    th, hard, band_ok = resolve("ttft"), resolve("ttft_hard"), resolve("ttft_ok")
    if th.disabled:
        return disabled("ttft", th)
    warm = inp.usable("warm")
    if warm is None:
        return unmeasured("ttft", NOT_MEASURED, inp.why_missing("warm"), th)
    value = warm.ttft_ms
    if value is None:
        return unmeasured("ttft", NOT_MEASURED, "no warm request produced a token", th)
    soft_ms, hard_ms, ok_ms = th.number(), hard.number(), band_ok.number()
    if soft_ms is None:
        return unmeasured("ttft", NO_THRESHOLD, f"warm median TTFT {value:.0f} ms; no threshold", th)
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
    return verdict(GATES["ttft"], th, outcome, reason, round(value, 1), tier=tier, details=details)


def gate_swap(inp: GateInputs, resolve: Resolve) -> GateResult:
    """Swap growth < 500 MB and swap-outs < 1000 pages during the case."""
    th, outs_th = resolve("swap"), resolve("swapouts")
    if th.disabled:
        return disabled("swap", th)
    reading = inp.samplers.swap()
    if reading.value is None:
        return unmeasured("swap", NOT_MEASURED, reading.reason, th)
    growth, outs = reading.value.get("growth_mb"), reading.value.get("swapouts_delta")
    if growth is None:
        return unmeasured("swap", NOT_MEASURED, "swap growth not recorded", th)
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
        return verdict(GATES["swap"], th, FAIL, "; ".join(problems), growth, tier=ELIMINATED, details=details)
    return verdict(GATES["swap"], th, PASS, summary, growth, tier=OK, details=details)


def gate_early_stop(inp: GateInputs, resolve: Resolve) -> GateResult:
    """Fewer than 2 requests cut below half their max_tokens without ``finish_reason == "stop"``.

    A model that chose to stop is not an engine bug (asiai ignored finish_reason); an unknown
    finish reason (not recorded) is not "stop", so old recordings are judged as asiai judged them.
    """
    th, ratio_th = resolve("early_stop"), resolve("early_stop_ratio")
    if th.disabled:
        return disabled("early_stop", th)
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
        return unmeasured("early_stop", NOT_MEASURED, "no successful request reported its completion tokens", th)
    limit = th.number()
    if limit is None:
        return unmeasured("early_stop", NO_THRESHOLD, f"{len(cut)} of {judged} requests cut early; no threshold", th)
    cuts = listing([f"{c['phase']}#{c['repeat']} {c['completion_tokens']}/{c['max_tokens']}" for c in cut])
    details = {"requests": judged, "cut": cut, "ratio": ratio, "ratio_source": ratio_th.source}
    finish_note = " (finish_reason not recorded)" if "finish_reason" in inp.unrecorded else ""
    if len(cut) >= limit:
        reason = f"early stop: {len(cut)} of {judged} requests cut below {ratio:g}× max_tokens without "
        reason += f'finish_reason "stop"{finish_note}: {cuts}'
        return verdict(GATES["early_stop"], th, FAIL, reason, len(cut), tier=ELIMINATED, details=details)
    reason = f"{len(cut)} of {judged} requests cut early (fails at {limit:g})" + (f": {cuts}" if cut else "")
    return verdict(GATES["early_stop"], th, PASS, reason, len(cut), tier=OK, details=details)


def _short(command: Any, width: int = 60) -> str:
    """A command line for a one-line reason: the program's base name, then its arguments."""
    program, _, args = str(command or "").partition(" ")
    text = f"{program.rsplit('/', 1)[-1]} {args}".strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def _process_gate(name: str, key: str, what: str, inp: GateInputs, resolve: Resolve) -> GateResult:
    th = resolve(name)
    if th.disabled:
        return disabled(name, th)
    reading = inp.samplers.processes()
    if reading.value is None:
        return unmeasured(name, NOT_MEASURED, reading.reason, th)
    found = reading.value.get(key)
    if found is None:
        return unmeasured(name, NOT_MEASURED, f"{what} not recorded in {inp.source}", th)
    details = {key: list(found), "engine_pids": reading.value.get("engine_pids")}
    if not found:
        return verdict(GATES[name], th, PASS, f"no {what}", 0, tier=OK, details=details)
    shown = listing([f"{p.get('engine') or ''} pid {p.get('pid')}: {_short(p.get('command'))}" for p in found])
    reason = f"{len(found)} {what}: {shown}"
    return verdict(GATES[name], th, FAIL, reason, len(found), tier=ELIMINATED, details=details)


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
        return disabled("thinking", th)
    if inp.thinking_off is None:
        return unmeasured(
            "thinking", NOT_MEASURED, f"whether thinking was requested off is not recorded in {inp.source}", th
        )
    if not inp.thinking_off:
        return unmeasured("thinking", NOT_APPLICABLE, "thinking was not requested off for this case", th)
    if "reasoning_chars" in inp.unrecorded:
        return unmeasured("thinking", NOT_MEASURED, f"reasoning not recorded in {inp.source}", th)
    runs = inp.runs()
    if not runs:
        return unmeasured("thinking", NOT_MEASURED, inp.nothing_measured(), th)
    leaks = []
    for run in runs:
        rec = run.record
        if rec.reasoning_chars > 0 or (rec.reasoning_tokens or 0) > 0:
            leaks.append(f"{_where(run)} streamed {rec.reasoning_chars} reasoning chars")
        elif "text" not in inp.unrecorded and has_think_tag(rec.content):
            leaks.append(f"{_where(run)} has inline <think> in its answer")
    details = {"requests": len(runs), "leaks": leaks}
    if leaks:
        reason = f"thinking requested off but {len(leaks)} of {len(runs)} requests reasoned: {listing(leaks)}"
        return verdict(GATES["thinking"], th, FAIL, reason, len(leaks), tier=ELIMINATED, details=details)
    reason = f"thinking off honoured: no reasoning in {len(runs)} requests"
    return verdict(GATES["thinking"], th, PASS, reason, 0, tier=OK, details=details)


def gate_memory(inp: GateInputs, resolve: Resolve) -> GateResult:
    """The engine's peak RSS during the case is recorded; it fails only above a threshold you set."""
    th = resolve("memory")
    if th.disabled:
        return disabled("memory", th)
    reading = inp.samplers.engine_memory()
    peak = reading.value.get("rss_peak_mb") if reading.value is not None else None
    if reading.value is None or peak is None:
        return unmeasured("memory", NOT_MEASURED, reading.reason or "engine RSS not recorded", th)
    details = dict(reading.value)
    limit = th.number()
    if limit is None:
        reason = f"engine peak RSS {peak:g} MB recorded; no threshold (set one with --asiai-gate memory=MB)"
        return verdict(GATES["memory"], th, NO_THRESHOLD, reason, peak, details=details)
    passed = peak <= limit
    reason = f"engine peak RSS {peak:g} MB {'≤' if passed else '>'} {limit:g} MB"
    tier = OK if passed else ELIMINATED
    return verdict(GATES["memory"], th, PASS if passed else FAIL, reason, peak, tier=tier, details=details)


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
"""The gates judged over every phase of the run (``ttft`` reads the warm phase alone; ``reuse`` is
:func:`pytest_asiai.gates.reuse.gate_reuse`)."""

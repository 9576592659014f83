"""The reuse gate: is the prefix cache used, by the engine's reported cached tokens or by TTFT?

It publishes both signals (the reported cached fraction and the prefix/cold TTFT ratio) and flags
when they disagree, where asiai read only one.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from pytest_asiai.gates.inputs import GateInputs
from pytest_asiai.gates.phases import Resolve
from pytest_asiai.gates.verdict import (
    ELIMINATED,
    FAIL,
    NOT_MEASURED,
    OK,
    PASS,
    RESERVE,
    GateResult,
    disabled,
    unmeasured,
)

#: "Reported but ineffective": at least this cached fraction is claimed...
INEFFECTIVE_MIN_FRACTION = 0.1
#: ...while the prefix tests' TTFT is not lower than cold (ratio at least this).
NOT_LOWER_RATIO = 0.9


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
        return disabled("reuse", th)
    signals = reuse_signals(inp, names)
    if not signals["per_phase"]:
        reasons = "; ".join(inp.why_missing(n) for n in names) or "the protocol has no prefix-test phase"
        return unmeasured("reuse", NOT_MEASURED, f"no prefix test measured ({reasons})", th)
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
        return unmeasured("reuse", NOT_MEASURED, "neither cached_tokens nor a cold and prefix TTFT were measured", th)
    reason += "".join(f"; flag: {name.replace('_', ' ')}" for name, on in flags.items() if on)
    details["verdict_source"] = "reported" if fraction is not None else "ttft_ratio"
    tier = ELIMINATED if not passed else RESERVE if low else OK
    return GateResult("reuse", PASS if passed else FAIL, reason, value, unit, threshold, source, tier, details)

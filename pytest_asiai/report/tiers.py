"""Tiers as in the seed panel: winner, viable, reserve, eliminated, ranked by decode per machine.

Pure functions over the report model's cases (the dicts the controller collects), so the tier
table and the report's ``tier`` field come from exactly what the JSON report holds, under xdist too.

asiai's logic (protocol digest §3.9) with our gates: a case's verdict is the worst tier effect of
its gates (``ok`` < ``reserve`` < ``eliminated``; a gate that was not measured is neutral); a cause
names the bound that decided it (``ttft 600 ms > ttft_ok 500``: the TTFT gate's bands). Within
a machine block, the passing cases (ok and reserve) are sorted by warm decode; ``top`` is the best
of them. Tier 1 "winner" holds the ok cases decoding at least half as fast as ``top``, tier 2
"viable" the other ok cases, tier 3 "reserve" and tier 4 "eliminated" the rest. The first case of
the first non-empty tier among 1 and 2 gets the star; a reserve case never does. A case no gate
judged is not tiered (``None``).

Beside the seed's columns a row carries one derived figure, the May table's lower-bound estimate of
a 60-turn agent session: ``60 × (warm TTFT + max_tokens / warm decode)`` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_asiai.measure.machine import case_machine_id

WINNER, VIABLE, RESERVE, ELIMINATED = "winner", "viable", "reserve", "eliminated"
TIERS = (WINNER, VIABLE, RESERVE, ELIMINATED)
#: A winner decodes at least this share of the block's best passing decode rate.
FAST_SHARE = 0.5
#: Agent turns in the lower-bound session estimate.
SESSION_TURNS = 60
_SEVERITY = {"ok": 0, "reserve": 1, "eliminated": 2}


@dataclass(slots=True)
class Row:
    """One case's line in the tier table."""

    case_id: str
    machine: str
    decode: float | None = None
    peak: float | None = None
    long_decode: float | None = None
    ttft_ms: float | None = None
    reuse: float | None = None
    """The prefix tests' reported cached fraction (cross-user reuse, the seed's "reuse"), not warm's."""
    tok_s_per_watt: float | None = None
    """Warm median tokens per second per SoC watt (asiai's ``tok_s_per_soc_watt``)."""
    ram_mb: float | None = None
    """Engine RSS peak over the case (the figure that governs memory fit)."""
    ram_warm_mb: float | None = None
    """Engine RSS steady value: the median of the warm requests' peaks."""
    valid_pct: float | None = None
    version: str | None = None
    session_s: float | None = None
    """Derived: 60 × (warm TTFT + max_tokens / warm decode), seconds; a lower bound."""
    burst_tok_s: float | None = None
    """Median aggregate output tok/s of the largest burst measured (``burst_size`` calls)."""
    burst_size: int | None = None
    verdict: str | None = None
    """``ok``, ``reserve`` or ``eliminated``; None when no gate judged the case."""
    causes: list[str] = field(default_factory=list)
    tier: str | None = None
    star: bool = False


def _stat(case: Mapping[str, Any], phase: str, metric: str, key: str = "median") -> float | None:
    value = (((case.get("phases") or {}).get(phase) or {}).get("stats") or {}).get(metric, {}).get(key)
    return None if value is None else float(value)


def _peak_decode(case: Mapping[str, Any]) -> float | None:
    values = [_stat(case, name, "decode_tok_s", "max") for name in (case.get("phases") or {})]
    measured = [v for v in values if v is not None]
    return max(measured) if measured else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cause(name: str, gate: Mapping[str, Any]) -> str:
    value, unit = gate.get("value"), gate.get("unit")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(name)
    text = f"{name} {value:g}{'' if unit in (None, 'fraction', 'ratio') else ' ' + str(unit)}"
    details = gate.get("details") or {}
    bound, limit = details.get("bound"), _number(details.get("bound_ms"))
    return f"{text} > {bound} {limit:g}" if bound and limit is not None else text


def verdict(gates: Mapping[str, Mapping[str, Any]]) -> tuple[str | None, list[str]]:
    """The worst tier effect among the gates, and the gates that caused it."""
    effects = {name: g.get("tier") for name, g in gates.items() if g.get("tier") in _SEVERITY}
    if not effects:
        return None, []
    worst = max(effects.values(), key=lambda t: _SEVERITY[str(t)])
    causes = [_cause(name, gates[name]) for name, t in effects.items() if t == worst and worst != "ok"]
    return str(worst), causes


def _largest_burst(results: Mapping[str, Any]) -> tuple[int | None, float | None]:
    """The largest burst size with a measured aggregate tok/s, and that rate (median over passes)."""
    measured = []
    for key, entry in (results.get("burst") or {}).items():
        if not isinstance(entry, Mapping):
            continue
        rate = _number(((entry.get("summary") or {}).get("aggregate_tok_s") or {}).get("median"))
        if str(key).isdigit() and rate is not None:
            measured.append((int(key), rate))
    return max(measured) if measured else (None, None)


def _warm_power(probes: Mapping[str, Any]) -> float | None:
    """Warm median t/s/W, cold when there is no warm phase (asiai's fallback, digest §2.4)."""
    phases = (probes.get("power") or {}).get("phases") or {}
    for name in ("warm", "cold"):
        value = _number((phases.get(name) or {}).get("tok_s_per_soc_watt"))
        if value is not None:
            return value
    return None


def _max_tokens(case: Mapping[str, Any]) -> int | None:
    runs = (((case.get("phases") or {}).get("warm") or {}).get("runs")) or []
    values = [int(r["max_tokens"]) for r in runs if isinstance(r, Mapping) and isinstance(r.get("max_tokens"), int)]
    return max(values) if values else None


def session_estimate(ttft_ms: float | None, decode: float | None, max_tokens: int | None) -> float | None:
    """60 × (TTFT + max_tokens / decode) seconds: a lower bound for a 60-turn agent session."""
    if ttft_ms is None or not decode or not max_tokens:
        return None
    return round(SESSION_TURNS * (ttft_ms / 1000.0 + max_tokens / decode), 1)


def row_of(case: Mapping[str, Any], local_machine: str | None) -> Row:
    """A case's figures for the table ("—" later for every None: not measured)."""
    results = case.get("results") or {}
    gates = results.get("gates") or {}
    probes = results.get("probes") or {}
    reuse_details = (gates.get("reuse") or {}).get("details") or {}
    row = Row(
        case_id=str(case.get("id")),
        machine=case_machine_id(local_machine, case) or "unknown machine",
        decode=_stat(case, "warm", "decode_tok_s"),
        peak=_peak_decode(case),
        long_decode=_stat(case, "long-context", "decode_tok_s"),
        ttft_ms=_stat(case, "warm", "ttft_ms"),
        reuse=_number(reuse_details.get("fraction")),
        tok_s_per_watt=_warm_power(probes),
        ram_mb=_number((probes.get("engine") or {}).get("rss_peak_mb")),
        ram_warm_mb=_number((probes.get("engine") or {}).get("rss_warm_mb")),
        valid_pct=_number((gates.get("valid") or {}).get("value")),
        version=(case.get("engine") or {}).get("version"),
    )
    row.session_s = session_estimate(row.ttft_ms, row.decode, _max_tokens(case))
    row.burst_size, row.burst_tok_s = _largest_burst(results)
    row.verdict, row.causes = verdict(gates)
    return row


def _by_decode(rows: Iterable[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r.decode is None, -(r.decode or 0.0)))


def rank_block(rows: list[Row]) -> list[Row]:
    """Assign tiers and the star inside one machine block; return the rows in display order."""
    passed = _by_decode(r for r in rows if r.verdict in ("ok", "reserve"))
    top = passed[0].decode if passed else None
    for row in rows:
        if row.verdict == "eliminated":
            row.tier = ELIMINATED
        elif row.verdict == "reserve":
            row.tier = RESERVE
        elif row.verdict == "ok":
            fast = top is not None and top > 0 and row.decode is not None and row.decode >= FAST_SHARE * top
            row.tier = WINNER if fast else VIABLE
    ordered = [r for tier in TIERS for r in _by_decode(x for x in rows if x.tier == tier)]
    ordered += _by_decode(r for r in rows if r.tier is None)
    starred = next((r for r in ordered if r.tier in (WINNER, VIABLE)), None)
    if starred is not None:
        starred.star = True
    return ordered


def rank(cases: Iterable[Mapping[str, Any]], local_machine: str | None) -> dict[str, list[Row]]:
    """Rows per machine block (blocks in order of first appearance), tiered and ranked."""
    blocks: dict[str, list[Row]] = {}
    for case in cases:
        if case.get("phases") or (case.get("results") or {}).get("gates"):
            row = row_of(case, local_machine)
            blocks.setdefault(row.machine, []).append(row)
    return {machine: rank_block(rows) for machine, rows in blocks.items()}


def tiers_by_case(cases: Iterable[Mapping[str, Any]], local_machine: str | None) -> dict[str, str | None]:
    """Each case's tier, for the report's ``cases[i].tier``."""
    return {row.case_id: row.tier for rows in rank(cases, local_machine).values() for row in rows}

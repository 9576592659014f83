"""Tiers as in the seed panel: winner, viable, reserve, eliminated, ranked by decode per machine.

Pure functions over typed report cases (:mod:`pytest_asiai.report.model`), so the tier table, the
HTML page and the report's ``tier`` field come from exactly what the JSON report holds, under xdist too.

asiai's logic (docs/asiai-protocol.md §3.9) with our gates: a case's verdict is the worst tier effect of
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

from pytest_asiai.report.model import CaseResult, ReportedGate, as_case, number

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

    @property
    def ram_gb(self) -> float | None:
        return None if self.ram_mb is None else self.ram_mb / 1024

    @property
    def ram_warm_gb(self) -> float | None:
        return None if self.ram_warm_mb is None else self.ram_warm_mb / 1024


def _peak_decode(case: CaseResult) -> float | None:
    measured = [v for p in case.phases.values() if (v := p.stat("decode_tok_s", "max")) is not None]
    return max(measured) if measured else None


def verdict(gates: Mapping[str, ReportedGate | Mapping[str, Any]]) -> tuple[str | None, list[str]]:
    """The worst tier effect the gates declared, and the gates that caused it."""
    typed = {n: g if isinstance(g, ReportedGate) else ReportedGate.parse(n, g) for n, g in gates.items()}
    effects = {name: g.tier for name, g in typed.items() if g.tier in _SEVERITY}
    if not effects:
        return None, []
    worst = max(effects.values(), key=lambda t: _SEVERITY[str(t)])
    causes = [typed[name].cause() for name, t in effects.items() if t == worst and worst != "ok"]
    return str(worst), causes


def _largest_burst(case: CaseResult) -> tuple[int | None, float | None]:
    """The largest burst size with a measured aggregate tok/s, and that rate (median over passes)."""
    measured = []
    for key, burst in case.bursts.items():
        rate = burst.aggregate_tok_s
        if key.isdigit() and rate is not None:
            measured.append((int(key), rate))
    return max(measured) if measured else (None, None)


def _warm_power(case: CaseResult) -> float | None:
    """Warm median t/s/W, cold when there is no warm phase (asiai's fallback, docs/asiai-protocol.md §2.4)."""
    for name in ("warm", "cold"):
        value = number(case.probe_phase("power", name).get("tok_s_per_soc_watt"))
        if value is not None:
            return value
    return None


def session_estimate(ttft_ms: float | None, decode: float | None, max_tokens: int | None) -> float | None:
    """60 × (TTFT + max_tokens / decode) seconds: a lower bound for a 60-turn agent session."""
    if ttft_ms is None or not decode or not max_tokens:
        return None
    return round(SESSION_TURNS * (ttft_ms / 1000.0 + max_tokens / decode), 1)


def row_of(case: CaseResult | Mapping[str, Any], local_machine: str | None) -> Row:
    """A case's figures for the table ("—" later for every None: not measured)."""
    case = as_case(case, local_machine)
    gates = case.gates
    warm = case.phases.get("warm")
    row = Row(
        case_id=case.id,
        machine=case.machine_id or "unknown machine",
        decode=case.stat("warm", "decode_tok_s"),
        peak=_peak_decode(case),
        long_decode=case.stat("long-context", "decode_tok_s"),
        ttft_ms=case.stat("warm", "ttft_ms"),
        reuse=number(gates["reuse"].details.get("fraction")) if "reuse" in gates else None,
        tok_s_per_watt=_warm_power(case),
        ram_mb=number(case.probe("engine").get("rss_peak_mb")),
        ram_warm_mb=number(case.probe("engine").get("rss_warm_mb")),
        valid_pct=number(gates["valid"].value) if "valid" in gates else None,
        version=case.version,
    )
    row.session_s = session_estimate(row.ttft_ms, row.decode, warm.max_tokens if warm else None)
    row.burst_size, row.burst_tok_s = _largest_burst(case)
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


def rank(cases: Iterable[CaseResult | Mapping[str, Any]], local_machine: str | None) -> dict[str, list[Row]]:
    """Rows per machine block (blocks in order of first appearance), tiered and ranked.

    The one place a tier is decided: from the tier effect each gate declared (:func:`verdict`) and the
    case's warm decode against its block's best. The report's ``tier``, the terminal table and the
    HTML page all read this ranking."""
    blocks: dict[str, list[Row]] = {}
    for raw in cases:
        case = as_case(raw, local_machine)
        if case.measured_or_gated:
            row = row_of(case, local_machine)
            blocks.setdefault(row.machine, []).append(row)
    return {machine: rank_block(rows) for machine, rows in blocks.items()}


def tiers_by_case(cases: Iterable[CaseResult | Mapping[str, Any]], local_machine: str | None) -> dict[str, str | None]:
    """Each case's tier, for the report's ``cases[i].tier``."""
    return {row.case_id: row.tier for rows in rank(cases, local_machine).values() for row in rows}

"""The terminal summary: the tier table, verdict first, one block per machine (as the seed panel).

Columns, as the seed panel's: engine version, warm decode, peak decode, long-context decode (tok/s),
warm TTFT (ms), reported reuse fraction on the prefix tests (cross-user reuse, not warm's), warm
tokens per second per SoC watt, engine peak RSS (GB), valid output (%), then the aggregate output
tok/s of the largest burst (``412.3@80``: 80 simultaneous calls). "—" is "not measured", never 0.
Eliminated and reserve rows name the gates, and the bound, that put them there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_asiai.report.mtp import mtp_deltas
from pytest_asiai.report.tiers import ELIMINATED, RESERVE, VIABLE, WINNER, Row, rank

HEADINGS = {
    WINNER: "★ Tier 1 — winner + fast",
    VIABLE: "✓ Tier 2 — viable (slower)",
    RESERVE: "⚠ Tier 3 — reserve",
    ELIMINATED: "✗ Tier 4 — eliminated",
    None: "· not gated (no gate ran)",
}
COLUMNS = (
    ("version", 8),
    ("dec t/s", 8),
    ("peak", 7),
    ("long", 7),
    ("TTFT ms", 8),
    ("reuse", 6),
    ("t/s/W", 6),
    ("RAMpk GB", 9),
    ("valid%", 7),
    ("burst t/s", 12),
)


def _fmt(value: float | None, spec: str, width: int) -> str:
    return f"{'—' if value is None else format(value, spec):>{width}}"


#: The row figure and format of each column between version and burst.
CELLS = (
    *(("decode", ".1f"), ("peak", ".1f"), ("long_decode", ".1f"), ("ttft_ms", ".0f")),
    *(("reuse", ".2f"), ("tok_s_per_watt", ".3f"), ("ram_gb", ".1f"), ("valid_pct", ".0f")),
)


def _cells(row: Row) -> list[str]:
    figures = zip(CELLS, COLUMNS[1:-1], strict=True)
    cells = [_fmt(getattr(row, name), spec, width) for (name, spec), (_, width) in figures]
    burst = "—" if row.burst_tok_s is None else f"{row.burst_tok_s:.1f}@{row.burst_size}"
    version = row.version or "—"
    return [f"{version:>{COLUMNS[0][1]}}", *cells, f"{burst:>{COLUMNS[-1][1]}}"]


def _line(row: Row, width: int) -> str:
    mark = "★" if row.star else " "
    causes = f"  ✗ {', '.join(row.causes)}" if row.tier == ELIMINATED and row.causes else ""
    if row.tier == RESERVE and row.causes:
        causes = f"  ⚠ {', '.join(row.causes)}"
    return f"{mark} {row.case_id:<{width}} {' '.join(_cells(row))}{causes}"


def block_lines(machine: str, rows: list[Row]) -> list[str]:
    """One machine block: its heading, the column header, then each tier's rows."""
    width = max(len("case"), *(len(r.case_id) for r in rows))
    header = "  " + f"{'case':<{width}} " + " ".join(f"{name:>{w}}" for name, w in COLUMNS)
    lines = [f"machine {machine}", header]
    for tier, heading in HEADINGS.items():
        tier_rows = [r for r in rows if r.tier == tier]
        if tier_rows:
            lines.append(heading)
            lines += [_line(r, width) for r in tier_rows]
    return lines


def mtp_lines(cases: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """MTP off and on of the same engine × model side by side (the seed panel's MTP table); [] without pairs."""
    pairs = mtp_deltas(cases.values())
    if not pairs:
        return []
    width = max(len("engine × model"), *(len(name) for name in pairs))
    lines = ["", f"  {'engine × model':<{width}}  off t/s   on t/s    delta  accept  tok/chunk off→on"]
    for name, pair in pairs.items():
        delta = "—" if pair["delta_pct"] is None else f"{pair['delta_pct']:+.1f}%"
        off_chunk, on_chunk = (_fmt(pair[f"tokens_per_chunk_{s}"], ".2f", 0) for s in ("off", "on"))
        chunks = f"{off_chunk}→{on_chunk}"
        lines.append(
            f"  {name:<{width}} {_fmt(pair['off'], '.1f', 8)} {_fmt(pair['on'], '.1f', 8)} {delta:>8}"
            f" {_fmt(pair['acceptance'], '.2f', 7)}  {chunks}"
        )
    return lines


def summary_lines(cases: Mapping[str, Mapping[str, Any]], local_machine: str | None = None) -> list[str]:
    """The tier table of every case that measured something or was gated, then MTP on vs off; [] when none did."""
    lines: list[str] = []
    for machine, rows in rank(cases.values(), local_machine).items():
        if lines:
            lines.append("")
        lines += block_lines(machine, rows)
    if lines:
        lines += mtp_lines(cases)
    return lines

"""The HTML report: one self-contained file (inline CSS and SVG, no network) built from a JSON report.

It reads like the seed panel: the verdict first, one block per machine ranked on its own exactly as
the terminal table (``tiers.rank``; the seed says blocks must not be compared), with the seed's
columns (engine version, decode, peak, long-context decode, warm TTFT, cross-user reuse from the
prefix tests, t/s/W, RAM peak and steady, valid %) and the derived 60-turn lower bound
``60 × (TTFT + max_tokens / decode)``; then one section per case (:mod:`pytest_asiai.report.html_case`).
Cases are read as typed results (:mod:`pytest_asiai.report.model`). A Content-Security-Policy forbids
every remote resource, so the file renders the same offline and in a CI artefact viewer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from pytest_asiai.report import charts
from pytest_asiai.report.files import atomic_write
from pytest_asiai.report.html_case import case_section, num, table, text, tier_badge
from pytest_asiai.report.model import CaseResult, as_case
from pytest_asiai.report.table import HEADINGS
from pytest_asiai.report.tiers import Row, rank

READY_SENTINEL = "pytest-asiai report ready"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1500px;
  color:#1d2430;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;width:100%}
th,td{border-bottom:1px solid #e4e6eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f6f9;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#4a5363}.muted{color:#8a93a3}.box{border:1px solid #e4b9b9;background:#fdf3f3;padding:8px 12px;
  border-radius:6px;margin:10px 0}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;
  background:#8a93a3}
.winner{background:#2e8b57}.viable{background:#4a7bd0}.reserve{background:#d08c2e}.eliminated{background:#b33a3a}
.passed,.pass{color:#2e8b57;font-weight:600}.failed,.fail,.regressed,.interrupted{color:#b33a3a;font-weight:600}
.skipped,.no_baseline,.not_measured{color:#8a93a3}.improved{color:#2e6fb3;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:8px 24px}code{font-size:12px;word-break:break-all}
details{margin:4px 0}summary{cursor:pointer;color:#4a5363}
"""


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


# -- run header ------------------------------------------------------------------------------------------


# -- run header ------------------------------------------------------------------------------------------


def _header(report: Mapping[str, Any]) -> str:
    machine = report.get("machine") or {}
    git = report.get("git") or {}
    ram = machine.get("ram_bytes")
    hw = ", ".join(
        x
        for x in (
            machine.get("chip") or machine.get("cpu_model"),
            f"{machine.get('cores_logical')} cores" if machine.get("cores_logical") else None,
            f"{ram / 2**30:.0f} GiB RAM" if isinstance(ram, int) else None,
            f"power mode {machine['power_mode']}" if machine.get("power_mode") else None,
        )
        if x
    )
    commit = git.get("commit")
    source = f"{commit[:12]}{' (dirty)' if git.get('dirty') else ''}" if commit else "not a git work tree"
    state = "complete" if report.get("complete") else "INCOMPLETE (interrupted or still running)"
    return (
        "<h1>pytest-asiai report</h1>"
        f'<div class="meta">{_when(report.get("started_at"))} → {_when(report.get("finished_at"))} · {escape(state)} · '
        f"exit status {text(report.get('exit_status'))}<br>"
        f"{text(machine.get('os'))} {text(machine.get('os_release'))} {text(machine.get('arch'))} · {escape(hw)} · "
        f"host {text(machine.get('hostname'))}<br>"
        f"pytest-asiai {text(report.get('plugin_version'))} · pytest {text(report.get('pytest_version'))} · "
        f"Python {text(report.get('python_version'))} · source {escape(source)}<br>"
        f"<code>pytest {escape(' '.join(report.get('command_line') or []))}</code></div>"
    )


def _incidents(report: Mapping[str, Any]) -> str:
    items = report.get("incidents") or []
    if not items:
        return ""
    lines = "".join(f"<li><b>{text(i.get('kind'))}</b>: {text(i.get('message'))}</li>" for i in items)
    return f'<div class="box"><b>Incidents</b><ul>{lines}</ul></div>'


# -- the verdict table -------------------------------------------------------------------------------------


def _gate_counts(case: CaseResult) -> tuple[int, int]:
    gates = case.gates.values()
    return sum(g.passed for g in gates), len(gates)


def _test_counts(case: CaseResult) -> str:
    failed = sum(t.get("outcome") in ("failed", "interrupted") for t in case.tests)
    passed = sum(t.get("outcome") == "passed" for t in case.tests)
    return f"{passed} passed" + (f', <span class="failed">{failed} failed</span>' if failed else "")


BLOCK_HEADERS = (
    "case",
    "tier",
    "version",
    "dec t/s",
    "peak",
    "long",
    "warm TTFT ms",
    "reuse",
    "t/s/W",
    "RAM peak GB",
    "RAM warm GB",
    "valid %",
    "60-turn ≥ s",
    "gates",
    "tests",
    "why",
)
#: Each numeric column: its ``data-col`` (a headless-browser test reads them), the row figure, its format.
BLOCK_FIGURES = (
    *(("dec", "decode", ",.1f"), ("peak", "peak", ",.1f"), ("long", "long_decode", ",.1f")),
    *(("ttft", "ttft_ms", ",.0f"), ("reuse", "reuse", ".2f"), ("tsw", "tok_s_per_watt", ".3f")),
    *(("ram", "ram_gb", ".1f"), ("ram_warm", "ram_warm_gb", ".1f"), ("valid", "valid_pct", ".0f")),
    ("session", "session_s", ",.0f"),
)
BLOCK_COLS = tuple(col for col, _, _ in BLOCK_FIGURES)


def _block_row(row: Row, case: CaseResult) -> str:
    passed, total = _gate_counts(case)
    cells = "".join(
        f'<td class="num" data-col="{col}">{num(getattr(row, name), spec)}</td>' for col, name, spec in BLOCK_FIGURES
    )
    star = "★ " if row.star else ""
    cid = escape(row.case_id)
    return (
        f'<tr data-case="{cid}" data-tier="{escape(str(row.tier))}"><td>{star}<a href="#case-{cid}">{cid}</a></td>'
        f"<td>{tier_badge(row.tier)}</td><td>{text(row.version)}</td>{cells}"
        f'<td class="num">{f"{passed}/{total}" if total else "—"}</td><td>{_test_counts(case)}</td>'
        f"<td>{escape(', '.join(row.causes))}</td></tr>"
    )


def machine_block(machine: str, rows: Sequence[Row], by_id: Mapping[str, CaseResult]) -> str:
    """One machine's verdict: its rows in tier order, ranked inside the block only."""
    numeric = ' class="num"'
    head = "".join(f"<th{numeric if 3 <= i <= 13 else ''}>{escape(h)}</th>" for i, h in enumerate(BLOCK_HEADERS))
    body = []
    for tier, heading in HEADINGS.items():
        tier_rows = [r for r in rows if r.tier == tier]
        if tier_rows:
            body.append(f'<tr class="tier-heading"><th colspan="{len(BLOCK_HEADERS)}">{escape(heading)}</th></tr>')
            body += [_block_row(r, by_id[r.case_id]) for r in tier_rows]
    return (
        f'<section class="machine-block" data-machine="{escape(machine)}"><h3>machine {escape(machine)}</h3>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>" + overview(rows) + "</section>"
    )


def verdict_blocks(cases: Sequence[CaseResult], local_machine: str | None) -> str:
    """Every machine block, then the cases no block holds (nothing measured, nothing gated)."""
    by_id = {c.id: c for c in cases}
    blocks = rank(cases, local_machine)
    parts = [machine_block(m, rows, by_id) for m, rows in blocks.items()]
    shown = {r.case_id for rows in blocks.values() for r in rows}
    rest = [c for c in cases if c.id not in shown]
    if rest:
        items = "".join(f'<li><a href="#case-{escape(c.id)}">{escape(c.id)}</a></li>' for c in rest)
        parts.append(f'<p class="muted">nothing measured or gated:</p><ul>{items}</ul>')
    note = (
        '<p class="meta">Rows are ranked inside their machine block only: machines differ in chip, '
        "quantisation and power mode, so absolute figures compare within a block. "
        "reuse = cached fraction on the prefix tests (cross-user), not the warm repeat. "
        "60-turn ≥ s = 60 × (warm TTFT + max_tokens / warm decode), a lower bound. — = unmeasured (never 0).</p>"
    )
    return note + "".join(parts)


def overview(rows: Sequence[Row]) -> str:
    """A block's cases side by side (two or more): warm decode and warm TTFT, coloured by tier."""
    if len(rows) < 2:
        return ""
    decode = [charts.Bar(r.case_id, r.decode, str(r.tier or "default")) for r in rows]
    ttft = [charts.Bar(r.case_id, r.ttft_ms, str(r.tier or "default")) for r in rows]
    return (
        '<div class="charts">'
        + charts.bar_chart("Warm decode per case (higher is better)", decode, "tok/s")
        + charts.bar_chart("Warm TTFT per case (lower is better)", ttft, "ms")
        + "</div>"
    )


def mtptable(report: Mapping[str, Any]) -> str:
    """MTP off and on of one engine × model side by side, with the decode delta (the seed's MTP table)."""
    pairs = report.get("mtp") or {}
    if not pairs:
        return ""
    rows = [
        [
            escape(name),
            num(p.get("off")),
            num(p.get("on")),
            "—" if p.get("delta_pct") is None else f"{p['delta_pct']:+.1f} %",
            num(p.get("acceptance"), ".2f"),
            f"{num(p.get('tokens_per_chunk_off'), '.2f')} → {num(p.get('tokens_per_chunk_on'), '.2f')}",
        ]
        for name, p in pairs.items()
    ]
    headers = ["engine × model", "decode off (tok/s)", "decode on (tok/s)", "delta", "draft acceptance", "tokens/chunk"]
    return "<h2>MTP on vs off</h2>" + table(headers, rows, numeric=(1, 2, 3, 4))


def render(report: Mapping[str, Any]) -> str:
    """The whole page; ``console.log`` of a sentinel on load lets a headless browser confirm it ran."""
    local = report.get("machine_id")
    cases = [as_case(c, local) for c in report.get("cases") or []]
    body = [
        _header(report),
        _incidents(report),
        "<h2>Verdict</h2>",
        verdict_blocks(cases, local) if cases else "<p>no case</p>",
        mtptable(report),
    ]
    body += [case_section(c) for c in cases]
    sentinel = json.dumps(f"{READY_SENTINEL}: {len(cases)} case(s)")
    script = f"document.addEventListener('DOMContentLoaded',function(){{console.log({sentinel});}});"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>pytest-asiai report {_when(report.get('started_at'))}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}<script>{script}</script></body></html>\n"
    )


def write_html(report: Mapping[str, Any], path: Path) -> None:
    """Render and write atomically (a viewer never sees half a file)."""
    atomic_write(path, render(report))

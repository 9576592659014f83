"""The HTML report: one self-contained file (inline CSS and SVG, no network) built from a JSON report.

It reads like the seed panel: the verdict first, one block per machine ranked on its own exactly as
the terminal table (``tiers.rank``; the seed says blocks must not be compared), with the seed's
columns (engine version, decode, peak, long-context decode, warm TTFT, cross-user reuse from the
prefix tests, t/s/W, RAM peak and steady, valid %) and the derived 60-turn lower bound
``60 × (TTFT + max_tokens / decode)``; then one section per case with its phase charts (engine RSS
and power per phase beside them), burst latency spreads, gate outcomes, baseline comparison, user
metrics and test outcomes. A Content-Security-Policy forbids every remote resource, so the file
renders the same offline and in a CI artefact viewer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from pytest_asiai.agentic.protocol import PHASES
from pytest_asiai.report import charts
from pytest_asiai.report.table import HEADINGS
from pytest_asiai.report.tiers import Row, rank
from pytest_asiai.report.writer import atomic_write

READY_SENTINEL = "pytest-asiai report ready"
EXPECT = {p.name: str(getattr(p, "expect", "default")) for p in PHASES}
EXPECT_TEXT = {
    "miss": "expected miss (cold)",
    "full": "expected full hit (warm)",
    "system": "expected system-prompt hit (prefix tests)",
    "restart": "after restart",
}
TIER_ORDER = {"winner": 0, "viable": 1, "reserve": 2, "eliminated": 3}
Case = Mapping[str, Any]

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


def _e(value: Any) -> str:
    return escape("—" if value is None else str(value))


def _num(value: Any, spec: str = ",.1f") -> str:
    return "—" if not isinstance(value, int | float) or isinstance(value, bool) else format(value, spec)


def _median(case: Case, phase: str, stat: str) -> float | None:
    value = ((case.get("phases") or {}).get(phase, {}).get("stats") or {}).get(stat, {}).get("median")
    return float(value) if isinstance(value, int | float) else None


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _outcome(text: Any) -> str:
    return f'<span class="{escape(str(text))}">{_e(text)}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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
        f"exit status {_e(report.get('exit_status'))}<br>"
        f"{_e(machine.get('os'))} {_e(machine.get('os_release'))} {_e(machine.get('arch'))} · {escape(hw)} · "
        f"host {_e(machine.get('hostname'))}<br>"
        f"pytest-asiai {_e(report.get('plugin_version'))} · pytest {_e(report.get('pytest_version'))} · "
        f"Python {_e(report.get('python_version'))} · source {escape(source)}<br>"
        f"<code>pytest {escape(' '.join(report.get('command_line') or []))}</code></div>"
    )


def _incidents(report: Mapping[str, Any]) -> str:
    items = report.get("incidents") or []
    if not items:
        return ""
    lines = "".join(f"<li><b>{_e(i.get('kind'))}</b>: {_e(i.get('message'))}</li>" for i in items)
    return f'<div class="box"><b>Incidents</b><ul>{lines}</ul></div>'


# -- the verdict table -------------------------------------------------------------------------------------


def _gate_counts(case: Case) -> tuple[int, int]:
    gates = (case.get("results") or {}).get("gates") or {}
    outcomes = [str(g.get("outcome", "")).lower() for g in gates.values() if isinstance(g, Mapping)]
    passed = sum(o in ("pass", "passed") for o in outcomes)
    return passed, len(outcomes)


def _test_counts(case: Case) -> str:
    tests = case.get("tests") or []
    failed = sum(t.get("outcome") in ("failed", "interrupted") for t in tests)
    passed = sum(t.get("outcome") == "passed" for t in tests)
    text = f"{passed} passed"
    return text + (f', <span class="failed">{failed} failed</span>' if failed else "")


def _tier_badge(tier: Any) -> str:
    return f'<span class="badge {escape(str(tier))}">{_e(tier)}</span>' if tier else '<span class="muted">—</span>'


def _sort_key(case: Case) -> tuple[int, float]:
    decode = _median(case, "warm", "decode_tok_s")
    return TIER_ORDER.get(str(case.get("tier")), 9), -(decode or 0.0)


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
#: ``data-col`` of each numeric column (a headless-browser test reads them).
BLOCK_COLS = ("dec", "peak", "long", "ttft", "reuse", "tsw", "ram", "ram_warm", "valid", "session")


def _gb(mb: float | None) -> float | None:
    return None if mb is None else mb / 1024


def _block_row(row: Row, case: Case) -> str:
    passed, total = _gate_counts(case)
    values = (
        (row.decode, ",.1f"),
        (row.peak, ",.1f"),
        (row.long_decode, ",.1f"),
        (row.ttft_ms, ",.0f"),
        (row.reuse, ".2f"),
        (row.tok_s_per_watt, ".3f"),
        (_gb(row.ram_mb), ".1f"),
        (_gb(row.ram_warm_mb), ".1f"),
        (row.valid_pct, ".0f"),
        (row.session_s, ",.0f"),
    )
    pairs = zip(BLOCK_COLS, values, strict=True)
    cells = "".join(f'<td class="num" data-col="{col}">{_num(v, spec)}</td>' for col, (v, spec) in pairs)
    star = "★ " if row.star else ""
    cid = escape(row.case_id)
    return (
        f'<tr data-case="{cid}" data-tier="{escape(str(row.tier))}"><td>{star}<a href="#case-{cid}">{cid}</a></td>'
        f"<td>{_tier_badge(row.tier)}</td><td>{_e(row.version)}</td>{cells}"
        f'<td class="num">{f"{passed}/{total}" if total else "—"}</td><td>{_test_counts(case)}</td>'
        f"<td>{escape(', '.join(row.causes))}</td></tr>"
    )


def machine_block(machine: str, rows: Sequence[Row], by_id: Mapping[str, Case]) -> str:
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


def verdict_blocks(cases: Sequence[Case], local_machine: str | None) -> str:
    """Every machine block, then the cases no block holds (nothing measured, nothing gated)."""
    by_id = {str(c["id"]): c for c in cases}
    blocks = rank(cases, local_machine)
    parts = [machine_block(m, rows, by_id) for m, rows in blocks.items()]
    shown = {r.case_id for rows in blocks.values() for r in rows}
    rest = [c for c in cases if str(c["id"]) not in shown]
    if rest:
        items = "".join(f'<li><a href="#case-{escape(c["id"])}">{escape(c["id"])}</a></li>' for c in rest)
        parts.append(f'<p class="muted">nothing measured or gated:</p><ul>{items}</ul>')
    note = (
        '<p class="meta">Rows are ranked inside their machine block only: machines differ in chip, '
        "quantisation and power mode, so absolute figures compare within a block. "
        "reuse = cached fraction on the prefix tests (cross-user), not the warm repeat. "
        "60-turn ≥ s = 60 × (warm TTFT + max_tokens / warm decode), a lower bound. — = unmeasured (never 0).</p>"
    )
    return note + "".join(parts)


# -- one case --------------------------------------------------------------------------------------------


def _phase_bars(case: Case, stat: str) -> list[charts.Bar]:
    return [
        charts.Bar(name, _median(case, name, stat), EXPECT.get(name, "default")) for name in case.get("phases") or {}
    ]


def _probe_phase(case: Case, probe: str, phase: str) -> Mapping[str, Any]:
    """``results.probes.<probe>.phases.<phase>`` (engine RSS or power per phase), or {}."""
    block = ((case.get("results") or {}).get("probes") or {}).get(probe) or {}
    found = (block.get("phases") or {}).get(phase) if isinstance(block, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _phase_table(case: Case) -> str:
    rows = []
    for name, phase in (case.get("phases") or {}).items():
        memory, power = _probe_phase(case, "engine", name), _probe_phase(case, "power", name)
        runs = phase.get("runs") or []
        errors = [f"{r.get('error_kind')}: {r.get('error')}" for r in runs if not r.get("ok")]
        rows.append(
            [
                escape(name),
                str(len(runs)),
                _num(_median(case, name, "ttft_ms")),
                _num(_median(case, name, "ttfc_ms")),
                _num(_median(case, name, "decode_tok_s")),
                _num(_median(case, name, "prompt_tokens"), ",.0f"),
                _num(_median(case, name, "cached_tokens"), ",.0f"),
                _num(_median(case, name, "completion_tokens"), ",.0f"),
                _num(memory.get("rss_peak_mb"), ",.0f"),
                _num(power.get("soc_watts"), ".1f"),
                _num(power.get("tok_s_per_soc_watt"), ".3f"),
                _num(power.get("energy_per_token_j"), ".3f"),
                f'<span class="failed">{escape("; ".join(errors))}</span>' if errors else "",
            ]
        )
    headers = [
        "phase",
        "requests",
        "TTFT ms",
        "TTFC ms",
        "decode tok/s",
        "prompt",
        "cached",
        "completion",
        "RSS peak MB",
        "SoC W",
        "t/s/W",
        "J/token",
        "errors",
    ]
    return _table(headers, rows, numeric=tuple(range(1, 12)))


def _results_table(title: str, entries: Mapping[str, Any], columns: Sequence[str]) -> str:
    if not entries:
        return ""
    rows = []
    for key, value in entries.items():
        value = value if isinstance(value, Mapping) else {"value": value}
        cells = [_outcome(value.get(c)) if c == "outcome" else _e(_round(value.get(c))) for c in columns]
        rows.append([escape(key), *cells])
    return f"<h3>{escape(title)}</h3>" + _table(["name", *columns], rows)


def _round(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def burst_latencies(entry: Any, key: str = "latency_ms") -> list[float]:
    """Per-call values of one burst result (every pass pooled): ``passes[].calls[].latency_ms``,
    or a plain ``calls`` list, or a list of milliseconds. Failed calls (None) are left out."""
    if not isinstance(entry, Mapping):
        return []
    passes = entry.get("passes")
    if isinstance(passes, list):
        return [v for p in passes for v in burst_latencies(p, key)]
    values = entry.get(key) if isinstance(entry.get(key), list) else entry.get("latencies_ms")
    if isinstance(values, list):
        return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    calls = entry.get("calls")
    if not isinstance(calls, list):
        return []
    found = (c.get(key, c.get("total_ms")) for c in calls if isinstance(c, Mapping))
    return [float(v) for v in found if isinstance(v, int | float) and not isinstance(v, bool)]


BURST_COLUMNS = ("calls", "valid_pct", "errors", "verdict", "consistent", "single_stream_decode_tok_s")


def _burst_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The burst's headline figures: validity, errors, the serialization verdict, latency quantiles."""
    row = {k: entry[k] for k in BURST_COLUMNS if k in entry and not isinstance(entry[k], list | dict)}
    latency = entry.get("latency_ms")
    if isinstance(latency, Mapping):
        row.update({f"latency {q} ms": latency.get(q) for q in ("p50", "p95", "p99", "max")})
    return row or {k: v for k, v in entry.items() if isinstance(v, str | int | float | bool) or v is None}


def _burst(case: Case) -> str:
    bursts = {k: e for k, e in ((case.get("results") or {}).get("burst") or {}).items() if isinstance(e, Mapping)}
    if not bursts:
        return ""
    svgs = [
        charts.distribution(f"burst of {key}: {what} per call", burst_latencies(entry, field), "ms")
        for key, entry in bursts.items()
        for field, what in (("latency_ms", "latency"), ("ttft_ms", "TTFT"))
        if field == "latency_ms" or burst_latencies(entry, field)
    ]
    rows = {key: _burst_row(entry) for key, entry in bursts.items()}
    columns = list(dict.fromkeys(c for row in rows.values() for c in row))
    return '<h3>Burst</h3><div class="charts">' + "".join(svgs) + "</div>" + _results_table("", rows, columns)


def _turn_bar(curve: Mapping[str, Any], i: int) -> charts.Bar:
    """One turn of an endurance curve: latency, labelled with the context size, green when clean."""

    def at(name: str) -> Any:
        values = curve.get(name) or []
        return values[i] if i < len(values) else None

    context, clean, ttft = at("context_tokens"), at("clean"), at("ttft_ms")
    label = f"turn {at('turn') if at('turn') is not None else i + 1} · {_num(context, ',.0f')} tok"
    note = f" · TTFT {_num(ttft, ',.0f')} ms · {'clean' if clean else 'not clean'}"
    latency = at("latency_ms")
    return charts.Bar(
        label, float(latency) if isinstance(latency, int | float) else None, "clean" if clean else "broken", note
    )


def _endurance(case: Case) -> str:
    """The stability curve of each endurance scenario: latency per turn against context, validity as colour."""
    scenarios = (case.get("results") or {}).get("endurance") or {}
    curves = {
        k: e["curve"] for k, e in scenarios.items() if isinstance(e, Mapping) and isinstance(e.get("curve"), Mapping)
    }
    if not curves:
        return ""
    parts = ["<h3>Endurance: stability curve</h3>", charts.legend([("clean", "clean call"), ("broken", "not clean")])]
    for name, curve in curves.items():
        bars = [_turn_bar(curve, i) for i in range(len(curve.get("latency_ms") or []))]
        chart = charts.bar_chart(f"{name}: latency per turn", bars, "ms", label_w=150)
        parts.append(f"<details open><summary>{escape(name)} ({len(bars)} turns)</summary>{chart}</details>")
    return "".join(parts)


def _engine_line(case: Case) -> str:
    desc, engine = case.get("case") or {}, case.get("engine") or {}
    launch = desc.get("launch_args")
    args = (
        f"<details><summary>launch arguments</summary><code>{escape(' '.join(launch))}</code></details>"
        if launch
        else ""
    )
    return (
        f'<div class="meta">{_e(engine.get("kind") or desc.get("kind"))} {_e(engine.get("version"))} · '
        f"model {_e(desc.get('model_id') or engine.get('model'))} · MTP {_e(desc.get('mtp'))} · "
        f"profile {_e(case.get('profile'))} · runs {_e(case.get('runs'))} · "
        f"{_e(engine.get('base_url') or desc.get('base_url'))}"
        f"{' · API key from $' + escape(desc['api_key_env']) if desc.get('api_key_env') else ''}</div>{args}"
    )


def _tests(case: Case) -> str:
    tests = case.get("tests") or []
    rows = [
        [escape(t.get("name") or t.get("nodeid", "")), _outcome(t.get("outcome")), _e(t.get("message"))] for t in tests
    ]
    return f"<details><summary>{len(tests)} test(s)</summary>{_table(['test', 'outcome', 'message'], rows)}</details>"


def case_section(case: Case) -> str:
    phases = case.get("phases") or {}
    results = case.get("results") or {}
    parts = [
        f'<h2 id="case-{escape(case["id"])}">{escape(case["id"])} {_tier_badge(case.get("tier"))}</h2>',
        _engine_line(case),
    ]
    if phases:
        kinds = [k for k in ("miss", "full", "system", "restart") if k in {EXPECT.get(p) for p in phases}]
        parts.append(charts.legend([(k, EXPECT_TEXT[k]) for k in kinds]))
        parts.append('<div class="charts">')
        parts.append(charts.bar_chart("TTFT per phase (lower is better)", _phase_bars(case, "ttft_ms"), "ms"))
        parts.append(
            charts.bar_chart("Decode per phase (higher is better)", _phase_bars(case, "decode_tok_s"), "tok/s")
        )
        parts.append("</div>")
        parts.append(_phase_table(case))
    else:
        parts.append('<p class="muted">no phase measured</p>')
    parts.append(_burst(case))
    parts.append(_endurance(case))
    parts.append(_results_table("Gates", results.get("gates") or {}, ("value", "threshold", "outcome", "reason")))
    parts.append(
        _results_table(
            "Baseline comparison",
            results.get("regression") or {},
            ("old", "new", "change_pct", "tolerance_pct", "outcome"),
        )
    )
    for section, entries in results.items():
        if section not in ("gates", "regression", "burst") and isinstance(entries, Mapping):
            columns = sorted(
                {f for e in entries.values() if isinstance(e, Mapping) for f in e if not isinstance(e[f], list | dict)}
            )
            parts.append(_results_table(section.capitalize(), entries, columns[:8]))
    metrics = case.get("metrics") or {}
    if metrics:
        parts.append(
            "<h3>Recorded metrics</h3>"
            + _table(["name", "value"], [[escape(k), _e(_round(v))] for k, v in metrics.items()])
        )
    parts.append(_tests(case))
    return "".join(parts)


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


def mtp_table(report: Mapping[str, Any]) -> str:
    """MTP off and on of one engine × model side by side, with the decode delta (the seed's MTP table)."""
    pairs = report.get("mtp") or {}
    if not pairs:
        return ""
    rows = [
        [
            escape(name),
            _num(p.get("off")),
            _num(p.get("on")),
            "—" if p.get("delta_pct") is None else f"{p['delta_pct']:+.1f} %",
            _num(p.get("acceptance"), ".2f"),
            f"{_num(p.get('tokens_per_chunk_off'), '.2f')} → {_num(p.get('tokens_per_chunk_on'), '.2f')}",
        ]
        for name, p in pairs.items()
    ]
    headers = ["engine × model", "decode off (tok/s)", "decode on (tok/s)", "delta", "draft acceptance", "tokens/chunk"]
    return "<h2>MTP on vs off</h2>" + _table(headers, rows, numeric=(1, 2, 3, 4))


def render(report: Mapping[str, Any]) -> str:
    """The whole page; ``console.log`` of a sentinel on load lets a headless browser confirm it ran."""
    cases = list(report.get("cases") or [])
    body = [
        _header(report),
        _incidents(report),
        "<h2>Verdict</h2>",
        verdict_blocks(cases, report.get("machine_id")) if cases else "<p>no case</p>",
        mtp_table(report),
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

"""One case's section of the HTML report (:mod:`pytest_asiai.report.html`), and the cell helpers both share.

A section shows the case's engine line, its phase charts and table (engine RSS and power per phase
beside them), burst latency spreads, endurance curves, gate outcomes, baseline comparison, other
suite results, user metrics and test outcomes. Everything is read from a typed
:class:`~pytest_asiai.report.model.CaseResult`; every value is escaped; "—" is "not measured".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from pytest_asiai.agentic.protocol import PHASES
from pytest_asiai.report import charts
from pytest_asiai.report.model import TOTAL, BurstResult, CaseResult, EnduranceCurve, number

EXPECT = {p.name: str(getattr(p, "expect", "default")) for p in PHASES}
EXPECT_TEXT = {
    "miss": "expected miss (cold)",
    "full": "expected full hit (warm)",
    "system": "expected system-prompt hit (prefix tests)",
    "restart": "after restart",
}


def text(value: Any) -> str:
    """A value as escaped text; None is "—"."""
    return escape("—" if value is None else str(value))


def num(value: Any, spec: str = ",.1f") -> str:
    return "—" if number(value) is None else format(value, spec)


def outcome(value: Any) -> str:
    return f'<span class="{escape(str(value))}">{text(value)}</span>'


def tier_badge(tier: Any) -> str:
    return f'<span class="badge {escape(str(tier))}">{text(tier)}</span>' if tier else '<span class="muted">—</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    def cells(tag: str, row: Sequence[str]) -> str:
        attrs = [' class="num"' if i in numeric else "" for i in range(len(row))]
        return "".join(f"<{tag}{a}>{c}</{tag}>" for a, c in zip(attrs, row, strict=True))

    head = cells("th", [escape(h) for h in headers])
    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rounded(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def results_table(title: str, entries: Mapping[str, Any], columns: Sequence[str]) -> str:
    if not entries:
        return ""
    rows = []
    for key, value in entries.items():
        value = value if isinstance(value, Mapping) else {"value": value}
        cells = [outcome(value.get(c)) if c == "outcome" else text(_rounded(value.get(c))) for c in columns]
        rows.append([escape(key), *cells])
    return f"<h3>{escape(title)}</h3>" + table(["name", *columns], rows)


# -- phases ----------------------------------------------------------------------------------------------

PHASE_HEADERS = (
    *("phase", "requests", "TTFT ms", "TTFC ms", "decode tok/s", "prompt", "cached", "completion"),
    *("RSS peak MB", "SoC W", "t/s/W", "J/token", "errors"),
)


def _phase_bars(case: CaseResult, stat: str) -> list[charts.Bar]:
    return [charts.Bar(name, case.stat(name, stat), EXPECT.get(name, "default")) for name in case.phases]


def _phase_row(case: CaseResult, name: str) -> list[str]:
    memory, power = case.probe_phase("engine", name), case.probe_phase("power", name)
    runs = case.phases[name].runs
    errors = [f"{r.get('error_kind')}: {r.get('error')}" for r in runs if not r.get("ok")]
    counts = (num(case.stat(name, s), ",.0f") for s in ("prompt_tokens", "cached_tokens", "completion_tokens"))
    return [
        escape(name),
        str(len(runs)),
        *(num(case.stat(name, s)) for s in ("ttft_ms", "ttfc_ms", "decode_tok_s")),
        *counts,
        num(memory.get("rss_peak_mb"), ",.0f"),
        num(power.get("soc_watts"), ".1f"),
        num(power.get("tok_s_per_soc_watt"), ".3f"),
        num(power.get("energy_per_token_j"), ".3f"),
        f'<span class="failed">{escape("; ".join(errors))}</span>' if errors else "",
    ]


def _phases(case: CaseResult) -> str:
    if not case.phases:
        return '<p class="muted">no phase measured</p>'
    kinds = [k for k in ("miss", "full", "system", "restart") if k in {EXPECT.get(p) for p in case.phases}]
    ttft = charts.bar_chart("TTFT per phase (lower is better)", _phase_bars(case, "ttft_ms"), "ms")
    decode = charts.bar_chart("Decode per phase (higher is better)", _phase_bars(case, "decode_tok_s"), "tok/s")
    rows = [_phase_row(case, name) for name in case.phases]
    return (
        charts.legend([(k, EXPECT_TEXT[k]) for k in kinds])
        + f'<div class="charts">{ttft}{decode}</div>'
        + table(PHASE_HEADERS, rows, numeric=tuple(range(1, 12)))
    )


# -- burst and endurance ---------------------------------------------------------------------------------

BURST_COLUMNS = ("calls", "valid_pct", "errors", "verdict", "consistent", "single_stream_decode_tok_s")


def _burst_row(burst: BurstResult) -> dict[str, Any]:
    """The burst's headline figures: validity, errors, the serialization verdict, latency quantiles."""
    entry = burst.raw
    row = {k: entry[k] for k in BURST_COLUMNS if k in entry and not isinstance(entry[k], list | dict)}
    quantiles = burst.total_quantiles
    if quantiles is not None:
        row.update({f"latency {q} ms": quantiles.get(q) for q in ("p50", "p95", "p99", "max")})
    return row or {k: v for k, v in entry.items() if isinstance(v, str | int | float | bool) or v is None}


def _burst(case: CaseResult) -> str:
    bursts = case.bursts
    if not bursts:
        return ""
    svgs = [
        charts.distribution(f"burst of {key}: {what} per call", burst.per_call(field), "ms")
        for key, burst in bursts.items()
        for field, what in ((TOTAL, "latency"), ("ttft_ms", "TTFT"))
        if field == TOTAL or burst.per_call(field)
    ]
    rows = {key: _burst_row(burst) for key, burst in bursts.items()}
    columns = list(dict.fromkeys(c for row in rows.values() for c in row))
    return '<h3>Burst</h3><div class="charts">' + "".join(svgs) + "</div>" + results_table("", rows, columns)


def _turn_bar(curve: EnduranceCurve, i: int) -> charts.Bar:
    """One turn of an endurance curve: its total time, labelled with the context size, green when clean."""

    def at(name: str) -> Any:
        values = curve.column(name)
        return values[i] if i < len(values) else None

    context, clean, ttft, turn = at("context_tokens"), at("clean"), at("ttft_ms"), at("turn")
    label = f"turn {turn if turn is not None else i + 1} · {num(context, ',.0f')} tok"
    note = f" · TTFT {num(ttft, ',.0f')} ms · {'clean' if clean else 'not clean'}"
    return charts.Bar(label, number(at(TOTAL)), "clean" if clean else "broken", note)


def _endurance(case: CaseResult) -> str:
    """The stability curve of each endurance scenario: time per turn against context, validity as colour."""
    curves = case.curves
    if not curves:
        return ""
    parts = ["<h3>Endurance: stability curve</h3>", charts.legend([("clean", "clean call"), ("broken", "not clean")])]
    for name, curve in curves.items():
        bars = [_turn_bar(curve, i) for i in range(len(curve))]
        chart = charts.bar_chart(f"{name}: latency per turn", bars, "ms", label_w=150)
        parts.append(f"<details open><summary>{escape(name)} ({len(bars)} turns)</summary>{chart}</details>")
    return "".join(parts)


# -- the section -----------------------------------------------------------------------------------------


def _engine_line(case: CaseResult) -> str:
    desc, engine = case.description, case.engine
    launch = desc.get("launch_args")
    args = (
        f"<details><summary>launch arguments</summary><code>{escape(' '.join(launch))}</code></details>"
        if launch
        else ""
    )
    return (
        f'<div class="meta">{text(engine.get("kind") or desc.get("kind"))} {text(engine.get("version"))} · '
        f"model {text(desc.get('model_id') or engine.get('model'))} · MTP {text(desc.get('mtp'))} · "
        f"profile {text(case.profile)} · runs {text(case.runs)} · "
        f"{text(engine.get('base_url') or desc.get('base_url'))}"
        f"{' · API key from $' + escape(desc['api_key_env']) if desc.get('api_key_env') else ''}</div>{args}"
    )


def _tests(case: CaseResult) -> str:
    rows = [
        [escape(t.get("name") or t.get("nodeid", "")), outcome(t.get("outcome")), text(t.get("message"))]
        for t in case.tests
    ]
    return f"<details><summary>{len(rows)} test(s)</summary>{table(['test', 'outcome', 'message'], rows)}</details>"


def _other_results(case: CaseResult) -> list[str]:
    parts = []
    for section, entries in case.results.items():
        if section not in ("gates", "regression", "burst"):
            fields = {
                f for e in entries.values() if isinstance(e, Mapping) for f in e if not isinstance(e[f], list | dict)
            }
            parts.append(results_table(section.capitalize(), entries, sorted(fields)[:8]))
    return parts


def case_section(case: CaseResult) -> str:
    cid = escape(case.id)
    parts = [f'<h2 id="case-{cid}">{cid} {tier_badge(case.tier)}</h2>', _engine_line(case), _phases(case)]
    parts += [_burst(case), _endurance(case)]
    parts.append(results_table("Gates", case.section("gates"), ("value", "threshold", "outcome", "reason")))
    regression_columns = ("old", "new", "change_pct", "tolerance_pct", "outcome")
    parts.append(results_table("Baseline comparison", case.section("regression"), regression_columns))
    parts += _other_results(case)
    if case.metrics:
        rows = [[escape(k), text(_rounded(v))] for k, v in case.metrics.items()]
        parts.append("<h3>Recorded metrics</h3>" + table(["name", "value"], rows))
    parts.append(_tests(case))
    return "".join(parts)

"""Inline SVG charts for the HTML report, generated in Python.

Why not a chart library: the report must be one self-contained file that opens offline years later
(no CDN, no JavaScript framework), and the charts are few and simple. Every function returns an
``<svg>`` string with escaped text; values that were not measured are drawn as "not measured",
never as a zero-length bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from pytest_asiai.measure.metrics import percentile

WIDTH = 530
ROW = 24
LABEL_W = 118
VALUE_W = 92
#: Bar area of a bar chart; the label column grows with the longest label instead of clipping it.
SPAN_W = WIDTH - LABEL_W - VALUE_W
#: Upper bound of a character's advance at 12 px in the UI fonts (wide letters like "m", "w"; digits
#: are ~6.7 px): label widths are estimated from it, so a long case id is never cut on the left.
CHAR_W = 7.6
FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:12px"
PALETTE = {
    "miss": "#d9534f",
    "system": "#f0ad4e",
    "full": "#5cb85c",
    "restart": "#8e6cc0",
    "default": "#4a7bd0",
    "winner": "#2e8b57",
    "viable": "#4a7bd0",
    "reserve": "#d08c2e",
    "eliminated": "#b33a3a",
    "clean": "#5cb85c",
    "broken": "#d9534f",
}


@dataclass(frozen=True, slots=True)
class Bar:
    """One labelled value; ``kind`` picks the colour (a phase's expected cache state)."""

    label: str
    value: float | None
    kind: str = "default"
    note: str = ""


def _fmt(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def _svg(height: int, body: str, title: str, width: int = WIDTH) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="{FONT}"><title>{escape(title)}</title>{body}</svg>'
    )


def label_width(labels: Sequence[str], minimum: int = LABEL_W) -> int:
    """Pixels for a label column that holds the longest label whole (with an 8 px gap)."""
    return max(minimum, int(max((len(t) for t in labels), default=0) * CHAR_W) + 12)


def bar_chart(title: str, bars: Sequence[Bar], unit: str, label_w: int = LABEL_W) -> str:
    """Horizontal bars on a linear scale from zero, each labelled with its value.

    The label column is at least ``label_w`` and grows to the longest label; the chart gets wider
    rather than cutting a case id (labels are right-aligned, so a short column clipped them on the left).
    """
    top = 22
    height = top + ROW * max(1, len(bars)) + 6
    measured = [b.value for b in bars if b.value is not None]
    scale_max = max(measured, default=0.0) or 1.0
    label_w = label_width([b.label for b in bars], label_w)
    span = SPAN_W
    parts = [f'<text x="0" y="14" font-weight="600">{escape(title)}</text>']
    for i, bar in enumerate(bars):
        y = top + i * ROW
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(bar.label)}</text>')
        if bar.value is None:
            parts.append(f'<text x="{label_w}" y="{y + 15}" fill="#888" font-style="italic">not measured</text>')
            continue
        w = max(1.0, span * max(bar.value, 0.0) / scale_max)
        colour = PALETTE.get(bar.kind, PALETTE["default"])
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{ROW - 8}" rx="2" fill="{colour}">'
            f"<title>{escape(bar.label)}: {escape(_fmt(bar.value, unit))}{escape(bar.note)}</title></rect>"
        )
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{escape(_fmt(bar.value, unit))}</text>')
    return _svg(height, "".join(parts), title, width=max(WIDTH, label_w + span + VALUE_W))


def legend(items: Sequence[tuple[str, str]]) -> str:
    """A one-line colour legend: (kind, text) pairs."""
    x, parts = 0, []
    for kind, text in items:
        parts.append(
            f'<rect x="{x}" y="4" width="12" height="12" rx="2" fill="{PALETTE.get(kind, PALETTE["default"])}"/>'
        )
        parts.append(f'<text x="{x + 17}" y="14">{escape(text)}</text>')
        x += 34 + 7 * len(text)
    return _svg(20, "".join(parts), "legend", width=max(x, 1))


def distribution(title: str, values: Sequence[float], unit: str) -> str:
    """Every value as a dot on one axis, with p50, p95, p99 and max marked: a burst's latency spread."""
    height, left, right, axis_y = 92, 20, WIDTH - 20, 54
    if not values:
        body = f'<text x="0" y="14" font-weight="600">{escape(title)}</text>'
        body += '<text x="0" y="40" fill="#888">not measured</text>'
        return _svg(50, body, title)
    hi = max(values) or 1.0
    # From zero unless the spread would be squeezed into a sliver at the right end.
    lo = 0.0 if min(values) < 0.25 * hi else min(values) - 0.1 * (hi - min(values) or hi)

    def x_of(v: float) -> float:
        return left + (right - left) * (v - lo) / (hi - lo)

    parts = [
        f'<text x="0" y="14" font-weight="600">{escape(title)} ({len(values)} calls)</text>',
        f'<line x1="{left}" y1="{axis_y}" x2="{right}" y2="{axis_y}" stroke="#999"/>',
        f'<text x="{left}" y="{axis_y + 16}" fill="#555">{escape(_fmt(lo, unit)) if lo else "0"}</text>',
        f'<text x="{right}" y="{axis_y + 16}" text-anchor="end" fill="#555">{escape(_fmt(hi, unit))}</text>',
    ]
    for i, v in enumerate(sorted(values)):
        jitter = (i % 5) * 4 - 8
        parts.append(
            f'<circle cx="{x_of(v):.1f}" cy="{axis_y - 14 + jitter}" r="3" fill="#4a7bd0" fill-opacity="0.6"/>'
        )
    summary = []
    for q, colour in ((50, "#333"), (95, "#d9534f"), (99, "#8e1c1c")):
        p = percentile(values, q)
        if p is None:
            continue
        parts.append(
            f'<line x1="{x_of(p):.1f}" y1="{axis_y - 30}" x2="{x_of(p):.1f}" y2="{axis_y + 4}" stroke="{colour}"/>'
        )
        summary.append(f'<tspan fill="{colour}">p{q} {escape(_fmt(p, unit))}</tspan>')
    summary.append(f"<tspan>max {escape(_fmt(max(values), unit))}</tspan>")
    parts.append(f'<text x="{left}" y="{axis_y + 34}">{"  ·  ".join(summary)}</text>')
    return _svg(height, "".join(parts), title)

"""The terminal summary: one row per measured case."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _median(case: Mapping[str, Any], phase: str, metric: str) -> float | None:
    stats = case.get("phases", {}).get(phase, {}).get("stats", {})
    value = stats.get(metric, {}).get("median")
    return None if value is None else float(value)


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def summary_lines(cases: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Cold and warm TTFT, warm cached tokens and decode rate per case ("—" = not measured)."""
    rows = [case for case in cases.values() if case.get("phases")]
    if not rows:
        return []
    header = f"{'case':<40} {'cold TTFT ms':>12} {'warm TTFT ms':>12} {'warm cached':>11} {'decode t/s':>10}"
    lines = [header]
    for case in rows:
        lines.append(
            f"{case['id']:<40} {_fmt(_median(case, 'cold', 'ttft_ms'), '12.1f')} "
            f"{_fmt(_median(case, 'warm', 'ttft_ms'), '12.1f')} "
            f"{_fmt(_median(case, 'warm', 'cached_tokens'), '11.0f')} "
            f"{_fmt(_median(case, 'warm', 'decode_tok_s'), '10.1f')}"
        )
    return lines

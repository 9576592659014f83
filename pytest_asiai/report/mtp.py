"""MTP on against off for the same engine × model (the seed panel's MTP table), from typed report cases.

The report's ``mtp`` block, the terminal table and the HTML page show these pairs. Per-request draft
statistics (llama.cpp ``timings``) are measured in :mod:`pytest_asiai.measure.mtp`; this module only
reads what the report holds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_asiai.measure.mtp import summarize_runs
from pytest_asiai.report.model import CaseResult, as_case, mapping, number


def _decode(case: CaseResult) -> float | None:
    """Median decode tok/s of the warm phase (asiai's "dec" column), else of the cold phase."""
    for name in ("warm", "cold"):
        median = case.stat(name, "decode_tok_s")
        if median is not None and median > 0:
            return median
    return None


def _tokens_per_chunk(case: CaseResult) -> float | None:
    found = (
        number(mapping(run.get("metrics")).get("tokens_per_chunk")) for p in case.phases.values() for run in p.runs
    )
    values = [v for v in found if v is not None]
    return statistics.median(values) if values else None


def _pair_key(case: CaseResult) -> tuple[str, str] | None:
    engine, model, mtp = (case.description.get(k) for k in ("engine", "model", "mtp"))
    if not isinstance(engine, str) or not isinstance(model, str) or mtp not in ("on", "off"):
        return None
    return f"{engine}-{model}", str(mtp)


def mtp_deltas(report_cases: Iterable[CaseResult | Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """MTP off and on of the same engine × model, side by side.

    Keyed by ``<engine>-<model>`` (the case id without its ``-mtp_*`` suffix); only pairs where both
    settings ran appear. ``off``/``on`` are median warm decode tok/s (cold when warm is missing);
    ``delta_pct`` = (on − off) / off × 100, None when either was not measured. Each side also carries
    its draft acceptance and tokens per chunk.
    """
    sides: dict[str, dict[str, CaseResult]] = {}
    for raw in report_cases:
        case = as_case(raw)
        key = _pair_key(case)
        if key is not None:
            sides.setdefault(key[0], {})[key[1]] = case
    out: dict[str, dict[str, Any]] = {}
    for name, pair in sides.items():
        if "on" not in pair or "off" not in pair:
            continue
        off, on = _decode(pair["off"]), _decode(pair["on"])
        out[name] = {
            "off": off,
            "on": on,
            "delta_pct": (on - off) / off * 100.0 if off and on is not None else None,
            "acceptance": summarize_runs(r for p in pair["on"].phases.values() for r in p.runs)["acceptance"],
            "tokens_per_chunk_off": _tokens_per_chunk(pair["off"]),
            "tokens_per_chunk_on": _tokens_per_chunk(pair["on"]),
        }
    return out

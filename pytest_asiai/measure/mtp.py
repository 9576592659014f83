"""The MTP axis: draft acceptance of one request, and MTP on against off for the same engine × model.

On llama.cpp ``mtp = "on"`` is speculative decoding (a draft model, or the model's own MTP head on
Qwen3.6-style GGUFs). llama-server b11434 reports each request's draft statistics in ``timings``
(``draft_n`` tokens drafted, ``draft_n_accepted`` accepted) and totals in ``/metrics``
(``llamacpp:spec_decode_num_draft_tokens_total``, ``…_accepted_tokens_total``, ``…_drafts_total``).
Tokens per chunk shows whether accepted drafts are streamed as batches (b11434 sends one token per
chunk even when drafting). Pure functions: nothing here does I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_asiai.wire.records import RequestRecord, as_count

#: Prometheus counters of llama.cpp's speculative decoding (``/metrics`` with ``--metrics``).
SPEC_METRICS = (
    "llamacpp:spec_decode_num_drafts_total",
    "llamacpp:spec_decode_num_draft_tokens_total",
    "llamacpp:spec_decode_num_accepted_tokens_total",
)


def draft_stats(timings: Mapping[str, Any] | None) -> dict[str, float | int | None]:
    """``draft_n``, ``draft_n_accepted`` and their ratio from llama.cpp ``timings`` (None when absent)."""
    timings = timings or {}
    drafted = as_count(timings.get("draft_n"))
    accepted = as_count(timings.get("draft_n_accepted"))
    rate = accepted / drafted if drafted and accepted is not None else None
    return {"draft_n": drafted, "draft_n_accepted": accepted, "acceptance": rate}


def draft_acceptance(record: RequestRecord) -> float | None:
    """Fraction of drafted tokens the target model accepted in one request (None: not drafting)."""
    value = draft_stats(record.timings)["acceptance"]
    return None if value is None else float(value)


def metrics_acceptance(before: Mapping[str, float], after: Mapping[str, float]) -> float | None:
    """Acceptance over a window from two ``/metrics`` scrapes (``prometheus.values`` dicts)."""
    drafted_name, accepted_name = SPEC_METRICS[1], SPEC_METRICS[2]
    if drafted_name not in after or accepted_name not in after:
        return None
    drafted = after[drafted_name] - before.get(drafted_name, 0.0)
    accepted = after[accepted_name] - before.get(accepted_name, 0.0)
    return accepted / drafted if drafted > 0 else None


def summarize_runs(runs: Iterable[Mapping[str, Any]]) -> dict[str, float | int | None]:
    """Draft totals and acceptance over report runs (``phases[name].runs[i]`` dicts)."""
    drafted = accepted = 0
    seen = False
    for run in runs:
        stats = draft_stats(run.get("timings"))
        if stats["draft_n"] is not None and stats["draft_n_accepted"] is not None:
            seen = True
            drafted += int(stats["draft_n"])
            accepted += int(stats["draft_n_accepted"])
    if not seen:
        return {"draft_n": None, "draft_n_accepted": None, "acceptance": None}
    return {"draft_n": drafted, "draft_n_accepted": accepted, "acceptance": accepted / drafted if drafted else None}


def _decode(case: Mapping[str, Any]) -> float | None:
    """Median decode tok/s of the warm phase (asiai's "dec" column), else of the cold phase."""
    phases = case.get("phases") or {}
    for name in ("warm", "cold"):
        stats = (phases.get(name) or {}).get("stats") or {}
        median = (stats.get("decode_tok_s") or {}).get("median")
        if isinstance(median, int | float) and not isinstance(median, bool) and median > 0:
            return float(median)
    return None


def _tokens_per_chunk(case: Mapping[str, Any]) -> float | None:
    values = [
        run["metrics"]["tokens_per_chunk"]
        for phase in (case.get("phases") or {}).values()
        for run in phase.get("runs", [])
        if isinstance((run.get("metrics") or {}).get("tokens_per_chunk"), int | float)
    ]
    return statistics.median(values) if values else None


def _pair_key(case: Mapping[str, Any]) -> tuple[str, str] | None:
    desc = case.get("case") or {}
    engine, model, mtp = desc.get("engine"), desc.get("model"), desc.get("mtp")
    if not isinstance(engine, str) or not isinstance(model, str) or mtp not in ("on", "off"):
        return None
    return f"{engine}-{model}", str(mtp)


def mtp_deltas(report_cases: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """MTP off and on of the same engine × model, side by side.

    Keyed by ``<engine>-<model>`` (the case id without its ``-mtp_*`` suffix); only pairs where both
    settings ran appear. ``off``/``on`` are median warm decode tok/s (cold when warm is missing);
    ``delta_pct`` = (on − off) / off × 100, None when either was not measured. Each side also carries
    its draft acceptance and tokens per chunk.
    """
    sides: dict[str, dict[str, Mapping[str, Any]]] = {}
    for case in report_cases:
        key = _pair_key(case)
        if key is not None:
            sides.setdefault(key[0], {})[key[1]] = case
    out: dict[str, dict[str, Any]] = {}
    for name, pair in sides.items():
        if "on" not in pair or "off" not in pair:
            continue
        off, on = _decode(pair["off"]), _decode(pair["on"])
        runs_on = [r for p in (pair["on"].get("phases") or {}).values() for r in p.get("runs", [])]
        out[name] = {
            "off": off,
            "on": on,
            "delta_pct": (on - off) / off * 100.0 if off and on is not None else None,
            "acceptance": summarize_runs(runs_on)["acceptance"],
            "tokens_per_chunk_off": _tokens_per_chunk(pair["off"]),
            "tokens_per_chunk_on": _tokens_per_chunk(pair["on"]),
        }
    return out

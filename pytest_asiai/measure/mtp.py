"""The MTP axis: draft acceptance of one request, and MTP on against off for the same engine × model.

On llama.cpp ``mtp = "on"`` is speculative decoding (a draft model, or the model's own MTP head on
Qwen3.6-style GGUFs). llama-server b11434 reports each request's draft statistics in ``timings``
(``draft_n`` tokens drafted, ``draft_n_accepted`` accepted) and totals in ``/metrics``
(``llamacpp:spec_decode_num_draft_tokens_total``, ``…_accepted_tokens_total``, ``…_drafts_total``).
Tokens per chunk shows whether accepted drafts are streamed as batches (b11434 sends one token per
chunk even when drafting). Pure functions: nothing here does I/O.
"""

from __future__ import annotations

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

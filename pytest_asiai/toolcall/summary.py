"""The percentages and counts the tool-call gates read, summarized over a run of scored turns.

A failed request counts as not clean in ``pct_clean`` and is listed under ``errors``; the other
percentages are over the turns that got a reply, and None (never 0) when nothing was measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_asiai.toolcall.scoring import TurnResult

__all__ = ["pct", "request_errors", "summarize"]


def pct(part: int, whole: int) -> float | None:
    """A percentage rounded to 0.1, or None when there was nothing to count."""
    return round(100.0 * part / whole, 1) if whole else None


def request_errors(turns: Sequence[TurnResult]) -> list[dict[str, Any]]:
    """One entry per turn whose request failed (its turn has no score: it is not an empty reply)."""
    return [
        {"turn": t.index, "status": t.record.status, "kind": t.record.error_kind, "error": t.record.error}
        for t in turns
        if not t.record.answered
    ]


def summarize(turns: Sequence[TurnResult]) -> dict[str, Any]:
    """Percentages and counts over a run of turns, plus the per-turn details.

    ``pct_clean`` counts failed requests as not clean (an agent got nothing usable); the other
    percentages are over the turns that got a reply (``turns_scored``). Counts are None, not 0, when
    no turn was scored: nothing was measured.
    """
    scores = [t.score for t in turns if t.score is not None]
    edits = [t for t in turns if t.edit]
    edit_scores = [t.score for t in edits if t.score is not None]
    prompts = [t.record.prompt_tokens for t in turns if t.record.prompt_tokens is not None]

    def share(flag: str) -> float | None:
        return pct(sum(bool(getattr(s, flag)) for s in scores), len(scores))

    return {
        "turns": len(turns),
        "turns_scored": len(scores),
        "errors": request_errors(turns),
        "pct_emitted": share("emitted"),
        "pct_json_valid": share("json_valid"),
        "pct_non_truncated": share("non_truncated"),
        "pct_correct_tool": share("correct_tool"),
        "pct_schema_conform": share("schema_conform"),
        "clean_turns": sum(t.clean for t in turns),
        "pct_clean": pct(sum(t.clean for t in turns), len(turns)),
        "edit_turns": [t.index for t in edits],
        "edit_turns_pct_clean": pct(sum(t.clean for t in edits), len(edits)),
        "empty_object_bug": sum(s.empty_object_bug for s in scores) if scores else None,
        "edit_turns_empty_object_bug": sum(s.empty_object_bug for s in edit_scores) if edit_scores else None,
        "ctx_tokens_first_turn": prompts[0] if prompts else None,
        "ctx_tokens_last_turn": prompts[-1] if prompts else None,
        "per_turn": [t.to_dict() for t in turns],
    }

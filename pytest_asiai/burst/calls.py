"""A burst's calls: what each one asks, the answer it must contain, and how the analysis sees it.

Every call asks asiai's burst question (``USER_TEMPLATE``) with its own index, so each has one right
integer (:func:`expected_answer`) and its validity compares across tools. :class:`CallView` puts a
dispatched call's send, first token and end on the clock of the burst's release
(pytest_asiai/wire/dispatch.py), and :func:`call_dict` is its entry in the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pytest_asiai.measure import metrics
from pytest_asiai.wire.dispatch import BurstDispatch, DispatchedCall

USER_TEMPLATE = (
    "Burst call #{i}. Compute (12345 + {i}) * 7 and answer with the resulting number as a single integer. "
    "Do not show any intermediate steps, only the final integer."
)
"""asiai's burst user message, so validity compares across tools."""

_INTEGER = re.compile(r"-?\d[\d,]*")


# ----------------------------------------------------------------------------- prompts and answers


def user_message(i: int) -> str:
    return USER_TEMPLATE.format(i=i)


def expected_answer(i: int) -> int:
    return (12345 + i) * 7


def is_valid(content: str, i: int) -> bool:
    """asiai's check: the answer contains the integer ``(12345 + i) * 7`` (thousands separators allowed)."""
    want = expected_answer(i)
    for match in _INTEGER.findall(content):
        digits = match.replace(",", "")
        if digits.lstrip("-") and int(digits) == want:
            return True
    return False


# ----------------------------------------------------------------------------- per-call records


@dataclass(frozen=True, slots=True)
class CallView:
    """One call as the analysis sees it: times in ms from the burst's release (None: not observed)."""

    call: DispatchedCall
    sent_ms: float | None
    """Release to the end of this call's request write (None: never written)."""
    write_start_ms: float | None
    """Release to the start of this call's request write, the clock of its TTFT (None: never written)."""
    first_token_ms: float | None
    end_ms: float
    valid: bool

    @property
    def ok(self) -> bool:
        return self.call.record.ok


def views(burst: BurstDispatch) -> list[CallView]:
    out = []
    for call in burst.calls:
        record = call.record
        start = (call.start_ns - burst.release_ns) / 1e6
        first = None if record.ttft_ms is None else start + record.ttft_ms
        valid = record.ok and is_valid(record.content, call.index)
        written = start if call.sent_ns is not None else None
        end = (call.end_ns - burst.release_ns) / 1e6
        out.append(CallView(call, burst.offset_ms(call.sent_ns), written, first, end, valid))
    return out


def call_dict(view: CallView) -> dict[str, Any]:
    """One call in the report: when it was scheduled, sent, answered and finished, and what it said."""
    record = view.call.record
    return {
        "index": view.call.index,
        "scheduled_ms": 0.0,
        "write_start_ms": view.write_start_ms,
        "sent_ms": view.sent_ms,
        "first_token_ms": view.first_token_ms,
        "end_ms": view.end_ms,
        "ttft_ms": record.ttft_ms,
        "total_ms": record.total_ms if record.ok else None,
        "ok": record.ok,
        "status": record.status,
        "error_kind": record.error_kind,
        "error": record.error,
        "finish_reason": record.finish_reason,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cached_tokens": record.cached_tokens,
        "cached_source": record.cached_source,
        "chunks": record.chunks,
        "decode_tok_s": metrics.decode_tok_s(record),
        "expected": expected_answer(view.call.index),
        "valid": view.valid,
        "answer": record.content[:200],
    }

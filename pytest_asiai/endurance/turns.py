"""One endurance turn's measurements and the report dicts made of them (``turns[i]`` of a scenario).

pytest_asiai/endurance/trajectory.py fills a :class:`TurnState` per turn; the helpers here write
its parts of the report, whose fields docs/endurance.md lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pytest_asiai.endurance.simrepo import Outcome
from pytest_asiai.endurance.steps import Step
from pytest_asiai.measure.metrics import engine_prefill_ms
from pytest_asiai.toolcall.scoring import CallScore
from pytest_asiai.wire.records import RequestRecord, ToolCall

__all__ = ["TurnState", "call_dict", "env_dict", "json_error", "json_object", "probe_dict", "ratio", "request_dict"]

_MAX_STORED_ARGS = 2000


@dataclass(slots=True)
class TurnState:
    """What one turn measured, folded into its report dict by :meth:`TrajectoryRunner._turn_dict`."""

    turn: int
    step: Step
    retry: bool
    target_tokens: int
    record: RequestRecord
    check: CallScore | None = None
    call: ToolCall | None = None
    extra_calls: int = 0
    outcome: Outcome | None = None
    env_error: str | None = None
    on_task: bool = False
    events: list[str] = field(default_factory=list)
    interrupt: dict[str, Any] | None = None


def json_error(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as exc:
        return f"JSONDecodeError: {exc}"
    return "not a JSON object"


def json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def ratio(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return round(part / whole, 4)


def request_dict(record: RequestRecord) -> dict[str, Any]:
    """The turn's request; ``transport_retries`` is 1 when the client resent it (pytest_asiai/wire/client.py)."""
    return {
        "ok": record.ok,
        "error_kind": record.error_kind,
        "error": record.error,
        "status": record.status,
        "ttft_ms": record.ttft_ms,
        "total_ms": record.total_ms,
        "prompt_tokens": record.prompt_tokens,
        "cached_tokens": record.cached_tokens,
        "cached_source": record.cached_source,
        "completion_tokens": record.completion_tokens,
        "finish_reason": record.finish_reason,
        "engine_prompt_ms": engine_prefill_ms(record),
        "transport_retries": int(record.resent),
    }


def call_dict(call: ToolCall | None, extra: int) -> dict[str, Any] | None:
    if call is None:
        return None
    return {
        "name": call.name,
        "arguments": call.arguments[:_MAX_STORED_ARGS],
        "arguments_chars": len(call.arguments),
        "extra_calls": extra,
    }


def env_dict(state: TurnState) -> dict[str, Any] | None:
    if state.outcome is None and state.env_error is None:
        return None
    if state.outcome is None:
        return {"executed": False, "ok": False, "message": state.env_error, "stale": False}
    first = state.outcome.text.splitlines()[0] if state.outcome.text else ""
    return {"executed": True, "ok": state.outcome.ok, "message": first, "stale": state.outcome.stale}


def probe_dict(state: TurnState) -> dict[str, Any]:
    step = state.step
    return {
        "constant": step.constant,
        "path": step.path,
        "edited_at": step.edited_at,
        "expected_search": step.old_line,
        "passed": state.on_task,
        "stale": bool(state.outcome is not None and state.outcome.stale),
    }

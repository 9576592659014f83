"""Scoring one streamed tool call, and one turn by its first call.

:func:`score_call` scores one call the streaming client reassembled (``RequestRecord.tool_calls``):
emitted, arguments parse as a JSON object, not truncated (``finish_reason != "length"``), the
expected tool, arguments valid against the tool's JSON Schema (the ``jsonschema`` library), and the
empty-object bug (a required array or object present but empty, as the Qwen 3.6 MoE base does to
``edit_file.edits`` on a deep-context turn). A call is *clean* when it passes all of them.

Only a turn's *first* call is scored (asiai's rule, :func:`score_turn`). A failed request is never
scored as an empty reply: its turn has no score, carries the error, and counts as not clean. Other
suites (the endurance run, instruction following) score their calls with the same functions.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from pytest_asiai.toolcall.tools import TOOL_SCHEMAS
from pytest_asiai.wire.records import RequestRecord, ToolCall

__all__ = [
    "CallScore",
    "TurnResult",
    "empty_paths",
    "parse_arguments",
    "schema_violations",
    "score_call",
    "score_turn",
]

_MAX_MESSAGE = 200
_EMPTY_STRINGS = ("", "[]", "{}")


def parse_arguments(raw: str) -> tuple[Any, str | None]:
    """The parsed arguments and why they are unusable (``None`` when they are a JSON object).

    The reasons are asiai's: ``empty_arguments``, ``JSONDecodeError: …`` and ``non_object_args:<type>``.
    """
    if not raw.strip():
        return None, "empty_arguments"
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return None, f"JSONDecodeError: {exc}"
    if not isinstance(value, dict):
        return value, f"non_object_args:{type(value).__name__}"
    return value, None


def schema_violations(args: Any, schema: Mapping[str, Any]) -> tuple[str, ...]:
    """Every JSON Schema (2020-12) violation of ``args``, as ``<json path>: <message>`` lines."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(args), key=lambda e: [str(p) for p in e.absolute_path])
    return tuple(f"{e.json_path}: {e.message}"[:_MAX_MESSAGE] for e in errors)


def _collapsed(value: Any, schema: Mapping[str, Any]) -> bool:
    """A container the schema needs filled that arrived empty (``{}``, ``[]``, ``""``, ``null``…)."""
    kind = schema.get("type")
    if kind == "array" or (kind == "object" and schema.get("required")):
        return value is None or value in ({}, []) or (isinstance(value, str) and value.strip() in _EMPTY_STRINGS)
    return False


def empty_paths(args: Any, schema: Mapping[str, Any], path: str = "$") -> tuple[str, ...]:
    """JSON paths where a required array or object is present but empty (the empty-object bug).

    The whole argument object counts when the tool has required fields (``{}`` for ``edit_file``);
    then each *required* property, and each item of an array whose items are objects with required
    keys (``edits: [{}]``). Optional containers may be empty (``search_code.globs: []`` is fine) and
    a missing key is a schema violation, not this bug.
    """
    if _collapsed(args, schema):
        return (path,)
    found: list[str] = []
    if isinstance(args, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key in args and key in properties:
                found += empty_paths(args[key], properties[key], f"{path}.{key}")
    elif isinstance(args, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(args):
            found += empty_paths(item, schema["items"], f"{path}[{i}]")
    return tuple(found)


@dataclass(frozen=True, slots=True)
class CallScore:
    """How one tool call scored; ``clean`` is the conjunction asiai publishes as "tool-call clean"."""

    expected_tool: str
    """The tool a competent agent calls here (alternatives joined with ``|``)."""
    tool: str | None
    emitted: bool
    json_valid: bool
    parse_error: str | None
    non_truncated: bool
    correct_tool: bool
    schema_conform: bool
    schema_errors: tuple[str, ...]
    empty_object_bug: bool
    empty_paths: tuple[str, ...]
    args_chars: int | None
    """Length of the raw argument string (None when no call was emitted)."""

    @property
    def clean(self) -> bool:
        return (
            self.emitted
            and self.json_valid
            and self.non_truncated
            and self.correct_tool
            and self.schema_conform
            and not self.empty_object_bug
        )

    @property
    def usable(self) -> bool:
        """The call could be executed: a known tool with schema-valid JSON arguments."""
        return self.json_valid and self.schema_conform

    def problem(self) -> str | None:
        """What a harness tells the model about an unusable call (None when it could run)."""
        if not self.emitted:
            return None
        if self.parse_error is not None:
            return f"error: the arguments are not a JSON object ({self.parse_error[:_MAX_MESSAGE]})"
        if not self.schema_conform:
            return "error: invalid arguments: " + "; ".join(self.schema_errors[:3])
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "expected_tool": self.expected_tool,
            "tool": self.tool,
            "emitted": self.emitted,
            "json_valid": self.json_valid,
            "parse_error": self.parse_error,
            "non_truncated": self.non_truncated,
            "correct_tool": self.correct_tool,
            "schema_conform": self.schema_conform,
            "schema_errors": list(self.schema_errors),
            "empty_object_bug": self.empty_object_bug,
            "empty_paths": list(self.empty_paths),
            "args_chars": self.args_chars,
            "clean": self.clean,
        }


def _expected(expected_tool: str | Collection[str]) -> tuple[str, ...]:
    return (expected_tool,) if isinstance(expected_tool, str) else tuple(expected_tool)


def score_call(
    call: ToolCall | None,
    finish_reason: str | None,
    expected_tool: str | Collection[str],
    *,
    schemas: Mapping[str, Mapping[str, Any]] = TOOL_SCHEMAS,
) -> CallScore:
    """Score one call (``None``: the reply emitted none) against the tool a turn expects.

    ``expected_tool`` may name several acceptable tools. Arguments are validated against the schema
    of the tool that was *called*; a call to a tool that does not exist has no schema and does not
    conform. ``finish_reason == "length"`` marks the turn truncated whatever the arguments look like.
    """
    wanted = _expected(expected_tool)
    label = "|".join(wanted)
    non_truncated = finish_reason != "length"
    if call is None:
        return CallScore(label, None, False, False, None, non_truncated, False, False, (), False, (), None)
    args, parse_error = parse_arguments(call.arguments)
    schema = schemas.get(call.name) if call.name is not None else None
    if parse_error is not None:
        violations: tuple[str, ...] = ("$: arguments are not a JSON object",)
    elif schema is None:
        violations = (f"$: unknown tool {call.name!r}",)
    else:
        violations = schema_violations(args, schema)
    empty = empty_paths(args, schema) if parse_error is None and schema is not None else ()
    return CallScore(
        expected_tool=label,
        tool=call.name,
        emitted=True,
        json_valid=parse_error is None,
        parse_error=parse_error,
        non_truncated=non_truncated,
        correct_tool=call.name in wanted,
        schema_conform=not violations,
        schema_errors=violations,
        empty_object_bug=bool(empty),
        empty_paths=empty,
        args_chars=len(call.arguments),
    )


# ------------------------------------------------------------------------------------------ turns


@dataclass(frozen=True, slots=True)
class TurnResult:
    """One turn: the request's record and the score of its first call (None when the request failed)."""

    index: int
    expected_tool: str
    edit: bool
    record: RequestRecord
    score: CallScore | None
    stage: str = "turn"

    @property
    def clean(self) -> bool:
        return self.score is not None and self.score.clean

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        first = r.tool_calls[0] if r.tool_calls else None
        return {
            "turn": self.index,
            "stage": self.stage,
            "expected_tool": self.expected_tool,
            "edit": self.edit,
            "clean": self.clean,
            "ok": r.ok,
            "status": r.status,
            "error_kind": r.error_kind,
            "error": r.error,
            "finish_reason": r.finish_reason,
            "calls": [c.name for c in r.tool_calls],
            "arguments": first.arguments[:_MAX_MESSAGE] if first is not None else None,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "reasoning_chars": r.reasoning_chars,
            "reasoning_tokens": r.reasoning_tokens,
            "content_chars": r.content_chars,
            "ttft_ms": r.ttft_ms,
            "total_ms": r.total_ms,
            "score": self.score.to_dict() if self.score is not None else None,
        }


def score_turn(index: int, expected: str | Collection[str], record: RequestRecord, stage: str = "turn") -> TurnResult:
    """Score a turn's first call; a failed request gets no score (it is not an empty reply)."""
    label = "|".join(_expected(expected))
    score = None
    if record.answered:
        score = score_call(record.tool_calls[0] if record.tool_calls else None, record.finish_reason, expected)
    return TurnResult(index, label, label == "edit_file", record, score, stage)

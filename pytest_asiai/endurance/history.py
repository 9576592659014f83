"""What the model is shown in an endurance trajectory: the message history, how a broken call is
replayed, the worked examples, and the tools with their scoring.

The tools are the tool-call suite's four (pytest_asiai/toolcall/tools.py) plus ``read_file``, and a
call is scored with that suite's :func:`~pytest_asiai.toolcall.scoring.score_call`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_asiai.toolcall.scoring import CallScore, score_call
from pytest_asiai.toolcall.tools import TOOL_SCHEMAS, tool_definitions
from pytest_asiai.wire.records import ToolCall

__all__ = [
    "SCHEMAS",
    "TrajectoryHistory",
    "broken",
    "broken_call_text",
    "endurance_tools",
    "few_shot",
    "score",
    "score_error",
    "truncate_arguments",
]


@dataclass(slots=True)
class TrajectoryHistory:
    """The messages sent each turn; broken calls are kept as text so every engine accepts the history.

    An assistant message whose tool-call arguments are not JSON makes llama.cpp reject the whole
    request ("Failed to parse tool call arguments as JSON"), so such a call is replayed as the text
    the model produced, in the common ``<tool_call>`` notation, and answered by a user message.
    """

    messages: list[dict[str, Any]] = field(default_factory=list)

    def add_system(self, text: str) -> None:
        self.messages.append({"role": "system", "content": text})

    def add_user(self, text: str) -> None:
        """A user message; merged into the previous one when that is also a user message."""
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "user":
            last["content"] = f"{last['content']}\n\n{text}"
        else:
            self.messages.append({"role": "user", "content": text})

    def add_calls(self, calls: Sequence[tuple[str, str, str]], content: str = "") -> None:
        """An assistant message with structured calls: (id, name, JSON arguments) each."""
        tool_calls = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}} for cid, name, args in calls
        ]
        self.messages.append({"role": "assistant", "content": content, "tool_calls": tool_calls})

    def add_text(self, text: str) -> None:
        """An assistant message that carries no usable structured call."""
        self.messages.append({"role": "assistant", "content": text})

    def add_tool_result(self, call_id: str, text: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})

    def chars(self) -> int:
        return sum(len(str(m.get("content") or "")) for m in self.messages)


def broken_call_text(name: str | None, arguments: str) -> str:
    """How a call with unparseable arguments is replayed to the model: the raw text it produced."""
    return f'<tool_call>\n{{"name": "{name or ""}", "arguments": {arguments}}}\n</tool_call>'


def truncate_arguments(arguments: str) -> str:
    """The injected fault: a call's JSON cut in half, so it no longer parses."""
    keep = max(1, len(arguments) // 2)
    return arguments[:keep]


def few_shot() -> list[tuple[str, str, Mapping[str, Any]]]:
    """Two worked examples (user step, tool, arguments) of read-only calls before the first step."""
    return [
        ("Example step: find where the README mentions the tests (search_code).", "search_code", {"pattern": "tests"}),
        ("Example step: read `README.md` (read_file).", "read_file", {"path": "README.md"}),
    ]


#: ``read_file`` is the endurance suite's own addition to the shared tool set: a long trajectory of
#: agent work needs reads, and asiai's four tools have none.
READ_FILE_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"path": {"type": "string"}},
    "required": ["path"],
}
SCHEMAS: Mapping[str, Mapping[str, Any]] = {**TOOL_SCHEMAS, "read_file": READ_FILE_SCHEMA}


def endurance_tools() -> list[dict[str, Any]]:
    """The request's ``tools``: the shared four plus ``read_file``."""
    read_file = {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a whole file; returns its lines, numbered.",
            "parameters": READ_FILE_SCHEMA,
        },
    }
    return [*tool_definitions(), read_file]


def score(call: ToolCall | None, finish_reason: str | None, expected_tool: str) -> CallScore:
    """The tool-call suite's per-call score, with ``read_file`` among the known schemas."""
    return score_call(call, finish_reason, expected_tool, schemas=SCHEMAS)


def broken(call_score: CallScore) -> bool:
    """No call, or one the environment cannot execute (the agent must repair it)."""
    return not (call_score.emitted and call_score.usable)


def score_error(call_score: CallScore) -> str | None:
    if not call_score.emitted:
        return "no tool call"
    if call_score.parse_error is not None:
        return call_score.parse_error
    return "; ".join(call_score.schema_errors) or None

"""Multi-turn agent conversations: a growing chat, the budgets of a profile, and playing scripted turns.

* :class:`Conversation` keeps a growing chat history and sends it turn by turn through a
  :class:`~pytest_asiai.wire.client.StreamingClient`; each reply's calls must be answered with tool results.
* :func:`run_scenario` plays the scripted scenarios of :mod:`pytest_asiai.toolcall.tools` and returns
  per-turn scores (:mod:`pytest_asiai.toolcall.scoring`); :mod:`pytest_asiai.toolcall.summary` turns
  them into the percentages the gates read, and :mod:`pytest_asiai.toolcall.recovery` plays the
  recovery scenario on the same conversation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.toolcall.scoring import TurnResult, parse_arguments, score_call, score_turn
from pytest_asiai.toolcall.tools import TOOLS, Scenario, Turn
from pytest_asiai.wire.client import client_for
from pytest_asiai.wire.records import RequestRecord, ToolCall
from pytest_asiai.wire.requests import RequestBuilder, assemble, merge_fields

__all__ = [
    "BUDGETS",
    "Budget",
    "ChatClient",
    "Conversation",
    "budget_for",
    "client_for",
    "merge_fields",
    "reply_for",
    "request_fields",
    "run_scenario",
    "run_turns",
]


# ------------------------------------------------------------------------------- budgets, requests


@dataclass(frozen=True, slots=True)
class Budget:
    """How much of each suite a prompt profile plays, and the output budgets of its requests."""

    turns: int | None
    """Turns played per scenario (None: all of them)."""
    max_tokens: int
    observe: int | None
    """Recovery turns observed after "Fix it." (None: the scenario's own number)."""
    brief_rounds: int
    """Requests the research brief may take (tool rounds plus the final answer)."""
    brief_max_tokens: int
    probe_max_tokens: int


BUDGETS: Mapping[str, Budget] = {
    "full": Budget(
        turns=None, max_tokens=1024, observe=None, brief_rounds=8, brief_max_tokens=1536, probe_max_tokens=512
    ),
    "smoke": Budget(turns=3, max_tokens=128, observe=1, brief_rounds=2, brief_max_tokens=192, probe_max_tokens=64),
}
"""``full`` is asiai's workload; ``smoke`` keeps a 2-core CPU run short (three turns per scenario,
which still include an edit turn) and will truncate long calls: compare engines within one profile."""


def budget_for(profile: str) -> Budget:
    """The budget of a prompt profile (``full`` for profiles that do not define one)."""
    return BUDGETS.get(profile, BUDGETS["full"])


def request_fields(handle: EngineHandle, *, thinking: bool | None = None) -> dict[str, Any]:
    """The fields every request of a case carries, ``thinking`` being a setting the suite varies
    itself (precedence: pytest_asiai/wire/requests.py)."""
    return RequestBuilder.for_handle(handle).fields(thinking=thinking)


# ---------------------------------------------------------------------------------- conversation


class ChatClient(Protocol):
    """What a conversation needs from a client (:class:`~pytest_asiai.wire.client.StreamingClient`)."""

    def chat(self, body: Mapping[str, Any]) -> RequestRecord: ...


class Conversation:
    """One growing chat: system prompt, history, and every turn's request, reply and tool results.

    ``fields`` are merged into every request (``temperature``, ``chat_template_kwargs``…); the
    conversation owns ``model``, ``messages``, ``tools`` and ``max_tokens``. With ``keep_reasoning``
    each assistant message carries its ``reasoning_content`` so a template's ``preserve_thinking``
    has something to preserve.
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        model: str,
        system: str,
        tools: Sequence[Mapping[str, Any]] = TOOLS,
        history: Sequence[Mapping[str, Any]] = (),
        fields: Mapping[str, Any] | None = None,
        keep_reasoning: bool = False,
    ) -> None:
        self.client = client
        self.model = model
        self.tools = [dict(t) for t in tools]
        self.fields = dict(fields or {})
        self.keep_reasoning = keep_reasoning
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system}, *map(dict, history)]
        self.records: list[RequestRecord] = []
        self.pending: list[str | None] = []
        """Ids of the last reply's calls, in order, until :meth:`answer` gives their results (None:
        a call replayed as text because its arguments are not a JSON object)."""

    def send(self, user: str | None, *, max_tokens: int) -> RequestRecord:
        """Append ``user`` (None: continue after tool results), send the chat, keep the reply."""
        if self.pending:
            raise RuntimeError(f"{len(self.pending)} tool call(s) of the last reply have no result yet")
        if user is not None:
            self.messages.append({"role": "user", "content": user})
        body = assemble(self.fields, model=self.model, messages=self.messages, max_tokens=max_tokens, tools=self.tools)
        record = self.client.chat(body)
        self.records.append(record)
        if record.answered:
            self._keep_reply(record)
        return record

    def _keep_reply(self, record: RequestRecord) -> None:
        """Append the reply; calls whose arguments are not a JSON object are kept as text.

        llama.cpp refuses a whole request whose history holds unparseable tool-call arguments, which
        would turn the model's one bad call into an engine failure on every later turn; so such a
        call is replayed as the text the model produced and its result goes back as a user message.
        """
        turn = len(self.records) - 1
        message: dict[str, Any] = {"role": "assistant", "content": record.content}
        if self.keep_reasoning and record.reasoning:
            message["reasoning_content"] = record.reasoning
        replayed: list[dict[str, Any]] = []
        self.pending = []
        for call in record.tool_calls:
            if parse_arguments(call.arguments)[1] is not None:
                message["content"] += _call_as_text(call)
                self.pending.append(None)
                continue
            call_id = call.id or f"call_{turn}_{call.index}"
            function = {"name": call.name or "", "arguments": call.arguments}
            replayed.append({"id": call_id, "type": "function", "function": function})
            self.pending.append(call_id)
        if replayed:
            message["tool_calls"] = replayed
        self.messages.append(message)

    def answer(self, results: Sequence[str]) -> None:
        """Give one tool result per call of the last reply, in order."""
        if len(results) != len(self.pending):
            raise ValueError(f"{len(self.pending)} pending tool call(s), {len(results)} result(s) given")
        for call_id, text in zip(self.pending, results, strict=True):
            if call_id is not None:
                self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        rejected = [text for call_id, text in zip(self.pending, results, strict=True) if call_id is None]
        if rejected:
            self.messages.append({"role": "user", "content": "\n".join(rejected)})
        self.pending = []


def _call_as_text(call: ToolCall) -> str:
    return (
        "<tool_call>"
        + json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
        + "</tool_call>"
    )


def reply_for(call: ToolCall, finish_reason: str | None, turn: Turn) -> str:
    """The tool result a harness gives ``call`` on ``turn``: the error for an unusable call, the
    canned result for the expected tool, a neutral acknowledgement for another valid tool."""
    score = score_call(call, finish_reason, turn.expected_tool)
    problem = score.problem()
    if problem is not None:
        return problem
    return turn.result if score.correct_tool else f"{call.name}: done (no output)"


def _answer_all(conversation: Conversation, record: RequestRecord, turn: Turn) -> None:
    if record.ok and record.tool_calls:
        conversation.answer([reply_for(c, record.finish_reason, turn) for c in record.tool_calls])


def run_turns(
    conversation: Conversation, turns: Sequence[Turn], *, max_tokens: int, stage: str = "turn"
) -> list[TurnResult]:
    """Play ``turns`` in order, answering every call, and score each turn."""
    results: list[TurnResult] = []
    for index, turn in enumerate(turns):
        record = conversation.send(turn.user, max_tokens=max_tokens)
        results.append(score_turn(index, turn.expected_tool, record, stage))
        _answer_all(conversation, record, turn)
    return results


def run_scenario(
    conversation: Conversation, scenario: Scenario, *, max_tokens: int, turns: int | None = None
) -> list[TurnResult]:
    """Play ``scenario`` (its first ``turns`` turns), answering every call, and score each turn.

    Open the conversation with the scenario's prompt and history:
    ``Conversation(client, model=..., system=scenario.system, history=scenario.history)``.
    """
    return run_turns(conversation, scenario.turns[:turns], max_tokens=max_tokens)

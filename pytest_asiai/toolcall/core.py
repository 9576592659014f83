"""Tool-call cleanliness: score one streamed tool call, and drive multi-turn agent conversations.

The public primitives (other suites, such as an endurance run, build on them):

* :func:`score_call` scores one call the streaming client reassembled (``RequestRecord.tool_calls``):
  emitted, arguments parse as a JSON object, not truncated (``finish_reason != "length"``), the
  expected tool, arguments valid against the tool's JSON Schema (the ``jsonschema`` library), and
  the empty-object bug (a required array or object present but empty, as the Qwen 3.6 MoE base does
  to ``edit_file.edits`` on a deep-context turn). A call is *clean* when it passes all of them.
* :class:`Conversation` keeps a growing chat history and sends it turn by turn through a
  :class:`~pytest_asiai.wire.client.StreamingClient`; each reply's calls must be answered with tool results.
* :func:`run_scenario` and :func:`run_recovery` play the scripted scenarios of :mod:`pytest_asiai.toolcall.tools`
  and return per-turn scores; :func:`summarize` turns them into the percentages the gates read.

Only a turn's *first* call is scored (asiai's rule). A failed request is never scored as an empty
reply: its turn has no score, carries the error, and counts as not clean.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema

from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.gates.core import DISABLED, FAIL, NO_THRESHOLD, NOT_MEASURED, PASS, GateResult
from pytest_asiai.gates.thresholds import meets
from pytest_asiai.measure.validity import degenerate_reason
from pytest_asiai.toolcall.tools import TOOL_SCHEMAS, TOOLS, RecoveryScenario, Scenario, Turn
from pytest_asiai.wire.client import StreamingClient, Timeouts
from pytest_asiai.wire.records import RequestRecord, ToolCall

__all__ = [
    "BUDGETS",
    "GATES",
    "Budget",
    "CallScore",
    "ChatClient",
    "Conversation",
    "GateSpec",
    "RecoveryResult",
    "TurnResult",
    "budget_for",
    "client_for",
    "empty_paths",
    "judge",
    "merge_fields",
    "parse_arguments",
    "pct",
    "request_fields",
    "run_recovery",
    "run_scenario",
    "run_turns",
    "schema_violations",
    "score_call",
    "summarize",
]

_MAX_MESSAGE = 200
_EMPTY_STRINGS = ("", "[]", "{}")


# -------------------------------------------------------------------------------------- scoring


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
    """Fields every request of a case carries: temperature 0, the case's thinking setting and its
    engines.toml ``request`` fields, then ``thinking`` (an explicit setting of the suite) on top."""
    case = handle.case
    layers: list[Mapping[str, Any]] = [{"temperature": 0.0}]
    if case.thinking is not None:
        layers.append(handle.family.thinking_fields(case.thinking == "on"))
    layers.append(case.request)
    if thinking is not None:
        layers.append(handle.family.thinking_fields(thinking))
    return merge_fields(*layers)


def client_for(handle: EngineHandle) -> StreamingClient:
    """A streaming client for the case's engine (started if managed), with the case's timeouts."""
    case = handle.case
    timeouts = Timeouts(connect_s=case.connect_timeout_s, deadline_s=case.deadline_s)
    return StreamingClient(handle.ensure_running(), api_key=case.api_key, timeouts=timeouts)


# ---------------------------------------------------------------------------------- conversation


class ChatClient(Protocol):
    """What a conversation needs from a client (:class:`~pytest_asiai.wire.client.StreamingClient`)."""

    def chat(self, body: Mapping[str, Any]) -> RequestRecord: ...


def merge_fields(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Request fields layered left to right; nested objects (``chat_template_kwargs``) merge key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = merge_fields(out[key], value)
            else:
                out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


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
        body = {
            **self.fields,
            "model": self.model,
            "messages": list(self.messages),
            "tools": self.tools,
            "max_tokens": max_tokens,
        }
        record = self.client.chat(body)
        self.records.append(record)
        if record.ok:
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


# ------------------------------------------------------------------------------------ turn results


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
            "latency_ms": r.total_ms,
            "score": self.score.to_dict() if self.score is not None else None,
        }


def score_turn(index: int, expected: str | Collection[str], record: RequestRecord, stage: str = "turn") -> TurnResult:
    """Score a turn's first call; a failed request gets no score (it is not an empty reply)."""
    label = "|".join(_expected(expected))
    score = None
    if record.ok:
        score = score_call(record.tool_calls[0] if record.tool_calls else None, record.finish_reason, expected)
    return TurnResult(index, label, label == "edit_file", record, score, stage)


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


# -------------------------------------------------------------------------------------- summaries


def pct(part: int, whole: int) -> float | None:
    """A percentage rounded to 0.1, or None when there was nothing to count."""
    return round(100.0 * part / whole, 1) if whole else None


def _errors(turns: Sequence[TurnResult]) -> list[dict[str, Any]]:
    return [
        {"turn": t.index, "status": t.record.status, "kind": t.record.error_kind, "error": t.record.error}
        for t in turns
        if not t.record.ok
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
        "errors": _errors(turns),
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


# ---------------------------------------------------------------------------------------- recovery


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """A failing tool result, then "Fix it.": did the model fix it within the observed turns?"""

    scenario: RecoveryScenario
    context: tuple[TurnResult, ...]
    trigger: TurnResult
    observed: tuple[TurnResult, ...]
    observe: int
    """How many turns the model was given after "Fix it." (``observed`` stops early at the fix)."""

    @property
    def failed_requests(self) -> list[TurnResult]:
        return [t for t in (*self.context, self.trigger, *self.observed) if not t.record.ok]

    @property
    def turns_to_recover(self) -> int | None:
        """1-based index of the first observed turn with a clean call of a fixing tool."""
        return next((i for i, t in enumerate(self.observed, 1) if t.clean), None)

    @property
    def recovered(self) -> bool | None:
        """True when fixed; None when a request failed before the fix (not measured); else False."""
        if self.turns_to_recover is not None:
            return True
        return None if self.failed_requests else False

    @property
    def repeated_failing_call(self) -> bool:
        """An observed call identical (name and raw arguments) to the one that failed."""
        failing = self.trigger.record.tool_calls[:1]
        return bool(failing) and any(_same_calls(t.record, failing[0]) for t in self.observed)

    @property
    def looped(self) -> bool:
        """The observed output (text and call arguments) is degenerate: the model went in circles."""
        parts = [t.record.content for t in self.observed] + [
            c.arguments for t in self.observed for c in t.record.tool_calls
        ]
        text = "\n".join(p for p in parts if p)
        return bool(text) and degenerate_reason(text) is not None

    def to_dict(self) -> dict[str, Any]:
        turns = (*self.context, self.trigger, *self.observed)
        first = self.trigger.record.tool_calls[:1]
        return {
            "recovered": self.recovered,
            "turns_to_recover": self.turns_to_recover,
            "observe": self.observe,
            "looped": self.looped,
            "repeated_failing_call": self.repeated_failing_call,
            "trigger_call": first[0].name if first else None,
            "finish_reasons": [t.record.finish_reason for t in self.observed],
            "errors": _errors(turns),
            "per_turn": [t.to_dict() for t in turns],
        }


def _same_calls(record: RequestRecord, call: ToolCall) -> list[ToolCall]:
    return [c for c in record.tool_calls if (c.name, c.arguments) == (call.name, call.arguments)]


_NUDGE = "Use the tools to fix the failing test run."


def run_recovery(
    conversation: Conversation, scenario: RecoveryScenario, *, max_tokens: int, observe: int | None = None
) -> RecoveryResult:
    """Context turns, the trigger turn (its call gets the failure), "Fix it.", then up to ``observe``
    turns; stops at the first clean call of a fixing tool or at the first failed request."""
    context = run_turns(conversation, scenario.context, max_tokens=max_tokens, stage="context")
    record = conversation.send(scenario.trigger.user, max_tokens=max_tokens)
    trigger = score_turn(len(context), scenario.trigger.expected_tool, record, "trigger")
    fix: str | None = scenario.fix_prompt
    if record.ok and record.tool_calls:
        conversation.answer([scenario.failure] * len(record.tool_calls))
    else:
        fix = f"The test run failed:\n{scenario.failure}\n\n{scenario.fix_prompt}"
    observed: list[TurnResult] = []
    limit = scenario.observe if observe is None else observe
    for k in range(limit):
        if not trigger.record.ok:
            break
        record = conversation.send(fix, max_tokens=max_tokens)
        turn = score_turn(trigger.index + 1 + k, scenario.fixing_tools, record, "observe")
        observed.append(turn)
        if turn.clean or not record.ok:
            break
        fix = _continue_recovery(conversation, record, scenario)
    return RecoveryResult(scenario, tuple(context), trigger, tuple(observed), limit)


def _continue_recovery(conversation: Conversation, record: RequestRecord, scenario: RecoveryScenario) -> str | None:
    """Answer an observed turn that did not fix anything; the next user message (None: continue)."""
    if not record.tool_calls:
        return _NUDGE
    results = []
    for call in record.tool_calls:
        score = score_call(call, record.finish_reason, scenario.fixing_tools)
        problem = score.problem()
        if problem is not None:
            results.append(problem)
        elif call.name == scenario.trigger.expected_tool:
            results.append(scenario.failure)  # nothing was fixed: the tests still fail
        else:
            results.append(f"{call.name}: done (no output)")
    conversation.answer(results)
    return None


# ------------------------------------------------------------------------------------------- gates


@dataclass(frozen=True, slots=True)
class GateSpec:
    """A threshold the agent-quality suites check, and which side of it passes."""

    name: str
    default: float
    at_least: bool
    """True: the value must reach the threshold; False: it must not exceed it."""
    unit: str
    what: str


GATES: Mapping[str, GateSpec] = {
    g.name: g
    for g in (
        GateSpec("toolcall_clean", 90.0, True, "%", "clean tool-call turns"),
        GateSpec("toolcall_empty_object", 0.0, False, "calls", "empty-object bugs"),
        GateSpec("instruct_sections", 100.0, True, "%", "brief sections delivered"),
        GateSpec("thinking_ablation_errors", 0.0, False, "requests", "failed requests"),
    )
}


def judge(
    spec: GateSpec,
    key: str,
    value: float | None,
    threshold: float | bool | None,
    source: str,
    *,
    failures: Sequence[str] = (),
    details: Mapping[str, Any] | None = None,
) -> GateResult:
    """The verdict on ``value`` (reported under ``results.gates.<key>``).

    ``threshold`` comes from :class:`~pytest_asiai.gates.thresholds.Thresholds`: ``false`` disables the
    gate, ``true`` keeps the default. A value that was not measured is never a pass: it fails when
    requests failed (``failures``: the engine broke the task) and is "not measured" otherwise.
    """
    if threshold is True:
        threshold = spec.default
    common: dict[str, Any] = {
        "value": value,
        "unit": spec.unit,
        "threshold": threshold,
        "threshold_source": source,
        "details": dict(details or {}),
    }
    if threshold is False:
        return GateResult(key, DISABLED, f"disabled ({spec.name}=false from the {source})", **common)
    if value is None:
        if failures:
            return GateResult(key, FAIL, f"{spec.what} not measured: " + "; ".join(failures[:3]), **common)
        return GateResult(key, NOT_MEASURED, f"no {spec.what} were measured", **common)
    if threshold is None:
        return GateResult(key, NO_THRESHOLD, f"{spec.what}: {value:g} {spec.unit} (no threshold)", **common)
    passed, side = meets(value, threshold, spec.at_least)
    reason = f"{spec.what}: {value:g} {spec.unit} {side} {threshold:g} ({source})"
    return GateResult(key, PASS if passed else FAIL, reason, **common)

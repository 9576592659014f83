"""The endurance trajectory: a deterministic task list over the simulated repository, the messages
the model is shown, the padding that makes the context grow on a token schedule, and the runner
that plays it against an engine turn by turn.

Why deterministic: two engines (or two releases of one) must face the same trajectory, so the task
list, the repository and the padding text derive from a seed. The only inputs that are not the seed
are the model's own calls, which the environment executes for real (:mod:`pytest_asiai.endurance.simrepo`):
a wrong edit changes what later steps see, exactly as in an agent loop.

A step is one instruction. Each turn sends the whole conversation and gets one call back; a broken
call (no call, arguments that are not JSON, or that break the tool's schema) is answered with the
error and the same step is retried without a new instruction (at most ``max_retries`` times), which
is where malformed-call recovery shows. Persistence probes are inserted at fixed turns: they ask for
a change to a line an earlier step edited, without saying what the line now holds, so only a model
that still refers to the file's current content gets the search text right.

:class:`TrajectoryRunner` sends each turn through an injected ``chat`` function, scores the first
call with the tool-call suite's :func:`~pytest_asiai.toolcall.core.score_call`, executes it, and keeps one
dict per turn; :mod:`pytest_asiai.endurance.suite` turns those into figures and gates.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_asiai.endurance.simrepo import Constant, Fact, Outcome, SimRepo
from pytest_asiai.toolcall.core import CallScore, parse_arguments, score_call
from pytest_asiai.toolcall.tools import TOOL_SCHEMAS, tool_definitions
from pytest_asiai.wire.records import RequestRecord, ToolCall

__all__ = [
    "Calibrator",
    "ContextPlan",
    "Conversation",
    "EnduranceProfile",
    "Planner",
    "ScenarioSpec",
    "Step",
    "TrajectoryRunner",
    "broken",
    "judge_step",
    "padding_text",
    "reference_call",
    "score",
    "system_prompt",
]

#: Characters per token assumed before the engine's own counts calibrate it (code and prose mix).
DEFAULT_CHARS_PER_TOKEN = 3.6
#: Tokens a chat template adds around one message (role markers, separators); an estimate.
MESSAGE_OVERHEAD_TOKENS = 6
#: Every third constant's fix is also recorded in a change note (a write_file step).
WRITE_EVERY = 3
#: The seed every engine's trajectory is generated from (same repository, same task list).
DEFAULT_SEED = 9
_MAX_STORED_ARGS = 2000

_HANDBOOK = (
    "Every change is made with the smallest edit that does the job; whole-file rewrites are avoided.",
    "Constants live at the top of their module, one per line, in the form NAME = value.",
    "Tests are named after the constant they check and live in tests/test_<module>.py.",
    "A search comes before an edit, and the file is read before its lines are changed.",
    "Tool results are the only source of truth about the files; memory of old content is not.",
    "After an edit the tests of the module are run, and a failure is fixed before moving on.",
    "Change notes under docs/changes/ record each fix in one line: NAME: old -> new.",
    "The service is deployed from the main branch; every commit must keep the suite green.",
    "Reviewers read diffs line by line, so unrelated lines are never touched.",
    "Search patterns are regular expressions; escape dots and brackets when they are literal.",
    "Long tool outputs are normal in this repository: the environment log follows every result.",
    "Edits use exact search text copied from the file, including spacing and comments.",
)

_LOG_ACTIONS = ("indexed", "linted", "type-checked", "formatted", "hashed", "scanned", "cached", "synced")
_LOG_DETAILS = ("0 warnings", "no changes", "up to date", "1 note", "ok", "unchanged", "fresh", "clean")


# ------------------------------------------------------------------------------- context growth


@dataclass(frozen=True, slots=True)
class ContextPlan:
    """Prompt size per turn: linear from ``start_tokens`` at turn 1 to ``end_tokens`` at ``turns``."""

    start_tokens: int
    end_tokens: int
    turns: int

    def target(self, turn: int) -> int:
        if self.turns <= 1:
            return self.start_tokens
        fraction = min(1.0, max(0.0, (turn - 1) / (self.turns - 1)))
        return round(self.start_tokens + (self.end_tokens - self.start_tokens) * fraction)

    def to_dict(self) -> dict[str, int]:
        return {"start_tokens": self.start_tokens, "end_tokens": self.end_tokens, "turns": self.turns}


@dataclass(slots=True)
class Calibrator:
    """Characters per token, learnt from the prompt sizes the engine reports turn after turn.

    The prompt of turn t+1 is the prompt of turn t, plus the reply (its ``completion_tokens``), plus
    the text we appended; the engine's count of the difference calibrates our estimate of that text.
    """

    initial: float = DEFAULT_CHARS_PER_TOKEN
    """Used until 50 tokens of growth were measured (an exact ``/tokenize`` count when the engine has one)."""
    chars: float = 0.0
    tokens: float = 0.0

    @property
    def chars_per_token(self) -> float:
        if self.tokens < 50:
            return self.initial
        return min(8.0, max(1.5, self.chars / self.tokens))

    def learn(self, added_chars: int, added_tokens: float) -> None:
        if added_chars > 0 and added_tokens > 0:
            self.chars += added_chars
            self.tokens += added_tokens

    def tokens_of(self, chars: int) -> float:
        return chars / self.chars_per_token

    def chars_for(self, tokens: float) -> int:
        return max(0, int(tokens * self.chars_per_token))


def padding_text(seed: int, turn: int, chars: int, paths: Sequence[str]) -> str:
    """About ``chars`` characters of a deterministic environment log (whole lines, none if < 1 line).

    The log names files but never a constant or a value, so it grows the context without changing
    what a correct call is.
    """
    if chars <= 0:
        return ""
    rng = random.Random(f"endurance-log-{seed}-{turn}")
    lines: list[str] = []
    size = 0
    while True:
        minute, second = divmod(turn * 37 + len(lines) * 3, 60)
        line = (
            f"[env {minute:02d}:{second:02d}] worker-{rng.randint(1, 8)} {rng.choice(_LOG_ACTIONS)} "
            f"{rng.choice(paths)} in {rng.randint(3, 900)} ms ({rng.choice(_LOG_DETAILS)}, "
            f"digest {rng.getrandbits(32):08x})"
        )
        if size + len(line) + 1 > chars:
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def handbook(chars: int) -> str:
    """A project handbook of about ``chars`` characters (numbered paragraphs, none identical)."""
    paragraphs: list[str] = []
    size = 0
    i = 0
    while size < chars:
        body = " ".join(_HANDBOOK[(i * 5 + j) % len(_HANDBOOK)] for j in range(3))
        paragraph = f"{i + 1}. {body} (handbook-{i + 1})"
        paragraphs.append(paragraph)
        size += len(paragraph) + 1
        i += 1
    return "\n".join(paragraphs)


def calibration_sample(seed: int) -> str:
    """Text with the trajectory's mix of prose, code and log lines, to count chars per token on."""
    repo = SimRepo(seed)
    code = "\n".join(repo.files[p] for p in sorted(repo.files)[:4])
    return system_prompt(repo, "calibration", 2000) + code + padding_text(seed, 1, 2000, sorted(repo.files))


def system_prompt(repo: SimRepo, salt: str, handbook_chars: int) -> str:
    """The agent's instructions, the file list and a handbook sized to reach the first turn's target."""
    files = "\n".join(f"  {path}" for path in sorted(repo.files))
    text = (
        f"Session {salt}.\n"
        "You are a coding agent working in the `inventory` repository. The user gives you one step at "
        "a time. Answer every step with exactly one tool call and no other text; tool arguments must "
        "be valid JSON that follows the tool's schema.\n"
        "Tools: read_file(path); write_file(path, content); edit_file(path, edits: [{search, replace}]) "
        "where each search text must match the file exactly once; search_code(pattern, globs, "
        "max_results); run_tests(filter).\n"
        "A result starting with `error:` means the call changed nothing: correct it in your next call.\n"
        f"Files:\n{files}\n"
    )
    if handbook_chars > 0:
        text += "\n# Project handbook\n" + handbook(handbook_chars) + "\n"
    return text


# ------------------------------------------------------------------------------------- the steps


@dataclass(frozen=True, slots=True)
class Step:
    """One instruction: what is asked, which tool does it, and what achieving it means."""

    number: int
    """1-based instruction number as the user sees it (probes included)."""
    kind: str
    """``search``, ``read``, ``edit``, ``test``, ``write`` or ``probe``."""
    tool: str
    message: str
    path: str
    constant: str | None = None
    new_line: str | None = None
    """For edits and probes: the definition line the file must hold afterwards."""
    old_line: str | None = None
    """For probes: the line as it was when the probe was asked (never shown to the model)."""
    content: str | None = None
    """For writes: the exact file content asked for."""
    test_id: str | None = None
    edited_at: int | None = None
    """For probes: the turn at which the probed constant's edit step was asked."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"number": self.number, "kind": self.kind, "tool": self.tool, "path": self.path}
        for key in ("constant", "new_line", "old_line", "content", "test_id", "edited_at"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class _Task:
    """A planned step before it is numbered and phrased against the repository's current state."""

    kind: str
    path: str
    constant: Constant | None = None
    content: str | None = None
    module: str | None = None


def _task_list(repo: SimRepo, seed: int) -> Iterator[_Task]:
    """Fix every constant (search, read, edit, test; a change note every third), then keep writing notes."""
    order = list(repo.constants)
    random.Random(f"endurance-plan-{seed}").shuffle(order)
    notes = 0
    for i, c in enumerate(order, 1):
        yield _Task("search", c.path, c)
        yield _Task("read", c.path, c)
        yield _Task("edit", c.path, c)
        yield _Task("test", c.path, c, module=c.module)
        if i % WRITE_EVERY == 0:
            notes += 1
            yield _Task("write", f"docs/changes/{notes:03d}.md", c, content=f"{c.name}: {c.initial} -> {c.target}")
    while True:
        notes += 1
        path = f"docs/notes/{notes:03d}.md"
        yield _Task("write", path, content=f"Note {notes}: checked the build of release {seed % 97}.{notes}")
        yield _Task("read", path)
        yield _Task("test", path, module="")


def _phrase(task: _Task, number: int, repo: SimRepo) -> Step:
    """The instruction for a task, written against the repository as it is now."""
    c = task.constant
    head = f"Step {number}:"
    if task.kind == "search" and c is not None:
        message = f"{head} find where `{c.name}` is defined (search_code)."
        return Step(number, "search", "search_code", message, task.path, c.name)
    if task.kind == "read":
        return Step(number, "read", "read_file", f"{head} read `{task.path}` (read_file).", task.path)
    if task.kind == "edit" and c is not None:
        current = repo.line_of(c) or c.line(c.initial)
        new = c.line(c.target)
        message = f"{head} in `{c.path}`, change `{current}` to `{new}` (edit_file), so that `{c.test_id}` passes."
        return Step(number, "edit", "edit_file", message, c.path, c.name, new_line=new, test_id=c.test_id)
    if task.kind == "test":
        module = task.module or ""
        where = f"the tests of the `{module}` module (run_tests with filter `{module}`)" if module else "all tests"
        test_id = c.test_id if c is not None else None
        return Step(number, "test", "run_tests", f"{head} run {where}.", task.path, test_id=test_id)
    content = task.content or ""
    message = f"{head} write `{task.path}` (write_file) with exactly this content: `{content}`"
    return Step(number, "write", "write_file", message, task.path, content=content)


def probe_step(number: int, constant: Constant, repo: SimRepo, edited_at: int) -> Step:
    """A persistence probe: append a unique comment to a constant's line, whose text is not given."""
    old = repo.line_of(constant) or constant.line(constant.initial)
    comment = f"# verified-{number}"
    message = (
        f"Step {number}: persistence check. Append the comment `{comment}` to the line that defines "
        f"`{constant.name}` in `{constant.path}` (edit_file: search for that line exactly as it is in the "
        "file now, and replace it with the same line followed by two spaces and the comment)."
    )
    return Step(
        number,
        "probe",
        "edit_file",
        message,
        constant.path,
        constant.name,
        new_line=f"{old}  {comment}",
        old_line=old,
        edited_at=edited_at,
    )


class Planner:
    """Which step each turn asks: the task list in order, with probes at fixed turns.

    A probe targets the constant whose edit step was asked longest ago and not probed yet; before
    any edit step there is nothing to probe, and the turn takes the next task instead.
    """

    def __init__(self, repo: SimRepo, seed: int, probe_turns: Sequence[int]) -> None:
        self.repo = repo
        self.probe_turns = frozenset(probe_turns)
        self._tasks = _task_list(repo, seed)
        self._numbered = 0
        self._edited: list[tuple[int, str]] = []
        """(turn asked, constant name) of every edit step, oldest first; probed ones removed."""

    def next_step(self, turn: int) -> Step:
        self._numbered += 1
        if turn in self.probe_turns and self._edited:
            asked_at, name = self._edited.pop(0)
            return probe_step(self._numbered, self.repo.constant(name), self.repo, asked_at)
        step = _phrase(next(self._tasks), self._numbered, self.repo)
        if step.kind == "edit" and step.constant is not None:
            self._edited.append((turn, step.constant))
        return step


# ------------------------------------------------------------------------------- judging a call


def reference_call(step: Step, repo: SimRepo) -> tuple[str, dict[str, Any]]:
    """The call a competent agent makes for ``step`` now (scripted oracles and docs use it)."""
    if step.kind == "search" and step.constant is not None:
        return "search_code", {"pattern": f"^{step.constant} = "}
    if step.kind == "read":
        return "read_file", {"path": step.path}
    if step.kind in ("edit", "probe") and step.constant is not None and step.new_line is not None:
        current = repo.line_of(repo.constant(step.constant)) or ""
        return "edit_file", {"path": step.path, "edits": [{"search": current, "replace": step.new_line}]}
    if step.kind == "test":
        module = step.test_id.split("test_", 1)[1].split(".py", 1)[0] if step.test_id else ""
        return "run_tests", {"filter": module}
    return "write_file", {"path": step.path, "content": step.content or ""}


def judge_step(step: Step, name: str, outcome: Outcome, repo: SimRepo) -> bool:
    """Whether a call (already executed on ``repo``) achieved the step: the on-task verdict."""
    if name != step.tool or not outcome.ok:
        return False
    if step.kind == "search":
        return step.path in outcome.hits
    if step.kind == "read":
        return outcome.text.startswith(f"{step.path}:\n")
    if step.kind in ("edit", "probe") and step.constant is not None:
        return repo.line_of(repo.constant(step.constant)) == step.new_line and step.path in outcome.changed
    if step.kind == "test":
        return outcome.tests is not None and (step.test_id is None or step.test_id in outcome.tests.results)
    return repo.files.get(step.path, "").strip() == (step.content or "").strip()


def fact_for(step: Step, turn: int) -> Fact | None:
    """What an achieved step established and later turns must not lose."""
    if step.kind in ("edit", "probe") and step.constant is not None and step.new_line is not None:
        return Fact(step.path, step.new_line, turn, step.constant)
    if step.kind == "write" and step.content:
        return Fact(step.path, step.content.strip(), turn, step.path)
    return None


# ---------------------------------------------------------------------------------- conversation


@dataclass(slots=True)
class Conversation:
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


# ------------------------------------------------------------------------------------- profiles


@dataclass(frozen=True, slots=True)
class EnduranceProfile:
    """Trajectory sizes: ``full`` is the seed panel's 80 calls from 10K to 50K tokens, ``smoke`` fits
    SmolLM2's 8K context and a couple of minutes on 2 CPU cores."""

    name: str
    turns: int
    """Calls in the straight run; the context plan spans these turns in every scenario."""
    start_tokens: int
    end_tokens: int
    max_tokens: int
    probe_turns: tuple[int, ...]
    short_turns: int
    """Calls in the interrupt and malformed scenarios (they stop early on the same plan)."""
    interrupt_turn: int
    malformed_turn: int
    max_retries: int = 2
    cancel_after_chunks: int = 1

    def with_turns(self, turns: int) -> EnduranceProfile:
        """The profile stretched or shortened to ``turns`` calls (events kept inside the run)."""
        short = min(self.short_turns, turns)
        return replace(
            self,
            turns=turns,
            short_turns=short,
            interrupt_turn=min(self.interrupt_turn, short),
            malformed_turn=min(self.malformed_turn, short),
        )


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """How many turns a scenario runs and which fault it injects where."""

    name: str
    turns: int
    interrupt_at: int | None = None
    malformed_at: int | None = None


# -------------------------------------------------------------------------------------- tooling

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


def _score_error(call_score: CallScore) -> str | None:
    if not call_score.emitted:
        return "no tool call"
    if call_score.parse_error is not None:
        return call_score.parse_error
    return "; ".join(call_score.schema_errors) or None


# --------------------------------------------------------------------------------------- runner

Chat = Callable[[Mapping[str, Any]], RequestRecord]
Cancel = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(slots=True)
class _TurnState:
    """What one turn measured, folded into its report dict by :meth:`TrajectoryRunner._turn_dict`."""

    turn: int
    step: Step
    retry: bool
    target_tokens: int
    record: RequestRecord
    transport_retries: int = 0
    check: CallScore | None = None
    call: ToolCall | None = None
    extra_calls: int = 0
    outcome: Outcome | None = None
    env_error: str | None = None
    on_task: bool = False
    events: list[str] = field(default_factory=list)
    interrupt: dict[str, Any] | None = None


class TrajectoryRunner:
    """Drives one scenario's trajectory: builds each request, sends it, executes the call, measures.

    ``chat`` sends one streamed request (``StreamingClient.chat``); ``cancel`` sends one and cuts it
    (only the interrupt scenario uses it). Both are injected so tests can drive any engine.
    """

    def __init__(
        self,
        spec: ScenarioSpec,
        profile: EnduranceProfile,
        *,
        chat: Chat,
        cancel: Cancel | None = None,
        model: str,
        request: Mapping[str, Any] | None = None,
        seed: int = DEFAULT_SEED,
        salt: str = "",
        chars_per_token: float | None = None,
        context_window: int | None = None,
    ) -> None:
        self.spec = spec
        self.profile = profile
        self.plan = ContextPlan(profile.start_tokens, profile.end_tokens, profile.turns)
        self.seed = seed
        self.salt = salt or secrets.token_hex(4)
        self.repo = SimRepo(seed)
        self.planner = Planner(self.repo, seed, profile.probe_turns)
        self.conversation = Conversation()
        self.calibrator = Calibrator(chars_per_token or DEFAULT_CHARS_PER_TOKEN)
        self.context_window = context_window
        self.step: Step = self.planner.next_step(1)
        self.turns: list[dict[str, Any]] = []
        self.interruption: dict[str, Any] | None = None
        self.stop_reason: str | None = None
        self._chat = chat
        self._cancel = cancel
        self._model = model
        self._request = dict(request or {})
        self._tools = endurance_tools()
        self._retries = 0
        self._lost_seen: set[tuple[str, str, int]] = set()
        self._pending_chars = 0
        self._last_prompt: int | None = None
        self._last_completion: int | None = None

    # ---- public

    def reference_call(self) -> tuple[str, dict[str, Any]]:
        """The correct call for the step being asked now (for scripted oracles)."""
        return reference_call(self.step, self.repo)

    def run(self) -> dict[str, Any]:
        self._open()
        for turn in range(1, self.spec.turns + 1):
            if not self._turn(turn):
                break
        return self.result()

    def result(self) -> dict[str, Any]:
        """What the run measured: its settings, every turn, the interruption (figures: ``endurance.summarize``)."""
        return {
            "scenario": self.spec.name,
            "profile": self.profile.name,
            "seed": self.seed,
            "salt": self.salt,
            "turns_planned": self.spec.turns,
            "context_plan": self.plan.to_dict(),
            "context_window": self.context_window,
            "chars_per_token_initial": round(self.calibrator.initial, 3),
            "chars_per_token_final": round(self.calibrator.chars_per_token, 3),
            "max_tokens": self.profile.max_tokens,
            "probe_turns": [t for t in self.profile.probe_turns if t <= self.spec.turns],
            "interrupt_turn": self.spec.interrupt_at,
            "malformed_turn": self.spec.malformed_at,
            "stop_reason": self.stop_reason,
            "turns": self.turns,
            "interruption": self.interruption,
        }

    # ---- conversation set-up

    def _open(self) -> None:
        """System prompt sized so that the first prompt lands on the plan's first target."""
        examples = self._few_shot_chars()
        first = len(self.step.message)
        tools = len(json.dumps(self._tools))
        fixed = len(system_prompt(self.repo, self.salt, 0)) + examples + first + tools
        overhead = MESSAGE_OVERHEAD_TOKENS * 8
        wanted = self.calibrator.chars_for(self.plan.target(1) - overhead) - fixed
        self.conversation.add_system(system_prompt(self.repo, self.salt, max(0, wanted)))
        self._add_few_shot()
        self.conversation.add_user(self.step.message)

    def _few_shot_chars(self) -> int:
        probe = SimRepo(self.seed)
        return sum(len(u) + len(json.dumps(a)) + len(probe.execute(n, a).text) for u, n, a in few_shot())

    def _add_few_shot(self) -> None:
        for i, (user, name, args) in enumerate(few_shot(), 1):
            self.conversation.add_user(user)
            call_id = f"example_{i}"
            self.conversation.add_calls([(call_id, name, json.dumps(args))])
            self.conversation.add_tool_result(call_id, self.repo.execute(name, args).text)

    # ---- one turn

    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [dict(m) for m in self.conversation.messages],
            "tools": self._tools,
            "max_tokens": self.profile.max_tokens,
            "temperature": 0.0,
        }
        body.update(self._request)
        return body

    def _turn(self, turn: int) -> bool:
        """Run one turn; False when the trajectory cannot go on (a failed request)."""
        body = self._body()
        interrupt = None
        if turn == self.spec.interrupt_at and self._cancel is not None:
            interrupt = self._cancel(body)
        record, retries = self._send(body)
        state = _TurnState(turn, self.step, self._retries > 0, self.plan.target(turn), record, retries)
        state.interrupt = interrupt
        if interrupt is not None:
            state.events.append("resumed_after_cancel")
        if not record.ok:
            self.stop_reason = f"turn {turn}: {record.error_kind}: {record.error}"
            self._finish_turn(state)
            return False
        self._learn(record)
        self._act(state)
        self._finish_turn(state)
        return True

    def _send(self, body: Mapping[str, Any]) -> tuple[RequestRecord, int]:
        """One request; resent once when a pooled connection was closed before any response.

        llama-server b11434 closes some keep-alive connections without a ``Connection: close``
        header, so the next request on them dies before the server reads it (measured: every other
        request in a loop). The server never saw it, so sending it again is safe and is counted.
        """
        record = self._chat(body)
        if record.status is None and record.error_kind == "disconnect" and record.ttft_ms is None:
            return self._chat(body), 1
        return record, 0

    def _act(self, state: _TurnState) -> None:
        """Score the first call, show the environment's answer, and pick the next step."""
        record = state.record
        calls = record.tool_calls
        state.call = calls[0] if calls else None
        state.extra_calls = max(0, len(calls) - 1)
        state.check = score(state.call, record.finish_reason, state.step.tool)
        injected = state.turn == self.spec.malformed_at and state.check.json_valid and state.call is not None
        if injected:
            state.events.append("injected_malformed")
        response, as_tool = self._respond(state, injected)
        self._advance(state.turn, injected or broken(state.check))
        upcoming = "" if self._retries else self.step.message
        padding = self._padding(state.turn, len(response) + len(upcoming))
        text = f"{response}\n\n[environment log]\n{padding}" if padding else response
        if as_tool is not None:
            self.conversation.add_tool_result(as_tool, text)
        else:
            self.conversation.add_user(text)
        self._pending_chars = len(text)
        if upcoming:
            self.conversation.add_user(upcoming)
            self._pending_chars += len(upcoming)

    def _respond(self, state: _TurnState, injected: bool) -> tuple[str, str | None]:
        """Put the model's reply in the history and compute the environment's answer to it.

        Returns the answer text and the call id it answers (None: it goes in a user message).
        """
        call, check = state.call, state.check
        assert check is not None
        if call is None:
            self.conversation.add_text(state.record.content)
            state.env_error = "no tool call"
            return "error: no tool call found in your reply. Answer with exactly one tool call.", None
        if injected or not check.json_valid:
            raw = truncate_arguments(call.arguments) if injected else call.arguments
            self.conversation.add_text(broken_call_text(call.name, raw))
            reason = _json_error(raw) if injected else check.parse_error
            state.env_error = f"arguments not valid JSON: {reason}"
            return (
                f"error: the arguments of your {call.name} call are not valid JSON ({reason}). "
                "The call did nothing; send it again with valid JSON arguments."
            ), None
        call_id = call.id or f"call_{state.turn}"
        self._add_calls(state, call_id)
        if not check.schema_conform:
            state.env_error = _score_error(check)
            return f"{check.problem()}. The call did nothing; correct it.", call_id
        self._execute(state, call_id)
        assert state.outcome is not None
        return state.outcome.text, call_id

    def _add_calls(self, state: _TurnState, call_id: str) -> None:
        """The structured calls go in the history; extra ones are answered as ignored."""
        record = state.record
        assert state.call is not None
        calls = [(call_id, state.call.name or "", state.call.arguments)]
        extras = []
        for i, extra in enumerate(record.tool_calls[1:], 1):
            if _json_object(extra.arguments):
                extras.append((extra.id or f"call_{state.turn}_{i}", extra.name or "", extra.arguments))
        self.conversation.add_calls(calls + extras, record.content)
        for extra_id, _, _ in extras:
            self.conversation.add_tool_result(extra_id, "error: one call per step; this call was ignored.")

    def _execute(self, state: _TurnState, call_id: str) -> None:
        assert state.call is not None and state.check is not None
        name = state.call.name or ""
        args, _ = parse_arguments(state.call.arguments)
        state.outcome = self.repo.execute(name, args)
        state.on_task = state.check.clean and judge_step(state.step, name, state.outcome, self.repo)
        fact = fact_for(state.step, state.turn) if state.on_task else None
        if fact is not None:
            self.repo.add_fact(fact)

    def _advance(self, turn: int, broken: bool) -> None:
        """A broken call is retried (same step, no new instruction) unless retries ran out or a probe is due."""
        if broken and self._retries < self.profile.max_retries and (turn + 1) not in self.profile.probe_turns:
            self._retries += 1
            return
        self._retries = 0
        self.step = self.planner.next_step(turn + 1)

    # ---- context growth

    def _learn(self, record: RequestRecord) -> None:
        """Calibrate characters per token from the growth of the engine's prompt count."""
        prompt = record.prompt_tokens
        if prompt is not None and self._last_prompt is not None and self._last_completion is not None:
            added = prompt - self._last_prompt - self._last_completion - 2 * MESSAGE_OVERHEAD_TOKENS
            self.calibrator.learn(self._pending_chars, added)
        self._last_prompt = prompt
        self._last_completion = record.completion_tokens

    def _padding(self, turn: int, appended_chars: int) -> str:
        """Log text that brings the next prompt to the plan's next target (none past the plan's end)."""
        if self._last_prompt is None or turn >= self.profile.turns:
            return ""
        grown = self._last_prompt + (self._last_completion or 0) + 3 * MESSAGE_OVERHEAD_TOKENS
        grown += round(self.calibrator.tokens_of(appended_chars))
        missing = self.plan.target(turn + 1) - grown
        return padding_text(self.seed, turn, self.calibrator.chars_for(missing), sorted(self.repo.files))

    # ---- records

    def _finish_turn(self, state: _TurnState) -> None:
        turn = self._turn_dict(state)
        if state.interrupt is not None:
            self.interruption = self._interruption(state)
        self.turns.append(turn)

    def _turn_dict(self, state: _TurnState) -> dict[str, Any]:
        record = state.record
        check = state.check
        lost = self.repo.lost_facts()
        new_lost = [f for f in lost if (f.path, f.text, f.turn) not in self._lost_seen]
        self._lost_seen.update((f.path, f.text, f.turn) for f in lost)
        return {
            "turn": state.turn,
            "step": state.step.to_dict(),
            "retry": state.retry,
            "events": state.events,
            "request": _request_dict(record, state.transport_retries),
            "context_target_tokens": state.target_tokens,
            "context_tokens": record.prompt_tokens,
            "cached_ratio": _ratio(record.cached_tokens, record.prompt_tokens),
            "prefix_reuse": self._prefix_reuse(record),
            "call": _call_dict(state.call, state.extra_calls),
            "score": check.to_dict() if check is not None else None,
            "on_task": state.on_task,
            "ok": bool(record.ok and check is not None and check.clean and state.on_task),
            "env": _env_dict(state),
            "repo": {
                "digest": self.repo.digest(),
                "facts": len(self.repo.facts),
                "facts_held": len(self.repo.facts) - len(lost),
                "lost": [f.to_dict() for f in lost],
                "newly_lost": [f.to_dict() for f in new_lost],
            },
            "probe": _probe_dict(state) if state.step.kind == "probe" and not state.retry else None,
        }

    def _prefix_reuse(self, record: RequestRecord) -> float | None:
        """Cached tokens over the previous turn's prompt: how much of the old context was reused."""
        previous = self.turns[-1]["context_tokens"] if self.turns else None
        return _ratio(record.cached_tokens, previous)

    def _interruption(self, state: _TurnState) -> dict[str, Any]:
        record = state.record
        before = self.turns[-1]["cached_ratio"] if self.turns else None
        return {
            "turn": state.turn,
            "cancel": state.interrupt,
            "engine_recovered": record.ok,
            "resume_error": None if record.ok else f"{record.error_kind}: {record.error}",
            "resume_ttft_ms": record.ttft_ms,
            "resume_prompt_tokens": record.prompt_tokens,
            "resume_cached_tokens": record.cached_tokens,
            "resume_cached_ratio": _ratio(record.cached_tokens, record.prompt_tokens),
            "cached_ratio_before": before,
        }


def _json_error(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as exc:
        return f"JSONDecodeError: {exc}"
    return "not a JSON object"


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _ratio(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return round(part / whole, 4)


def _request_dict(record: RequestRecord, transport_retries: int) -> dict[str, Any]:
    return {
        "ok": record.ok,
        "error_kind": record.error_kind,
        "error": record.error,
        "status": record.status,
        "ttft_ms": record.ttft_ms,
        "latency_ms": record.total_ms,
        "prompt_tokens": record.prompt_tokens,
        "cached_tokens": record.cached_tokens,
        "cached_source": record.cached_source,
        "completion_tokens": record.completion_tokens,
        "finish_reason": record.finish_reason,
        "engine_prompt_ms": _timing(record, "prompt_ms"),
        "transport_retries": transport_retries,
    }


def _timing(record: RequestRecord, key: str) -> float | None:
    value = (record.timings or {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _call_dict(call: ToolCall | None, extra: int) -> dict[str, Any] | None:
    if call is None:
        return None
    return {
        "name": call.name,
        "arguments": call.arguments[:_MAX_STORED_ARGS],
        "arguments_chars": len(call.arguments),
        "extra_calls": extra,
    }


def _env_dict(state: _TurnState) -> dict[str, Any] | None:
    if state.outcome is None and state.env_error is None:
        return None
    if state.outcome is None:
        return {"executed": False, "ok": False, "message": state.env_error, "stale": False}
    first = state.outcome.text.splitlines()[0] if state.outcome.text else ""
    return {"executed": True, "ok": state.outcome.ok, "message": first, "stale": state.outcome.stale}


def _probe_dict(state: _TurnState) -> dict[str, Any]:
    step = state.step
    return {
        "constant": step.constant,
        "path": step.path,
        "edited_at": step.edited_at,
        "expected_search": step.old_line,
        "passed": state.on_task,
        "stale": bool(state.outcome is not None and state.outcome.stale),
    }

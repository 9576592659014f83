"""The endurance trajectory runner: plays one scenario against an engine turn by turn.

Each turn sends the whole conversation (pytest_asiai/endurance/history.py) and gets one call back,
scores it, executes it on the simulated repository (pytest_asiai/endurance/simrepo.py) and keeps
one dict per turn (pytest_asiai/endurance/turns.py); the step each turn asks comes from
pytest_asiai/endurance/steps.py and the context grows on the token plan of
pytest_asiai/endurance/growth.py. A broken call (no call, arguments that are not JSON, or that break
the tool's schema) is answered with the error and the same step is retried without a new
instruction (at most ``max_retries`` times), which is where malformed-call recovery shows.
:mod:`pytest_asiai.endurance.suite` turns the turns into figures and gates.

The only inputs that are not the seed are the model's own calls, which the environment executes for
real: a wrong edit changes what later steps see, exactly as in an agent loop. Requests are built from
the case's layered fields (pytest_asiai/wire/requests.py) and sent through the one client, whose
resend-once on a dropped kept-alive connection the turn reports as ``transport_retries``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from pytest_asiai.endurance.growth import (
    DEFAULT_CHARS_PER_TOKEN,
    MESSAGE_OVERHEAD_TOKENS,
    Calibrator,
    ContextPlan,
    padding_text,
    system_prompt,
)
from pytest_asiai.endurance.history import (
    TrajectoryHistory,
    broken,
    broken_call_text,
    endurance_tools,
    few_shot,
    score,
    score_error,
    truncate_arguments,
)
from pytest_asiai.endurance.profiles import EnduranceProfile, ScenarioSpec
from pytest_asiai.endurance.simrepo import SimRepo
from pytest_asiai.endurance.steps import DEFAULT_SEED, Planner, Step, fact_for, judge_step, reference_call
from pytest_asiai.endurance.turns import (
    TurnState,
    call_dict,
    env_dict,
    json_error,
    json_object,
    probe_dict,
    ratio,
    request_dict,
)
from pytest_asiai.toolcall.scoring import parse_arguments
from pytest_asiai.wire.records import RequestRecord
from pytest_asiai.wire.requests import DEFAULTS, assemble, merge_fields

__all__ = ["Cancel", "Chat", "TrajectoryRunner", "broken", "score"]

Chat = Callable[[Mapping[str, Any]], RequestRecord]
Cancel = Callable[[Mapping[str, Any]], dict[str, Any]]


class TrajectoryRunner:
    """Drives one scenario's trajectory: builds each request, sends it, executes the call, measures.

    ``chat`` sends one streamed request (``StreamingClient.chat``); ``cancel`` sends one and cuts it
    (only the interrupt scenario uses it). Both are injected so tests can drive any engine.
    ``request`` are the case's fields, already layered (``RequestBuilder.fields``).
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
        self.conversation = TrajectoryHistory()
        self.calibrator = Calibrator(chars_per_token or DEFAULT_CHARS_PER_TOKEN)
        self.context_window = context_window
        self.step: Step = self.planner.next_step(1)
        self.turns: list[dict[str, Any]] = []
        self.interruption: dict[str, Any] | None = None
        self.stop_reason: str | None = None
        self._chat = chat
        self._cancel = cancel
        self._model = model
        self._fields = merge_fields(DEFAULTS, request or {})
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
        """The turn's request: the case's layered fields, then the conversation and tools on top."""
        messages = self.conversation.messages
        return assemble(
            self._fields, model=self._model, messages=messages, max_tokens=self.profile.max_tokens, tools=self._tools
        )

    def _turn(self, turn: int) -> bool:
        """Run one turn; False when the trajectory cannot go on (a failed request)."""
        body = self._body()
        interrupt = None
        if turn == self.spec.interrupt_at and self._cancel is not None:
            interrupt = self._cancel(body)
        record = self._chat(body)
        state = TurnState(turn, self.step, self._retries > 0, self.plan.target(turn), record)
        state.interrupt = interrupt
        if interrupt is not None:
            state.events.append("resumed_after_cancel")
        if not record.answered:  # an empty answer is scored as no call and the agent goes on
            self.stop_reason = f"turn {turn}: {record.error_kind}: {record.error}"
            self._finish_turn(state)
            return False
        self._learn(record)
        self._act(state)
        self._finish_turn(state)
        return True

    def _act(self, state: TurnState) -> None:
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

    def _respond(self, state: TurnState, injected: bool) -> tuple[str, str | None]:
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
            reason = json_error(raw) if injected else check.parse_error
            state.env_error = f"arguments not valid JSON: {reason}"
            return (
                f"error: the arguments of your {call.name} call are not valid JSON ({reason}). "
                "The call did nothing; send it again with valid JSON arguments."
            ), None
        call_id = call.id or f"call_{state.turn}"
        self._add_calls(state, call_id)
        if not check.schema_conform:
            state.env_error = score_error(check)
            return f"{check.problem()}. The call did nothing; correct it.", call_id
        self._execute(state, call_id)
        assert state.outcome is not None
        return state.outcome.text, call_id

    def _add_calls(self, state: TurnState, call_id: str) -> None:
        """The structured calls go in the history; extra ones are answered as ignored."""
        record = state.record
        assert state.call is not None
        calls = [(call_id, state.call.name or "", state.call.arguments)]
        extras = []
        for i, extra in enumerate(record.tool_calls[1:], 1):
            if json_object(extra.arguments):
                extras.append((extra.id or f"call_{state.turn}_{i}", extra.name or "", extra.arguments))
        self.conversation.add_calls(calls + extras, record.content)
        for extra_id, _, _ in extras:
            self.conversation.add_tool_result(extra_id, "error: one call per step; this call was ignored.")

    def _execute(self, state: TurnState, call_id: str) -> None:
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

    def _finish_turn(self, state: TurnState) -> None:
        turn = self._turn_dict(state)
        if state.interrupt is not None:
            self.interruption = self._interruption(state)
        self.turns.append(turn)

    def _turn_dict(self, state: TurnState) -> dict[str, Any]:
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
            "request": request_dict(record),
            "context_target_tokens": state.target_tokens,
            "context_tokens": record.prompt_tokens,
            "cached_ratio": ratio(record.cached_tokens, record.prompt_tokens),
            "prefix_reuse": self._prefix_reuse(record),
            "call": call_dict(state.call, state.extra_calls),
            "score": check.to_dict() if check is not None else None,
            "on_task": state.on_task,
            "ok": bool(record.ok and check is not None and check.clean and state.on_task),
            "env": env_dict(state),
            "repo": {
                "digest": self.repo.digest(),
                "facts": len(self.repo.facts),
                "facts_held": len(self.repo.facts) - len(lost),
                "lost": [f.to_dict() for f in lost],
                "newly_lost": [f.to_dict() for f in new_lost],
            },
            "probe": probe_dict(state) if state.step.kind == "probe" and not state.retry else None,
        }

    def _prefix_reuse(self, record: RequestRecord) -> float | None:
        """Cached tokens over the previous turn's prompt: how much of the old context was reused."""
        previous = self.turns[-1]["context_tokens"] if self.turns else None
        return ratio(record.cached_tokens, previous)

    def _interruption(self, state: TurnState) -> dict[str, Any]:
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
            "resume_cached_ratio": ratio(record.cached_tokens, record.prompt_tokens),
            "cached_ratio_before": before,
        }

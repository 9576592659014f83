"""Recovery from a failing tool result: a failing test run, then "Fix it.", then up to N turns.

:func:`run_recovery` plays a :class:`~pytest_asiai.toolcall.tools.RecoveryScenario` over a
:class:`~pytest_asiai.toolcall.core.Conversation`; :class:`RecoveryResult` says whether the model
fixed it, how fast, and whether it repeated the failing call or went in circles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_asiai.measure.validity import degenerate_reason
from pytest_asiai.toolcall.core import Conversation, run_turns
from pytest_asiai.toolcall.scoring import TurnResult, score_call, score_turn
from pytest_asiai.toolcall.summary import request_errors
from pytest_asiai.toolcall.tools import RecoveryScenario
from pytest_asiai.wire.records import RequestRecord, ToolCall

__all__ = ["RecoveryResult", "run_recovery"]


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
            "errors": request_errors(turns),
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

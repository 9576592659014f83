"""Thinking ablation: the tool-call stress load under three thinking settings, and two thinking probes.

The seed panel's finding is a trade-off: thinking off gives the cleanest atomic tool calls, thinking
on with preserved reasoning costs some of them, and thinking on *without* preserving it broke the
engine (a deterministic HTTP 500 from turn 2, once reasoning had accumulated in the history). So the
history carries each reply's ``reasoning_content`` in both thinking-on cells, and only the template's
``chat_template_kwargs.preserve_thinking`` differs between them: that is what makes the flag matter.

Per cell we keep the per-turn scores, which turns failed (and how), the context growth and the
reasoning volume. The probes check that thinking-off is honoured (no reasoning at all, inline or in
the reasoning channel) and that no ``<think>`` tag leaks into the answer when thinking is on.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.measure.validity import has_think_tag
from pytest_asiai.toolcall.core import ChatClient, Conversation, run_scenario
from pytest_asiai.toolcall.scoring import TurnResult
from pytest_asiai.toolcall.summary import summarize
from pytest_asiai.toolcall.tools import STRESS, Scenario
from pytest_asiai.wire.records import RequestRecord
from pytest_asiai.wire.requests import RequestBuilder


@dataclass(frozen=True, slots=True)
class ThinkingCell:
    """One setting of the ablation."""

    name: str
    enable_thinking: bool
    preserve_thinking: bool | None
    """Sent as ``chat_template_kwargs.preserve_thinking`` (None: not sent)."""
    reasoning_in_history: bool
    """Assistant messages in the history carry their ``reasoning_content``."""

    def fields(self, handle: EngineHandle) -> dict[str, Any]:
        """The case's request fields with this cell's thinking switches on top (the suite's own layer of
        pytest_asiai/wire/requests.py)."""
        preserve = None
        if self.preserve_thinking is not None:
            preserve = {"chat_template_kwargs": {"preserve_thinking": self.preserve_thinking}}
        return RequestBuilder.for_handle(handle).fields(thinking=self.enable_thinking, suite=preserve)


CELLS: tuple[ThinkingCell, ...] = (
    ThinkingCell("enable-off", enable_thinking=False, preserve_thinking=None, reasoning_in_history=False),
    ThinkingCell("enable-on-preserve-on", enable_thinking=True, preserve_thinking=True, reasoning_in_history=True),
    ThinkingCell("enable-on-preserve-off", enable_thinking=True, preserve_thinking=False, reasoning_in_history=True),
)
CELL_NAMES: tuple[str, ...] = tuple(c.name for c in CELLS)
LOAD: Scenario = STRESS


def cell(name: str) -> ThinkingCell:
    for c in CELLS:
        if c.name == name:
            return c
    raise KeyError(f"unknown thinking cell {name!r}; cells are {', '.join(CELL_NAMES)}")


def run_cell(
    client: ChatClient,
    handle: EngineHandle,
    setting: ThinkingCell,
    *,
    max_tokens: int,
    turns: int | None = None,
    load: Scenario = LOAD,
) -> list[TurnResult]:
    """Play the load once under one thinking setting, in a fresh conversation."""
    conversation = Conversation(
        client,
        model=handle.case.model_id,
        system=load.system,
        history=load.history,
        fields=setting.fields(handle),
        keep_reasoning=setting.reasoning_in_history,
    )
    return run_scenario(conversation, load, max_tokens=max_tokens, turns=turns)


def _mean(values: Sequence[float | int | None]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return round(statistics.fmean(xs), 1) if xs else None


def cell_summary(setting: ThinkingCell, turns: Sequence[TurnResult], load: Scenario = LOAD) -> dict[str, Any]:
    """The cell's tool-call summary plus failures by turn, context growth and reasoning volume."""
    ok = [t.record for t in turns if t.record.ok]
    base = summarize(turns)
    first, last = base["ctx_tokens_first_turn"], base["ctx_tokens_last_turn"]
    return {
        "cell": setting.name,
        "load": load.name,
        "enable_thinking": setting.enable_thinking,
        "preserve_thinking": setting.preserve_thinking,
        "reasoning_in_history": setting.reasoning_in_history,
        **base,
        "failed_turns": [t.index for t in turns if not t.record.answered],
        "empty_turns": [t.index for t in turns if t.record.error_kind == "empty"],
        "http_error_turns": [t.index for t in turns if t.record.error_kind == "http"],
        "ctx_growth": last - first if first is not None and last is not None else None,
        "total_ms_mean": _mean([r.total_ms for r in ok]),
        "completion_tokens_mean": _mean([r.completion_tokens for r in ok]),
        "reasoning_chars_mean": _mean([r.reasoning_chars for r in ok]) if ok else None,
        "reasoning_chars_total": sum(r.reasoning_chars for r in ok) if ok else None,
    }


# ------------------------------------------------------------------------------------------ probes

PROBE_PROMPT = "In two sentences, explain what a race condition is."
PROBE_NAMES = ("no_think_leak", "thinking_off_honoured")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe request and its verdict; ``passed`` is None when the request failed."""

    name: str
    enable_thinking: bool
    record: RequestRecord
    passed: bool | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "probe": self.name,
            "enable_thinking": self.enable_thinking,
            "passed": self.passed,
            "reason": self.reason,
            "ok": r.ok,
            "error": r.error,
            "finish_reason": r.finish_reason,
            "reasoning_chars": r.reasoning_chars,
            "content_chars": r.content_chars,
            "think_tag_in_content": has_think_tag(r.content),
            "content_head": r.content[:200],
        }


def _probe_request(client: ChatClient, handle: EngineHandle, thinking: bool, max_tokens: int) -> RequestRecord:
    messages = [{"role": "user", "content": PROBE_PROMPT}]
    return client.chat(RequestBuilder.for_handle(handle).body(messages, max_tokens=max_tokens, thinking=thinking))


def probe(client: ChatClient, handle: EngineHandle, name: str, *, max_tokens: int) -> ProbeResult:
    """Run one probe: ``no_think_leak`` (thinking on) or ``thinking_off_honoured`` (thinking off)."""
    if name not in PROBE_NAMES:
        raise KeyError(f"unknown probe {name!r}; probes are {', '.join(PROBE_NAMES)}")
    thinking = name == "no_think_leak"
    record = _probe_request(client, handle, thinking, max_tokens)
    if not record.ok:
        return ProbeResult(name, thinking, record, None, f"request failed: {record.error_kind}: {record.error}")
    leaked = has_think_tag(record.content)
    if thinking:
        reason = "a <think> tag leaked into the content" if leaked else "no <think> tag in the content"
        return ProbeResult(name, thinking, record, not leaked, reason)
    if record.reasoning_chars:
        reason = f"thinking off was ignored: {record.reasoning_chars} reasoning characters streamed"
    elif leaked:
        reason = "thinking off was ignored: inline <think> content in the answer"
    else:
        reason = "no reasoning with thinking off"
    return ProbeResult(name, thinking, record, not record.reasoning_chars and not leaked, reason)

"""Instruction following: a research brief whose multi-section deliverable is checked section by section.

The seed panel found the thinking trade-off pulls the other way here: with thinking off a strong
model did the tool work but never delivered the requested multi-section brief (it stopped at the
secondary step); with thinking on it delivered all five sections. So the task puts the deliverable
first and a secondary tool action last, and the verifier only credits a section that is present
under its exact name and says something (at least ``MIN_SECTION_WORDS`` words, not degenerate).

The deliverable is everything the assistant wrote as content during the task, since a user reads
every message; text inside tool-call arguments (a brief only written to a file) does not count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_asiai.measure.validity import degenerate_reason
from pytest_asiai.toolcall.core import ChatClient, Conversation
from pytest_asiai.toolcall.scoring import score_call
from pytest_asiai.toolcall.summary import pct
from pytest_asiai.toolcall.tools import tool_definitions
from pytest_asiai.wire.records import RequestRecord

MIN_SECTION_WORDS = 8
"""Below this many words a section is a heading, not a delivered section (2–3 sentences are asked)."""

_ANY_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class BriefTask:
    """A research task: tool rounds first, then a deliverable with named sections."""

    name: str
    system: str
    prompt: str
    sections: tuple[str, ...]
    search_results: tuple[str, ...]
    """``search_code`` answers, one per search in order; later searches find nothing more."""
    secondary_tool: str
    tools: tuple[str, ...]


SECTIONS = ("Summary", "Findings", "Risks", "Recommendation", "Next steps")

RESEARCH_BRIEF = BriefTask(
    name="research-brief",
    system=(
        "You are a research assistant for a software team. You investigate with the provided tools, then "
        "write structured deliverables. The written deliverable is your primary output: give it in full in "
        "your answer. Tool calls are means, not the deliverable."
    ),
    prompt=(
        "Two steps.\n\n"
        "STEP 1 (primary deliverable): research how the `app` package loads its configuration, with at least "
        "two search_code calls, then write a markdown brief with exactly these section headers, two or three "
        "sentences under each:\n" + "\n".join(f"## {s}" for s in SECTIONS) + "\n\n"
        "STEP 2 (after the brief): save the single most important risk to `NOTES.md` with write_file.\n\n"
        f"Your final answer must contain the full {len(SECTIONS)}-section brief."
    ),
    sections=SECTIONS,
    search_results=(
        "src/app/settings.py:14: def load_settings(path: str) -> dict:  # json.load, no schema validation",
        "src/app/settings.py:31: timeout = float(os.environ.get('APP_TIMEOUT', cfg['timeout']))  # unguarded",
        "src/app/api.py:12: LIMITS = load_settings(CONFIG_PATH)['limits']  # read once at import time",
    ),
    secondary_tool="write_file",
    tools=("search_code", "write_file"),
)


# ---------------------------------------------------------------------------------------- verifier


@dataclass(frozen=True, slots=True)
class SectionCheck:
    """One required section: found under its name, how many words it holds, whether it degenerates."""

    name: str
    present: bool
    words: int
    degenerate: str | None

    @property
    def delivered(self) -> bool:
        return self.present and self.words >= MIN_SECTION_WORDS and self.degenerate is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "present": self.present,
            "words": self.words,
            "degenerate": self.degenerate,
            "delivered": self.delivered,
        }


def _heading(name: str) -> re.Pattern[str]:
    """A line that names the section: ``## Risks``, ``**Risks**``, ``2. Risks:``, ``Risks: text``…"""
    return re.compile(
        r"^[ \t]{0,3}(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*(?:\d+[.)][ \t]*)?"
        + re.escape(name)
        + r"[ \t]*(?:\*\*|__)?[ \t]*(?::(?:\*\*|__)?|$)(?P<inline>[^\n]*)$",
        re.IGNORECASE | re.MULTILINE,
    )


def _bodies(text: str, name: str, names: Sequence[str]) -> list[str]:
    """The text under each heading of ``name``, up to the next section or markdown heading."""
    starts = sorted(m.start() for other in names if other != name for m in _heading(other).finditer(text)) + [
        m.start() for m in _ANY_HEADING.finditer(text)
    ]
    bodies = []
    for m in _heading(name).finditer(text):
        end = min((s for s in starts if s > m.start()), default=len(text))
        bodies.append(m.group("inline") + text[m.end() : end])
    return bodies


def check_section(text: str, name: str, names: Sequence[str]) -> SectionCheck:
    """The best occurrence of section ``name`` in ``text`` (a section may be written twice)."""
    checks = [
        SectionCheck(name, True, len(body.split()), degenerate_reason(body) if body.strip() else "empty")
        for body in _bodies(text, name, names)
    ]
    if not checks:
        return SectionCheck(name, False, 0, None)
    return max(checks, key=lambda c: (c.delivered, c.words))


def check_sections(text: str, names: Sequence[str]) -> list[SectionCheck]:
    return [check_section(text, n, names) for n in names]


# ------------------------------------------------------------------------------------------ runner


@dataclass(frozen=True, slots=True)
class BriefResult:
    """Every request of one brief run and the verdict on its deliverable."""

    task: BriefTask
    thinking: bool | None
    records: tuple[RequestRecord, ...]

    @property
    def failed(self) -> list[RequestRecord]:
        return [r for r in self.records if not r.ok]

    @property
    def deliverable(self) -> str:
        return "\n\n".join(r.content for r in self.records if r.ok and r.content)

    @property
    def checks(self) -> list[SectionCheck]:
        return check_sections(self.deliverable, self.task.sections)

    @property
    def sections_delivered(self) -> int | None:
        """None when a request failed: an engine error is not an empty deliverable."""
        return None if self.failed else sum(c.delivered for c in self.checks)

    @property
    def pct_sections(self) -> float | None:
        delivered = self.sections_delivered
        return None if delivered is None else pct(delivered, len(self.task.sections))

    def to_dict(self) -> dict[str, Any]:
        ok = [r for r in self.records if r.ok]
        calls = [c.name for r in ok for c in r.tool_calls]
        return {
            "task": self.task.name,
            "enable_thinking": self.thinking,
            "sections_required": len(self.task.sections),
            "sections_delivered": self.sections_delivered,
            "pct_sections": self.pct_sections,
            "sections": {c.name: c.to_dict() for c in self.checks},
            "requests": len(self.records),
            "tool_calls": calls,
            "secondary_done": self.task.secondary_tool in calls,
            "finish_reasons": [r.finish_reason for r in self.records],
            "content_chars": sum(r.content_chars for r in ok),
            "reasoning_chars": sum(r.reasoning_chars for r in ok),
            "completion_tokens": [r.completion_tokens for r in self.records],
            "errors": [
                {"turn": i, "status": r.status, "kind": r.error_kind, "error": r.error}
                for i, r in enumerate(self.records)
                if not r.ok
            ],
            "deliverable_head": self.deliverable[:600],
        }


class _Researcher:
    """Answers the brief's tool calls: search results in order, the secondary action acknowledged."""

    def __init__(self, task: BriefTask) -> None:
        self.task = task
        self.searches = 0

    def result(self, record: RequestRecord, index: int) -> str:
        call = record.tool_calls[index]
        score = score_call(call, record.finish_reason, self.task.tools)
        problem = score.problem()
        if problem is not None:
            return problem
        if call.name == "search_code":
            self.searches += 1
            found = self.task.search_results
            return found[self.searches - 1] if self.searches <= len(found) else "no further matches"
        if call.name == "write_file":
            return "wrote NOTES.md"
        return f"{call.name}: done (no output)"


def open_brief(client: ChatClient, *, model: str, task: BriefTask, fields: dict[str, Any]) -> Conversation:
    """A conversation with the task's system prompt and tools (no few-shot history)."""
    return Conversation(client, model=model, system=task.system, tools=tool_definitions(task.tools), fields=fields)


def run_brief(
    conversation: Conversation, task: BriefTask, *, max_tokens: int, rounds: int, thinking: bool | None = None
) -> BriefResult:
    """Ask for the brief, answer every tool call, and stop at a reply without calls, a failed request,
    or after ``rounds`` requests."""
    researcher = _Researcher(task)
    records = [conversation.send(task.prompt, max_tokens=max_tokens)]
    while records[-1].ok and records[-1].tool_calls and len(records) < rounds:
        last = records[-1]
        conversation.answer([researcher.result(last, i) for i in range(len(last.tool_calls))])
        records.append(conversation.send(None, max_tokens=max_tokens))
    return BriefResult(task, thinking, tuple(records))

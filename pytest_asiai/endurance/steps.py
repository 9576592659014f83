"""The steps of an endurance trajectory: a deterministic task list over the simulated repository,
the instruction each turn asks, persistence probes, and whether a call achieved its step.

A step is one instruction. Persistence probes are inserted at fixed turns: they ask for a change to
a line an earlier step edited, without saying what the line now holds, so only a model that still
refers to the file's current content gets the search text right (pytest_asiai/endurance/simrepo.py
executes the calls for real).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_asiai.endurance.simrepo import Constant, Fact, Outcome, SimRepo

__all__ = ["DEFAULT_SEED", "Planner", "Step", "fact_for", "judge_step", "probe_step", "reference_call"]

#: Every third constant's fix is also recorded in a change note (a write_file step).
WRITE_EVERY = 3
#: The seed every engine's trajectory is generated from (same repository, same task list).
DEFAULT_SEED = 9


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

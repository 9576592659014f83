"""A small synthetic repository held in memory, and the tools an agent uses on it.

Why simulated: an endurance trajectory must be deterministic and cheap, yet the model's actual calls
must have consequences. A wrong edit stays in the files, later searches and reads show it, the
simulated test runner fails on it, and a later call that clobbers an earlier edit is caught by the
persistence facts. Nothing touches the real file system.

The repository is an ``inventory`` service: ``src/<module>.py`` files defining integer constants
(``MAX_RETRIES = 3``) and ``tests/test_<module>.py`` files asserting each constant's target value.
Every constant starts away from its target, so each one is a fix the trajectory can ask for.
"""

from __future__ import annotations

import fnmatch
import hashlib
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Constant", "Fact", "Outcome", "SimRepo", "TestRun", "build_repo"]

#: Module name → the constants it defines (four per module, all integers).
MODULES: dict[str, tuple[str, ...]] = {
    "config": ("MAX_RETRIES", "TIMEOUT_S", "BATCH_SIZE", "POOL_SIZE"),
    "store": ("PAGE_SIZE", "FLUSH_EVERY", "MAX_ROWS", "SHARD_COUNT"),
    "parser": ("MAX_DEPTH", "TAB_WIDTH", "MAX_TOKENS", "BUFFER_KB"),
    "report": ("ROW_LIMIT", "DECIMALS", "COLUMN_WIDTH", "HEADER_ROWS"),
    "cache": ("CAPACITY", "TTL_S", "EVICT_BATCH", "MIN_HITS"),
    "auth": ("TOKEN_TTL_S", "MAX_ATTEMPTS", "LOCKOUT_S", "SALT_BYTES"),
    "metrics": ("WINDOW_S", "BUCKETS", "FLUSH_MS", "MAX_SERIES"),
    "scheduler": ("WORKERS", "QUEUE_DEPTH", "TICK_MS", "MAX_JOBS"),
}

_VERBS = ("load", "build", "merge", "check", "render", "split", "count", "drain")
_MAX_SEARCH_RESULTS = 20
_MAX_SEARCH_CAP = 200


@dataclass(frozen=True, slots=True)
class Constant:
    """One integer constant: where it lives, its starting value and the value its test expects."""

    module: str
    name: str
    initial: int
    target: int

    @property
    def path(self) -> str:
        return f"src/{self.module}.py"

    @property
    def test_id(self) -> str:
        return f"tests/test_{self.module}.py::test_{self.name.lower()}"

    def line(self, value: int) -> str:
        return f"{self.name} = {value}"


@dataclass(frozen=True, slots=True)
class Fact:
    """Text that an applied edit or write put in a file and that must still be there later."""

    path: str
    text: str
    turn: int
    key: str
    """What the fact is about (a constant name or a path); a newer planned fact on the key replaces it."""

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "text": self.text, "turn": self.turn, "key": self.key}


@dataclass(slots=True)
class Outcome:
    """What one tool call did to the repository and what the agent is shown."""

    ok: bool
    text: str
    changed: tuple[str, ...] = ()
    stale: bool = False
    """An edit whose search text is not in the file now but was in an earlier version of it."""
    tests: TestRun | None = None
    hits: tuple[str, ...] = ()
    """Paths a search matched (in result order)."""


@dataclass(frozen=True, slots=True)
class TestRun:
    """The simulated test runner's verdicts, by test id."""

    results: Mapping[str, bool]

    @property
    def passed(self) -> int:
        return sum(self.results.values())

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed


def build_repo(seed: int) -> tuple[dict[str, str], list[Constant]]:
    """The repository's files and constants; the same seed always gives the same repository."""
    rng = random.Random(seed)
    constants = [_constant(rng, module, name) for module, names in MODULES.items() for name in names]
    files: dict[str, str] = {
        "README.md": "# inventory\n\nA small inventory service. Constants live in src/, tests in tests/.\n"
    }
    for module in MODULES:
        mine = [c for c in constants if c.module == module]
        files[f"src/{module}.py"] = _module_source(rng, module, mine)
        files[f"tests/test_{module}.py"] = _test_source(module, mine)
    return files, constants


def _constant(rng: random.Random, module: str, name: str) -> Constant:
    initial = rng.randint(2, 60)
    target = initial + rng.randint(1, 40)
    return Constant(module, name, initial, target)


def _module_source(rng: random.Random, module: str, constants: list[Constant]) -> str:
    lines = [f'"""The {module} module of the inventory service."""', ""]
    lines += [c.line(c.initial) for c in constants]
    for constant in constants[:2]:
        verb = rng.choice(_VERBS)
        lines += [
            "",
            "",
            f"def {verb}_{module}_{constant.name.lower()}(items):",
            f'    """{verb.capitalize()} the {module} items, at most {constant.name} of them."""',
            f"    return [item for item in items if item is not None][:{constant.name}]",
        ]
    return "\n".join(lines) + "\n"


def _test_source(module: str, constants: list[Constant]) -> str:
    lines = [f"from src import {module}", ""]
    for c in constants:
        lines += ["", f"def test_{c.name.lower()}():", f"    assert {module}.{c.name} == {c.target}"]
    return "\n".join(lines) + "\n"


def _normalize(path: object) -> str | None:
    """A repository-relative path, or None when the value is not a usable path."""
    if not isinstance(path, str) or not path.strip():
        return None
    text = path.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text.lstrip("/")


class SimRepo:
    """The repository's files, their history, the persistence facts and the tools that act on them."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.files, self.constants = build_repo(seed)
        self.history: dict[str, list[str]] = {}
        self.facts: list[Fact] = []
        self._tools: dict[str, Callable[[Mapping[str, Any]], Outcome]] = {
            "read_file": self._read_file,
            "write_file": self._write_file,
            "edit_file": self._edit_file,
            "search_code": self._search_code,
            "run_tests": self._run_tests,
        }

    # ---- queries

    def constant(self, name: str) -> Constant:
        return next(c for c in self.constants if c.name == name)

    def value_of(self, constant: Constant) -> int | None:
        """The constant's current value in its file, None when its definition line is gone."""
        match = re.search(rf"^{constant.name} = (-?\d+)", self.files.get(constant.path, ""), re.M)
        return int(match.group(1)) if match else None

    def line_of(self, constant: Constant) -> str | None:
        """The constant's whole current definition line."""
        match = re.search(rf"^{constant.name} = .*$", self.files.get(constant.path, ""), re.M)
        return match.group(0) if match else None

    def digest(self) -> str:
        """A short hash of every file's path and content: equal digests, equal repositories."""
        h = hashlib.sha256()
        for path in sorted(self.files):
            h.update(path.encode() + b"\0" + self.files[path].encode() + b"\0")
        return h.hexdigest()[:12]

    def lost_facts(self) -> list[Fact]:
        """Facts whose text is no longer in their file."""
        return [f for f in self.facts if f.text not in self.files.get(f.path, "")]

    def add_fact(self, fact: Fact) -> None:
        """Keep a fact; it replaces an earlier fact about the same key (a planned change of it)."""
        self.facts = [f for f in self.facts if f.key != fact.key]
        self.facts.append(fact)

    def test_run(self, test_filter: str = "") -> TestRun:
        """Every test whose id contains the filter: it passes when its constant has its target value."""
        selected = [c for c in self.constants if test_filter in c.test_id]
        return TestRun({c.test_id: self.value_of(c) == c.target for c in selected})

    # ---- tools

    def execute(self, name: str, args: Mapping[str, Any]) -> Outcome:
        """Run one tool call; an unknown tool or a bad argument is an error the agent is shown."""
        tool = self._tools.get(name)
        if tool is None:
            return Outcome(False, f"error: unknown tool {name!r} (tools: {', '.join(self._tools)})")
        return tool(args)

    def _set(self, path: str, content: str) -> None:
        if path in self.files:
            self.history.setdefault(path, []).append(self.files[path])
        self.files[path] = content

    def _read_file(self, args: Mapping[str, Any]) -> Outcome:
        path = _normalize(args.get("path"))
        if path is None:
            return Outcome(False, "error: read_file needs a 'path' string")
        if path not in self.files:
            return Outcome(False, f"error: {path}: no such file")
        numbered = [f"{i:4d}  {line}" for i, line in enumerate(self.files[path].splitlines(), 1)]
        return Outcome(True, f"{path}:\n" + "\n".join(numbered))

    def _write_file(self, args: Mapping[str, Any]) -> Outcome:
        path, content = _normalize(args.get("path")), args.get("content")
        if path is None or not isinstance(content, str):
            return Outcome(False, "error: write_file needs 'path' and 'content' strings")
        self._set(path, content)
        return Outcome(True, f"wrote {len(content.encode())} bytes to {path}", changed=(path,))

    def _edit_file(self, args: Mapping[str, Any]) -> Outcome:
        path, edits = _normalize(args.get("path")), args.get("edits")
        if path is None or not isinstance(edits, list) or not edits:
            return Outcome(False, "error: edit_file needs a 'path' string and a non-empty 'edits' list")
        if path not in self.files:
            return Outcome(False, f"error: {path}: no such file")
        text = self.files[path]
        for i, edit in enumerate(edits):
            search = edit.get("search") if isinstance(edit, dict) else None
            replace = edit.get("replace") if isinstance(edit, dict) else None
            if not isinstance(search, str) or not isinstance(replace, str) or not search:
                return Outcome(False, f"error: edits[{i}] needs non-empty 'search' and a 'replace' string")
            count = text.count(search)
            if count == 0:
                stale = any(search in old for old in self.history.get(path, []))
                return Outcome(False, f"error: edits[{i}]: search text not found in {path}: {search!r}", stale=stale)
            if count > 1:
                return Outcome(False, f"error: edits[{i}]: search text matches {count} times in {path}: {search!r}")
            text = text.replace(search, replace, 1)
        self._set(path, text)
        return Outcome(True, f"applied {len(edits)} edit(s) to {path}", changed=(path,))

    def _search_code(self, args: Mapping[str, Any]) -> Outcome:
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            return Outcome(False, "error: search_code needs a non-empty 'pattern' string")
        globs = args.get("globs")
        globs = [g for g in globs if isinstance(g, str)] if isinstance(globs, list) else []
        limit = args.get("max_results")
        cap = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else _MAX_SEARCH_RESULTS
        matcher = _matcher(pattern)
        lines: list[str] = []
        hits: list[str] = []
        for path in sorted(self.files):
            if globs and not any(fnmatch.fnmatch(path, g) for g in globs):
                continue
            for n, line in enumerate(self.files[path].splitlines(), 1):
                if matcher(line) and len(lines) < min(cap, _MAX_SEARCH_CAP):
                    lines.append(f"{path}:{n}: {line}")
                    hits.append(path)
        body = "\n".join(lines) if lines else "no matches"
        return Outcome(True, f"search {pattern!r}: {len(lines)} match(es)\n{body}", hits=tuple(hits))

    def _run_tests(self, args: Mapping[str, Any]) -> Outcome:
        raw = args.get("filter")
        test_filter = raw.strip() if isinstance(raw, str) else ""
        run = self.test_run(test_filter)
        if not run.results:
            return Outcome(True, f"run_tests {test_filter!r}: no tests matched", tests=run)
        lines = [f"{test_id} {'PASSED' if ok else 'FAILED'}" for test_id, ok in run.results.items()]
        for test_id, ok in run.results.items():
            if not ok:
                lines.append(self._failure(test_id))
        lines.append(f"{len(run.results)} tests: {run.passed} passed, {run.failed} failed")
        return Outcome(True, "\n".join(lines), tests=run)

    def _failure(self, test_id: str) -> str:
        constant = next(c for c in self.constants if c.test_id == test_id)
        value = self.value_of(constant)
        if value is None:
            return f"  {test_id}: AttributeError: module 'src.{constant.module}' has no attribute '{constant.name}'"
        return f"  {test_id}: assert {constant.module}.{constant.name} == {constant.target} (found {value})"


def _matcher(pattern: str) -> Callable[[str], bool]:
    """A regular expression when the pattern is one, else a plain substring test."""
    try:
        compiled = re.compile(pattern)
    except re.error:
        return lambda line: pattern in line
    return lambda line: compiled.search(line) is not None

"""The coding-agent tools the tool-call suites offer, and the scripted conversations that use them.

The four tools are the ones the asiai dev-quality eval stresses: ``edit_file.edits`` is the required
array of objects that the Qwen 3.6 MoE base collapses to an empty object on deep-context turns,
``search_code.globs`` an array of strings, ``run_tests.verbose`` a boolean some templates stringify.
Their parameters are plain JSON Schema (draft 2020-12) so calls are validated by the ``jsonschema``
library, never by hand. ``edits`` carries ``minItems: 1``: an edit call without edits is not a call.

The scenarios are data, not code: each turn names the user message, the tool a competent agent
calls, and the canned result a valid call receives. Canned results keep the conversation, and so
the context every engine sees, identical from run to run; a call that does not validate is answered
with the validation error instead, as a real agent harness would. The turn order puts an edit turn
inside the first three, so the ``smoke`` profile (three turns) still probes the empty-object bug.
Every scenario opens with :data:`FEWSHOT`, two earlier calls, the same for every engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: JSON Schema of each tool's arguments, by tool name.
TOOL_SCHEMAS: Mapping[str, Mapping[str, Any]] = {
    "write_file": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
    "edit_file": {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "edits": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"search": {"type": "string"}, "replace": {"type": "string"}},
                    "required": ["search", "replace"],
                },
            },
        },
        "required": ["path", "edits"],
    },
    "search_code": {
        "type": "object",
        "properties": {
            "pattern": {"type": "string"},
            "globs": {"type": "array", "items": {"type": "string"}},
            "max_results": {"type": "integer", "minimum": 1},
        },
        "required": ["pattern"],
    },
    "run_tests": {
        "type": "object",
        "properties": {"filter": {"type": "string"}, "verbose": {"type": "boolean"}},
    },
}

_DESCRIPTIONS = {
    "write_file": "Create or overwrite a file with the given content.",
    "edit_file": "Apply a list of search/replace edits to one file; each search must match exactly once.",
    "search_code": "Search the repository for a regular expression; returns matching lines.",
    "run_tests": "Run the test suite, optionally filtered by test name.",
}

TOOL_NAMES: tuple[str, ...] = tuple(TOOL_SCHEMAS)


def tool_definition(name: str) -> dict[str, Any]:
    """The OpenAI ``tools`` entry for one tool (``{"type": "function", "function": {...}}``)."""
    return {
        "type": "function",
        "function": {"name": name, "description": _DESCRIPTIONS[name], "parameters": TOOL_SCHEMAS[name]},
    }


def tool_definitions(names: Iterable[str] = TOOL_NAMES) -> list[dict[str, Any]]:
    """The request's ``tools`` list for the named tools, in the order given."""
    return [tool_definition(n) for n in names]


TOOLS: tuple[dict[str, Any], ...] = tuple(tool_definitions())
"""Every tool, as sent in a request's ``tools``."""


# ------------------------------------------------------------------------------------- scenarios


@dataclass(frozen=True, slots=True)
class Turn:
    """One user turn: what the user asks, which tool answers it, and what a valid call gets back."""

    user: str
    expected_tool: str
    result: str

    @property
    def edit(self) -> bool:
        """Edit turns are where the empty-object bug shows (``edit_file.edits`` collapsed)."""
        return self.expected_tool == "edit_file"


def call_message(call_id: str, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """An assistant message carrying one tool call, as a chat history holds it."""
    function = {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }


FEWSHOT: tuple[dict[str, Any], ...] = (
    {"role": "user", "content": "Search the code for `class Config`."},
    call_message("call_fewshot_0", "search_code", {"pattern": "class Config"}),
    {"role": "user", "content": "Create `NOTES.md` containing the line `# Notes`."},
    call_message("call_fewshot_1", "write_file", {"path": "NOTES.md", "content": "# Notes\n"}),
)
"""Two earlier calls from a previous session, without their results. Every scenario opens with them:
this few-shot history is what makes even a 135M model answer through the tool channel (docs/real-engines.md),
it shows no ``edit_file`` call (edits are never primed), and it is the same for every engine."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A multi-turn conversation whose context grows turn by turn."""

    name: str
    system: str
    turns: tuple[Turn, ...]
    history: tuple[Mapping[str, Any], ...] = FEWSHOT
    """Messages between the system prompt and the first turn."""

    @property
    def edit_turns(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.turns) if t.edit)


AGENT_SYSTEM = (
    "You are a coding agent working in a Python repository (package `app` under `src/`). "
    "Act only through the provided tools and emit exactly one tool call per reply. "
    "Tool arguments must be valid JSON that follows each tool's schema."
)

BASIC = Scenario(
    "basic",
    AGENT_SYSTEM,
    (
        Turn(
            "Find where `load_settings` is defined: search the code for `def load_settings`.",
            "search_code",
            "src/app/settings.py:14: def load_settings(path: str) -> dict:",
        ),
        Turn(
            "Create `src/app/limits.py` containing a dataclass `Limits` with two fields: "
            "`max_items: int = 100` and `timeout_s: float = 5.0`.",
            "write_file",
            "wrote src/app/limits.py (171 bytes)",
        ),
        Turn(
            "Add two fields to `Limits` in `src/app/limits.py` with edit_file, one edit per field: "
            "`retries: int = 3` after the `timeout_s` line, then `backoff_s: float = 0.5` after `retries`.",
            "edit_file",
            "applied 2 edits to src/app/limits.py",
        ),
        Turn(
            "Search the `*.py` and `*.toml` files for `max_items`, at most 20 results.",
            "search_code",
            "3 matches: src/app/limits.py:5, src/app/api.py:41, pyproject.toml:12",
        ),
        Turn(
            "Rename `max_items` to `item_limit` in `src/app/api.py` with edit_file. Line 41 reads "
            "`    if len(items) > limits.max_items:` and line 58 reads `    return limits.max_items`.",
            "edit_file",
            "applied 2 edits to src/app/api.py",
        ),
        Turn(
            "Write `tests/test_limits.py` with three pytest tests checking the defaults of `Limits`.",
            "write_file",
            "wrote tests/test_limits.py (598 bytes)",
        ),
        Turn(
            "Make `load_settings` in `src/app/settings.py` use `Limits`, with edit_file: replace the line "
            "`    limits = {}` with `    limits = Limits()` and the line `import json` with "
            "`import json\\nfrom app.limits import Limits`.",
            "edit_file",
            "applied 2 edits to src/app/settings.py",
        ),
        Turn("Run the tests whose name contains `limits`, verbose.", "run_tests", "3 passed in 0.04s"),
    ),
)
"""Eight turns of ordinary agent work; edit turns 2, 4 and 6."""

_QUOTING_PY = r'''"""Quote and unquote shell words.

Example:
```python
>>> quote('say "hi"')
'"say \\"hi\\""'
```
"""
import re

_NEEDS = re.compile(r'[\s"\'\\$`]')


def quote(word: str) -> str:
    if not _NEEDS.search(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
'''

_STRESS_EDITS = [
    (r"""_NEEDS = re.compile(r'[\s"\'\\$`]')""", r"""_NEEDS = re.compile(r'[\s"\'\\$`;&|<>]')"""),
    ("def quote(word: str) -> str:", "def quote(word: str, *, force: bool = False) -> str:"),
    ("    if not _NEEDS.search(word):", "    if not force and not _NEEDS.search(word):"),
    (r"""    return '"' + word""", r"""    return "\"" + word"""),
    ('"""Quote and unquote shell words.', '"""Quote and unquote shell words (POSIX sh, UTF-8: café, naïve, 日本).'),
    ("import re", 'import re, sys  # "sys" for argv'),
]

_RENAME_EDITS = [
    ("def quote(word: str, *, force: bool", "def shell_quote(word: str, *, force: bool"),
    (""">>> quote('say "hi"')""", """>>> shell_quote('say "hi"')"""),
    ('"""Quote and unquote shell words', '"""Shell-quote and unquote shell words'),
    ("__all__ = []", '__all__ = ["shell_quote"]'),
    ("# quote: see below", "# shell_quote: see below"),
    (r"""    return "\"" + word""", r"""    return "\"" + word  # shell_quote"""),
    ("def unquote(", "def shell_unquote("),
    ("quote = shell_quote", "quote = shell_quote  # deprecated alias"),
]


def _numbered_edits(pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"{i}. search `{s}` → replace `{r}`" for i, (s, r) in enumerate(pairs, 1))


STRESS = Scenario(
    "stress",
    AGENT_SYSTEM,
    (
        Turn(
            "Create `src/app/quoting.py` with exactly this content (keep every quote, backslash and the "
            "code fence inside the docstring):\n" + _QUOTING_PY,
            "write_file",
            "wrote src/app/quoting.py (412 bytes)",
        ),
        Turn(
            "Apply these 6 edits to `src/app/quoting.py` in ONE edit_file call, in this order, copying "
            "every backslash and quote exactly:\n" + _numbered_edits(_STRESS_EDITS),
            "edit_file",
            "applied 6 edits to src/app/quoting.py",
        ),
        Turn(
            r"Search for the regular expression `re\.compile\(r'\[\\s\"` in `*.py`, `*.pyi`, `*.md` and "
            "`*.toml`, at most 50 results.",
            "search_code",
            "1 match: src/app/quoting.py:11",
        ),
        Turn(
            "Write `docs/quoting.md`: a title, one paragraph mentioning `café — naïve — 日本`, a ```python "
            'fenced example calling `quote(\'a "b" \\\\c\')`, and the JSON `{"cases": [{"in": "a b", '
            '"out": "\\"a b\\""}, {"in": "C:\\\\tmp", "out": "\\"C:\\\\\\\\tmp\\""}]}`.',
            "write_file",
            "wrote docs/quoting.md (655 bytes)",
        ),
        Turn(
            "Rename `quote` to `shell_quote` in `src/app/quoting.py` with ONE edit_file call of these "
            "8 edits:\n" + _numbered_edits(_RENAME_EDITS),
            "edit_file",
            "applied 8 edits to src/app/quoting.py",
        ),
        Turn(
            "Deep in this session now: apply 10 edits at once to `src/app/cli.py`, each wrapping one call "
            "`shell_quote(arg_N)` (N = 1..10) as a multi-line replacement:\n"
            "try:\n    out.append(shell_quote(arg_N))\nexcept ValueError as exc:\n"
            '    log.warning("bad \\"arg_N\\": %s", exc)\n'
            "Keep the newlines, indentation, escaped quotes and backslashes exact.",
            "edit_file",
            "applied 10 edits to src/app/cli.py",
        ),
        Turn(
            "Search `*.py` for `shell_quote\\(` to confirm the rename, at most 50 results.",
            "search_code",
            "14 matches across 3 files",
        ),
        Turn(
            "Write `tests/data/paths.json` containing a JSON list of three objects with keys `raw` and "
            '`quoted`, where the raw values are `C:\\Program Files\\app`, `/tmp/a "b"` and `naïve\\tcafé`.',
            "write_file",
            "wrote tests/data/paths.json (244 bytes)",
        ),
        Turn("Run the full test suite, verbose.", "run_tests", "23 passed in 0.41s"),
    ),
)
"""Nine turns of heavy escaping (quotes, backslashes, unicode, code fences); edit turns 1, 4 and 5
carry 6, 8 and 10 edits per call."""


@dataclass(frozen=True, slots=True)
class RecoveryScenario:
    """Context turns, a turn whose call gets a failing result, then "Fix it." and N observed turns."""

    name: str
    system: str
    context: tuple[Turn, ...]
    trigger: Turn
    """Its call (whatever it is) is answered with ``failure``."""
    failure: str
    fix_prompt: str
    fixing_tools: tuple[str, ...]
    """A clean call of one of these tools counts as the fix."""
    observe: int
    """How many turns after the fix prompt the model gets to fix it."""
    history: tuple[Mapping[str, Any], ...] = FEWSHOT


RECOVERY = RecoveryScenario(
    name="recovery",
    system=AGENT_SYSTEM,
    context=BASIC.turns[:2],
    trigger=Turn("Run the tests whose name contains `limits`.", "run_tests", ""),
    failure=(
        "ERROR collecting tests/test_limits.py\n"
        "Traceback (most recent call last):\n"
        '  File "tests/test_limits.py", line 3, in <module>\n'
        "    from app.limit import Limits\n"
        "ModuleNotFoundError: No module named 'app.limit'\n"
        "1 error in 0.05s"
    ),
    fix_prompt="Fix it.",
    fixing_tools=("edit_file", "write_file", "search_code"),
    observe=3,
)

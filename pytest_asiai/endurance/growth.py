"""Context growth of an endurance trajectory: the token plan, the calibration of characters per
token, and the deterministic texts that make the prompt grow (system prompt, handbook, padding).

Why deterministic: two engines (or two releases of one) must face the same trajectory, so every
text here derives from a seed; pytest_asiai/endurance/trajectory.py sizes them turn by turn.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_asiai.endurance.simrepo import SimRepo

__all__ = [
    "DEFAULT_CHARS_PER_TOKEN",
    "MESSAGE_OVERHEAD_TOKENS",
    "Calibrator",
    "ContextPlan",
    "calibration_sample",
    "handbook",
    "padding_text",
    "system_prompt",
]

#: Characters per token assumed before the engine's own counts calibrate it (code and prose mix).
DEFAULT_CHARS_PER_TOKEN = 3.6
#: Tokens a chat template adds around one message (role markers, separators); an estimate.
MESSAGE_OVERHEAD_TOKENS = 6

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

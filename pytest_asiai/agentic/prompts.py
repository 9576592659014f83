"""A deterministic prompt corpus: system prompts A and B, user messages X, Y, Z and the long corpus L.

Text is built from varied prose segments, each ending in a unique sentinel so that no two segments
are identical (naive substring caches cannot cheat), and each text starts with its own label so two
texts differ from their first word. Sizes are counted in words, the unit :mod:`pytest_asiai.agentic.calibrate`
adjusts to reach a token target on the engine's own tokenizer (a word is one to a few tokens: fine
enough for a 5 % tolerance even on the smallest message). Every user message ends with an instruction
asking for a long answer, so output length does not depend on how talkative a model is. A salt placed
at the very start of the system prompt makes a whole prompt new to every cache.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

SENTENCES = (
    "The orchestrator keeps a ledger of every tool call it has issued and every result it received.",
    "Each repository file is read before it is edited, and every edit is verified by running the tests.",
    "Latency budgets matter: the first token must arrive quickly or the agent loop stalls.",
    "A search over the code base returns paths, line numbers and a short excerpt of each match.",
    "When a test fails, the agent reads the traceback, locates the faulty function and proposes a fix.",
    "Configuration lives in small TOML files whose keys are documented next to their defaults.",
    "The build caches compiled artefacts keyed on the compiler flags and the source digest.",
    "Long documents are summarised section by section, keeping names, numbers and decisions intact.",
    "A neutron star packs more than a solar mass into a sphere about twenty kilometres across.",
    "Tidal deformability measured in binary mergers constrains the equation of state of dense matter.",
    "Pulsar timing arrays compare arrival times from many millisecond pulsars over decades.",
    "Careful engineers write down what they measured, how they measured it and what they left alone.",
)

INSTRUCTION = (
    "Task: write a long, detailed answer in plain prose of at least 600 words that explains the material "
    "above step by step. Do not stop early and do not ask questions."
)

LABELS = {
    "A": "SYSTEM-A agent-operating-manual",
    "B": "SYSTEM-B orbital-radio-pulsar-timer",
    "X": "USER-X refactor-the-config-loader",
    "Y": "USER-Y explain-the-failing-test",
    "Z": "USER-Z summarise-the-design-notes",
    "L": "USER-L long-context-multi-document-corpus",
}

#: System prompts, and user messages (which end with the long-answer instruction).
SYSTEM_TEXTS = ("A", "B")
USER_TEXTS = ("X", "Y", "Z", "L")


def segment(label: str, i: int) -> str:
    """Segment ``i`` of a text: three rotated sentences (rotation depends on the text) and a sentinel."""
    k = len(SENTENCES)
    offset = zlib.crc32(label.encode()) % k
    body = " ".join(SENTENCES[(offset + i * 5 + j) % k] for j in range(3))
    return f"{body} (segment-{label.split()[0]}-{i})"


@cache
def _segment_words(label: str, i: int) -> tuple[str, ...]:
    return tuple(segment(label, i).split())


def body_text(label: str, words: int) -> str:
    """The first ``words`` words of a labelled text, one segment per line, the last one possibly cut."""
    lines: list[str] = []
    left = max(0, words)
    i = 0
    while left > 0:
        piece = _segment_words(label, i)[:left]
        lines.append(" ".join(piece))
        left -= len(piece)
        i += 1
    return f"[{label}]\n" + "\n".join(lines)


def text(which: str, words: int) -> str:
    """Text ``which`` (A, B, X, Y, Z or L) with ``words`` body words; user texts end with the instruction."""
    out = body_text(LABELS[which], words)
    return out + "\n\n" + INSTRUCTION if which in USER_TEXTS else out


@dataclass(frozen=True, slots=True)
class Corpus:
    """Body size in words of each text (A, B, X, Y, Z, L), chosen by calibration from token targets."""

    words: Mapping[str, int]

    def system(self, which: str, salt: str = "") -> str:
        """System prompt A or B; the salt goes first so the whole prompt is new."""
        head = f"{salt} " if salt else ""
        return head + text(which, self.words[which])

    def user(self, which: str) -> str:
        """User message X, Y, Z or the long corpus L, each ending with the long-answer instruction."""
        return text(which, self.words[which])


#: A conservative guess (English prose with sentinels) used when the engine cannot be asked.
DEFAULT_TOKENS_PER_WORD = 1.4


def estimate_words(tokens: int, tokens_per_word: float = DEFAULT_TOKENS_PER_WORD) -> int:
    """Words needed for a token target, given a measured or assumed tokens-per-word rate."""
    return max(1, round(tokens / tokens_per_word))

"""A deterministic prompt corpus: system prompts A and B, user messages, the long-context corpus.

Text is built from varied prose segments, each ending in a unique sentinel so that no two segments
are identical (naive substring caches cannot cheat). Every user message ends with an instruction
asking for a long answer, so output length does not depend on how talkative a model is. A salt
placed at the very start of the system prompt makes a whole prompt new to every cache.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def segment(label: str, i: int) -> str:
    """Segment ``i`` of a text: rotated prose plus a unique sentinel."""
    k = len(SENTENCES)
    body = " ".join(SENTENCES[(i * 5 + j) % k] for j in range(3))
    return f"{body} (segment-{label.split()[0]}-{i})"


def text_of_segments(label: str, n: int) -> str:
    """The first ``n`` segments of a labelled text, with the label as its heading."""
    return f"[{label}]\n" + "\n".join(segment(label, i) for i in range(n))


@dataclass(frozen=True, slots=True)
class Corpus:
    """Segment counts per text; :mod:`pytest_asiai.calibrate` chooses them from token targets."""

    system_segments: int
    user_segments: int
    long_segments: int

    def system(self, which: str, salt: str = "") -> str:
        """System prompt A or B; the salt goes first so the whole prompt is new."""
        head = f"{salt} " if salt else ""
        return head + text_of_segments(LABELS[which], self.system_segments)

    def user(self, which: str) -> str:
        """User message X, Y, Z or the long corpus L, each ending with the long-answer instruction."""
        n = self.long_segments if which == "L" else self.user_segments
        return text_of_segments(LABELS[which], n) + "\n\n" + INSTRUCTION


def estimate_segments(tokens: int, tokens_per_segment: float) -> int:
    """Segments needed for a token target, given a measured or assumed tokens-per-segment rate."""
    return max(1, round(tokens / tokens_per_segment))


#: A conservative guess (≈4 characters per token) used before calibration against the engine.
DEFAULT_TOKENS_PER_SEGMENT = 60.0

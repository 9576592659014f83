"""Output validity: is an answer's content degenerate, and did thinking stay off when asked?

``degenerate_reason`` is asiai's ``output_gates.check_degenerate``. Only the answer content is
judged, never the reasoning: a thinking loop that never produces an answer is exactly what this
must catch. The rules and constants are asiai's (docs/asiai-protocol.md §3.4), applied to the first
``WINDOW`` characters as asiai stores them, so results compare across tools.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

#: asiai keeps at most 2000 characters of content per run and judges those.
WINDOW = 2000
#: Below this many words the repetition and diversity rules do not apply.
MIN_WORDS = 20
#: The most common word trigram may cover at most this share of all trigrams.
MAX_TRIGRAM_SHARE = 0.3
#: Unique words over all words must be at least this.
MIN_UNIQUE_RATIO = 0.15

REASONS = ("empty", "ngram_repetition", "low_diversity")

_THINK_TAG = re.compile(r"</?think(?:ing)?>", re.IGNORECASE)


def degenerate_reason(text: str) -> str | None:
    """Why ``text`` is degenerate (``empty``, ``ngram_repetition``, ``low_diversity``), or None."""
    window = text[:WINDOW]
    if len(window.strip()) < 1:
        return "empty"
    words = window.split()
    if len(words) < MIN_WORDS:
        return None
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    top = Counter(trigrams).most_common(1)[0][1]
    if top / len(trigrams) > MAX_TRIGRAM_SHARE:
        return "ngram_repetition"
    if len(set(words)) / len(words) < MIN_UNIQUE_RATIO:
        return "low_diversity"
    return None


def has_think_tag(text: str) -> bool:
    """True when the content carries inline ``<think>``/``</think>`` tags (reasoning leaked into the answer)."""
    return _THINK_TAG.search(text) is not None


def thinking_off_requested(request: Mapping[str, Any], thinking: str | None = None) -> bool:
    """Thinking was asked off: engines.toml ``thinking = "off"`` or a known request switch.

    asiai recognised ``chat_template_kwargs.enable_thinking = false`` and Ollama's ``think = false``;
    ``reasoning_effort = "none"`` (newer Ollama, OpenAI-style servers) counts too.
    """
    if thinking == "off":
        return True
    kwargs = request.get("chat_template_kwargs")
    if isinstance(kwargs, Mapping) and kwargs.get("enable_thinking") is False:
        return True
    return request.get("think") is False or request.get("reasoning_effort") == "none"

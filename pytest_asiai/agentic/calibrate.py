"""Prompt sizes in the engine's own tokens, and the context window they must fit in.

The protocol's sizes are token counts (a "50K" phase is 50K on every tokenizer), so each text's word
count is fitted against the engine itself, by the best method it offers:

1. ``tokenize``: the engine counts exactly (llama.cpp ``POST /tokenize {"content": text}`` →
   ``{"tokens": [...]}``); each text is fitted by a few secant steps and its final size is counted.
2. ``prompt_tokens``: two probe chat requests shaped like the protocol's (a salted system prompt and
   a user message, ``max_tokens: 1``, salted so they prime no cache), sized to the profile, give
   tokens per character and what a request carries besides its texts (chat template, salt) from the
   reported ``usage.prompt_tokens``; sizes are then predicted, not counted.
3. ``estimate``: neither works (no usage chunk, engine down): about 4 characters per token, and
   the report says so.

The available context comes from engines.toml (model ``context``) or llama.cpp's ``/props``
``default_generation_settings.n_ctx``; when neither says, the engine's own HTTP 400 will.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from pytest_asiai.agentic.prompts import (
    DEFAULT_TOKENS_PER_WORD,
    LABELS,
    SYSTEM_TEXTS,
    USER_TEXTS,
    Corpus,
    body_text,
    estimate_words,
    segment,
    text,
)
from pytest_asiai.agentic.protocol import Profile
from pytest_asiai.wire.records import RequestRecord

Counter = Callable[[str], int | None]
"""Tokens in a text by the engine's tokenizer (or a prediction of it); None when it cannot say."""

Send = Callable[[str, str], RequestRecord]
"""Send one probe chat request with this system prompt and user message, with ``max_tokens: 1``."""

#: A fitted size within this fraction of its target stops the search (the gate is 5 %).
FIT_TOLERANCE = 0.005
MAX_FIT_STEPS = 6
CHARS_PER_TOKEN_GUESS = 4.0
TOKENS_PER_SEGMENT = 60
#: Shaped like the salt agentic.py puts before every system prompt (16 hex digits and the repeat).
SALT_SAMPLE = "5be0c7f21a9d3e64-r0"


class CalibrationError(Exception):
    """A method could not size the prompts; the next method is tried."""


@dataclass(frozen=True, slots=True)
class TextSize:
    """One text's size: its target and fitted words, and its tokens (counted or predicted)."""

    target: int
    words: int
    tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "words": self.words, "tokens": self.tokens}


@dataclass(frozen=True, slots=True)
class Calibration:
    """How the prompts were sized for one case, and the context window they must fit in."""

    method: str
    """``tokenize`` (counted), ``prompt_tokens`` (predicted from probes) or ``estimate`` (guessed)."""
    sizes: Mapping[str, TextSize]
    """Per text: A and B (system), X, Y, Z (user) and L (the long corpus)."""
    template_tokens: int | None
    """Tokens a request carries besides its texts' sizes: the salt (``tokenize`` counts a sample),
    and with probes also the chat template (None when nothing measured it)."""
    context: int | None = None
    context_source: str | None = None
    note: str | None = None
    """Why a better method was not used."""

    @property
    def corpus(self) -> Corpus:
        return Corpus({k: s.words for k, s in self.sizes.items()})

    def request_tokens(self, system: str, user: str) -> int:
        """The prompt size of a request with these texts (with ``tokenize``, the chat template aside)."""
        return (self.template_tokens or 0) + self.sizes[system].tokens + self.sizes[user].tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "sizes": {k: s.to_dict() for k, s in self.sizes.items()},
            "template_tokens": self.template_tokens,
            "long_request_tokens": self.request_tokens("A", "L"),
            "context": self.context,
            "context_source": self.context_source,
            "note": self.note,
        }


# ----------------------------------------------------------------------------------------- fitting


def fit_words(count: Counter, which: str, target: int) -> TextSize:
    """The word count whose text is closest to ``target`` tokens, by secant steps on the counter.

    Raises CalibrationError when the counter gives no answer or does not grow with the text (a
    broken ``/tokenize`` must not send the search to millions of words).
    """
    words = estimate_words(target, DEFAULT_TOKENS_PER_WORD)
    limit = 5 * target + 100  # fewer than 0.2 tokens per word is not a tokenizer
    tried: dict[int, int] = {}
    prev: tuple[int, int] | None = None
    for _ in range(MAX_FIT_STEPS):
        n = count(text(which, words))
        if n is None:
            raise CalibrationError(f"the counter gave no answer for text {which}")
        tried[words] = n
        if abs(n - target) <= max(1.0, target * FIT_TOLERANCE):
            break
        slope = n / words
        if prev is not None:
            slope = (n - prev[1]) / (words - prev[0])
            if slope <= 0:
                raise CalibrationError(f"the token count of text {which} does not grow with its length")
        prev = (words, n)
        step = max(1, words + round((target - n) / slope))
        if step > limit:
            raise CalibrationError(f"text {which} would need over {limit} words for {target} tokens")
        if step in tried:
            break
        words = step
    best = min(tried, key=lambda w: (abs(tried[w] - target), w))
    return TextSize(target=target, words=best, tokens=tried[best])


def plan(
    profile: Profile,
    count: Counter,
    method: str,
    *,
    template_tokens: int | None = None,
    context: tuple[int | None, str | None] = (None, None),
    note: str | None = None,
) -> Calibration:
    """Fit every text to the profile: A and B to the system size, X, Y, Z to the user size, and L so
    that the whole long request (``template_tokens``: chat template and salt; system prompt A; L)
    reaches the long size."""
    sizes = {w: fit_words(count, w, profile.system_tokens) for w in SYSTEM_TEXTS}
    sizes |= {w: fit_words(count, w, profile.user_tokens) for w in USER_TEXTS if w != "L"}
    long_target = profile.long_tokens - (template_tokens or 0) - sizes["A"].tokens
    sizes["L"] = fit_words(count, "L", max(1, long_target))
    return Calibration(method, sizes, template_tokens, context[0], context[1], note)


# ---------------------------------------------------------------------------------------- counters


def server_root(base_url: str) -> str:
    """The server root without a trailing ``/v1``: llama.cpp's ``/tokenize`` and ``/props`` live there."""
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/")
    path = path[: -len("/v1")] if path.endswith("/v1") else path
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def tokenize_counter(http: httpx.Client, base_url: str) -> Counter | None:
    """An exact counter through ``POST /tokenize``, or None when the engine has no usable one."""
    url = server_root(base_url) + "/tokenize"

    def count(content: str) -> int | None:
        try:
            response = http.post(url, json={"content": content})
            data = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        tokens = data.get("tokens") if isinstance(data, dict) else None
        return len(tokens) if isinstance(tokens, list) else None

    sample = body_text("calibration", 30)
    n = count(sample)
    # A sane tokenizer gives between 0.5 and 5 tokens per word of this prose.
    return count if n is not None and 15 <= n <= 150 else None


@dataclass(frozen=True, slots=True)
class ProbeFit:
    """Tokens per character and the template's own tokens, from two probe requests."""

    tokens_per_char: float
    template_tokens: int

    def counter(self) -> Counter:
        return lambda content: round(len(content) * self.tokens_per_char)


def probe_segments(profile: Profile) -> int:
    """Whole corpus segments in each text of the large probe: about a third of the system prompt's
    tokens per text (a segment is about 45 words, 60 tokens), at least one: SmolLM2's long request
    on the ``tiny`` profile comes within 1 % with two segments, 2.5 % with one.

    Whole segments, because a segment's sentinel costs several tokens: a slope measured over a cut
    segment misjudges tokens per character by several per cent (docs/mlx-engines.md)."""
    return max(1, round(profile.system_tokens / 3 / TOKENS_PER_SEGMENT))


def segments_words(which: str, n: int) -> int:
    """Body words of text ``which`` (A, B, X, Y, Z, L) made of its first ``n`` whole segments."""
    return sum(len(segment(LABELS[which], i).split()) for i in range(n))


def probe_fit(send: Send, profile: Profile) -> ProbeFit:
    """Two salted probe requests shaped like the protocol's (a salted system prompt A, and the long
    corpus L as the user message), differing only in body length; raises CalibrationError when
    usage is missing.

    Shaped like the real requests so that the intercept is what a request carries besides its texts
    (chat template and salt) *with* a system message: SmolLM2's template inserts a default system
    prompt into a request without one, 17 tokens the real requests never carry. The slope is the
    tokens per character of the corpus's own prose and sentinels, over whole segments of L, the
    text most of the long request is made of (probes whose sentinels held a salt, as they once did,
    overstated it by 10 %: the ``tiny`` long request came out at 935 tokens on mlx-lm).
    """
    salt = f"{secrets.token_hex(8)}-r0"  # shaped like the protocol's salts (agentic.py ``_salt``)
    points: list[tuple[int, int]] = []
    for n in (0, probe_segments(profile)):
        system, user = f"{salt} {text('A', segments_words('A', n))}", text("L", segments_words("L", n))
        record = send(system, user)
        if not record.ok:
            raise CalibrationError(f"the probe request failed: {record.error_kind}: {record.error}")
        if record.prompt_tokens is None:
            raise CalibrationError("the probe request reported no usage.prompt_tokens")
        points.append((len(system) + len(user), record.prompt_tokens))
    (c1, p1), (c2, p2) = points
    per_char = (p2 - p1) / (c2 - c1)
    if not 0.05 <= per_char <= 2.0:
        raise CalibrationError(f"the probes gave an implausible {per_char:.3f} tokens per character")
    return ProbeFit(per_char, max(0, round(p1 - per_char * c1)))


def estimate_counter(content: str) -> int:
    return round(len(content) / CHARS_PER_TOKEN_GUESS)


def context_window(http: httpx.Client, base_url: str, declared: int | None) -> tuple[int | None, str | None]:
    """Tokens one request may hold: engines.toml's ``context``, else llama.cpp ``/props``, else unknown."""
    if declared is not None:
        return declared, "engines.toml context"
    try:
        response = http.get(server_root(base_url) + "/props")
        props = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None, None
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    if isinstance(n_ctx, int) and not isinstance(n_ctx, bool) and n_ctx > 0:
        return n_ctx, "/props default_generation_settings.n_ctx"
    return None, None


# ----------------------------------------------------------------------------------------- driver


def calibrate(
    profile: Profile, http: httpx.Client, base_url: str, send: Send, declared_context: int | None
) -> Calibration:
    """Size the prompts by the best method the engine offers (tokenize, probes, estimate)."""
    context = context_window(http, base_url, declared_context)
    notes: list[str] = []
    counter = tokenize_counter(http, base_url)
    if counter is not None:
        try:
            salt = counter(f"{SALT_SAMPLE} ")
            return plan(profile, counter, "tokenize", template_tokens=salt, context=context)
        except CalibrationError as exc:
            notes.append(f"tokenize: {exc}")
    else:
        notes.append("no usable POST /tokenize")
    try:
        fit = probe_fit(send, profile)
        note = "; ".join(notes)
        return plan(
            profile, fit.counter(), "prompt_tokens", template_tokens=fit.template_tokens, context=context, note=note
        )
    except CalibrationError as exc:
        notes.append(f"prompt_tokens: {exc}")
    note = "; ".join([*notes, f"sizes guessed at {CHARS_PER_TOKEN_GUESS:g} characters per token"])
    return plan(profile, estimate_counter, "estimate", context=context, note=note)

"""Immutable per-request records: what one streamed chat completion measured.

Every timestamp is an offset in milliseconds from the moment the request was sent, taken with
``time.perf_counter_ns`` per SSE data line, so records are exact to the microsecond and comparable
across requests. Anything that was not observed is ``None``, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Where ``cached_tokens`` came from, in order of preference.
CACHED_SOURCES = (
    "usage.prompt_tokens_details.cached_tokens",
    "usage.cached_tokens",
    "timings.cache_n",
)

#: Kinds of failure a request can end with.
#: ``empty``: the stream ended normally (a finish_reason) without a single token.
ERROR_KINDS = ("http", "stream_error", "timeout", "connect", "disconnect", "protocol", "empty")


#: A count above this is no count (a 400-digit ``completion_tokens`` overflowed float arithmetic).
MAX_COUNT = 2**53


def as_count(value: object) -> int | None:
    """An integer count from engine JSON, or None when absent or not a count (never a made-up 0).

    Negative or absurdly large counts are not counts either (issue 14): they are "not measured".
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_COUNT:
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_COUNT:
        return value
    return None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call reassembled from streamed fragments (grouped by ``index``)."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request's measurements, as the client saw them."""

    started_at: float
    """Wall-clock time (epoch seconds) when the request was sent; for reports only."""
    status: int | None = None
    error: str | None = None
    error_kind: str | None = None
    headers_ms: float | None = None
    ttft_ms: float | None = None
    """Send to the first chunk carrying content, reasoning or a tool-call fragment."""
    ttfc_ms: float | None = None
    """Send to the first chunk carrying answer content."""
    last_token_ms: float | None = None
    total_ms: float | None = None
    token_chunk_ms: tuple[float, ...] = ()
    """Offset of every token-bearing chunk; their count is ``chunks``."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cached_source: str | None = None
    timings: Mapping[str, Any] | None = None
    """The engine's own timings object (llama.cpp), kept as ground truth."""
    finish_reason: str | None = None
    request_max_tokens: int | None = None
    """The output limit the request asked for (``max_tokens``/``max_completion_tokens``; None: no limit
    sent). With the token count it tells a stream cut by the limit from one the model ended, whatever
    ``finish_reason`` says (mlx-openai-server 1.8.1 reports ``"stop"`` at the limit)."""
    content: str = ""
    """Answer text, bounded to ``MAX_STORED_CONTENT`` characters."""
    content_chars: int = 0
    reasoning_chars: int = 0
    reasoning: str = ""
    """Reasoning text, bounded to ``MAX_STORED_CONTENT`` characters (agent loops replay it in history)."""
    tool_calls: tuple[ToolCall, ...] = field(default=())
    malformed_lines: int = 0
    """SSE data lines that were not JSON (skipped) plus invalid UTF-8 sequences (each replaced by
    U+FFFD): counted so a sloppy engine shows."""
    resent: bool = False
    """The client sent the request a second time because a kept-alive connection was dropped before
    any answer (pytest_asiai/wire/client.py); the engine saw it once. Not part of the report's records."""

    @property
    def ok(self) -> bool:
        """True when the request completed without any error."""
        return self.error is None

    @property
    def answered(self) -> bool:
        """The engine answered, possibly with nothing: ``ok``, or ended ``empty`` (no token streamed).

        An empty answer is never a valid one (it is not ``ok``), but a tool-call conversation goes on
        after it and scores it as no call, where a transport failure leaves the turn unscored.
        """
        return self.error is None or self.error_kind == "empty"

    @property
    def limit_reached(self) -> bool:
        """The answer ended on the request's output limit: ``finish_reason == "length"``, or the reported
        completion tokens reached the requested ``max_tokens`` (even when the engine said ``"stop"``)."""
        if self.finish_reason == "length":
            return True
        n, limit = self.completion_tokens, self.request_max_tokens
        return n is not None and limit is not None and n >= limit

    @property
    def chunks(self) -> int:
        """Number of SSE chunks that carried tokens (not a token count)."""
        return len(self.token_chunk_ms)


MAX_STORED_CONTENT = 4000

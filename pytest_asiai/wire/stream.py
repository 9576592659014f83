"""Everything one streamed response taught us: the per-stream rules shared by every transport.

The client (pytest_asiai/wire/client.py) and the burst dispatcher (pytest_asiai/wire/dispatch.py)
feed it raw SSE bytes; it decides what counts as a token (content, reasoning or a tool-call fragment:
the one token rule, so TTFT means the same everywhere), which usage wins, how an unfinished stream
is classified, and freezes it all into a :class:`~pytest_asiai.wire.records.RequestRecord`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pytest_asiai.wire.failures import describe, engine_message, error_kind, http_error_message
from pytest_asiai.wire.records import CACHED_SOURCES, MAX_STORED_CONTENT, RequestRecord, ToolCall, as_count
from pytest_asiai.wire.sse import SSEDecoder, SSELineTooLong

__all__ = ["DeadlineExceeded", "StreamAccumulator"]

_perf_ns = time.perf_counter_ns


class DeadlineExceeded(Exception):
    """Raised inside the read loop when a read arrives after the overall deadline."""


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class _ToolCallBuilder:
    """One tool call being reassembled from its streamed fragments."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []

    def add(self, fragment: dict[str, Any]) -> None:
        if fragment.get("id") and self.id is None:
            self.id = str(fragment["id"])
        function = _as_dict(fragment.get("function"))
        # The name arrives whole (some servers repeat it in every fragment): keep the first one.
        if function.get("name") and self.name is None:
            self.name = str(function["name"])
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self.arguments.append(arguments)


# ----------------------------------------------------------------------------------- stream state


class StreamAccumulator:
    """Everything one streamed response taught us, fed payload by payload, then frozen to a record.

    It knows nothing about I/O so the client and the burst dispatcher share every rule: what counts
    as a token, which usage wins, and how an unfinished stream is classified.
    """

    def __init__(self, deadline_s: float, max_tokens: int | None = None) -> None:
        self._deadline_s = deadline_s
        self._max_tokens = max_tokens
        self._decoder = SSEDecoder()
        self.t0_ns = 0
        self.deadline_ns = 0
        self.started_at = 0.0
        self.status: int | None = None
        self.error: str | None = None
        self.error_kind: str | None = None
        self.headers_ns: int | None = None
        self.first_token_ns: int | None = None
        self.first_content_ns: int | None = None
        self.token_ns: list[int] = []
        self.last_read_ns: int | None = None
        self.done_ns: int | None = None
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.content: list[str] = []
        self.stored_chars = 0
        self.content_chars = 0
        self.reasoning_chars = 0
        self.reasoning: list[str] = []
        self.stored_reasoning = 0
        self.tools: dict[int, _ToolCallBuilder] = {}
        self.malformed = 0

    # ---- lifecycle driven by the clients

    def start(self, deadline_ns: int | None = None) -> int:
        """Start the clock right before the request is written; returns the deadline (``perf_counter_ns``).

        ``deadline_ns`` keeps an earlier attempt's deadline (a resend must not extend it).
        """
        self.started_at = time.time()
        self.t0_ns = _perf_ns()
        self.deadline_ns = self.t0_ns + int(self._deadline_s * 1e9) if deadline_ns is None else deadline_ns
        return self.deadline_ns

    def remaining_s(self) -> float:
        return max(0.0, (self.deadline_ns - _perf_ns()) / 1e9)

    def on_headers(self, status: int, t_ns: int) -> bool:
        """Record the response headers; True when the body is an SSE stream worth reading."""
        self.status = status
        self.headers_ns = t_ns
        return status < 400

    def on_http_error(self, body: bytes) -> None:
        self.fail("http", f"HTTP {self.status}: {http_error_message(body)}")

    def on_bytes(self, raw: bytes, t_ns: int) -> bool:
        """Feed one raw read; True when reading must stop now (the engine reported an error)."""
        self.last_read_ns = t_ns
        if self.done_ns is not None:
            return False  # draining the end of the body so the connection can be reused
        try:
            payloads = self._decoder.feed(raw)
        except SSELineTooLong as exc:
            self.fail("protocol", str(exc))
            return True
        for payload in payloads:
            if self.on_payload(payload, t_ns):
                break
        if self.error is not None:
            return True
        if self.done_ns is None and t_ns > self.deadline_ns:
            raise DeadlineExceeded
        return False

    def on_eof(self) -> None:
        """The body ended cleanly: flush an event the server left without its blank line."""
        if self.done_ns is not None or self.error is not None:
            return
        t_ns = self.last_read_ns if self.last_read_ns is not None else _perf_ns()
        try:
            payloads = self._decoder.flush()
        except SSELineTooLong as exc:
            self.fail("protocol", str(exc))
            return
        for payload in payloads:
            if self.on_payload(payload, t_ns):
                break

    def on_exception(self, exc: Exception) -> None:
        """A transport failure; harmless once the stream had visibly finished."""
        if isinstance(exc, DeadlineExceeded) or _perf_ns() >= self.deadline_ns:
            self.on_deadline()
            return
        kind = error_kind(exc)
        if kind == "disconnect" and self._finished():
            return
        self.fail(kind, describe(exc))

    def on_deadline(self) -> None:
        if self.done_ns is None:
            self.fail("timeout", f"overall deadline of {self._deadline_s:g} s exceeded")

    def fail(self, kind: str, message: str) -> None:
        """Keep the first failure: later ones are consequences of it."""
        if self.error is None:
            self.error_kind = kind
            self.error = message

    # ---- SSE payloads

    def on_payload(self, payload: str, t_ns: int) -> bool:
        """Apply one ``data`` payload; True when no further payload matters ([DONE] or an error)."""
        if payload == "[DONE]":
            self.done_ns = t_ns
            return True
        try:
            chunk = json.loads(payload)
        except ValueError:
            return self._on_not_json(payload, t_ns)
        if not isinstance(chunk, dict):
            self.malformed += 1
            return False
        return self._on_chunk(chunk, t_ns)

    def _on_not_json(self, payload: str, t_ns: int) -> bool:
        """Skip and count a bad line; also rescue servers that omit blank lines between events."""
        stripped = payload.strip()
        if not stripped:
            return False  # an empty data line is a keep-alive, not a malformed one
        if stripped == "[DONE]":
            return self.on_payload(stripped, t_ns)
        if "\n" in payload:
            return any(self.on_payload(line, t_ns) for line in payload.split("\n"))
        self.malformed += 1
        return False

    def _on_chunk(self, chunk: dict[str, Any], t_ns: int) -> bool:
        error = chunk.get("error")
        if error:
            self.fail("stream_error", engine_message(error))
            return True
        usage = chunk.get("usage")
        if usage and isinstance(usage, dict):
            self.usage = usage
        timings = chunk.get("timings")
        if timings and isinstance(timings, dict):
            self.timings = timings
        choices = chunk.get("choices")
        if choices and isinstance(choices, list) and isinstance(choices[0], dict):
            self._on_choice(choices[0], t_ns)
        return False

    def _on_choice(self, choice: dict[str, Any], t_ns: int) -> None:
        finish_reason = choice.get("finish_reason")
        if finish_reason:
            self.finish_reason = str(finish_reason)
        delta = choice.get("delta")
        if delta and isinstance(delta, dict) and self._on_delta(delta, t_ns):
            if self.first_token_ns is None:
                self.first_token_ns = t_ns
            self.token_ns.append(t_ns)

    def _on_delta(self, delta: dict[str, Any], t_ns: int) -> bool:
        """Apply a delta; True when it carries a token (content, reasoning or a tool-call fragment)."""
        token = False
        content = delta.get("content")
        if content and isinstance(content, str):
            token = True
            self._add_content(content, t_ns)
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            token = True
            self._add_reasoning(reasoning)
        fragments = delta.get("tool_calls")
        if fragments and isinstance(fragments, list):
            token = True
            self._add_tool_fragments(fragments)
        return token

    def _add_content(self, content: str, t_ns: int) -> None:
        if self.first_content_ns is None:
            self.first_content_ns = t_ns
        self.content_chars += len(content)
        room = MAX_STORED_CONTENT - self.stored_chars
        if room > 0:
            piece = content[:room]
            self.content.append(piece)
            self.stored_chars += len(piece)

    def _add_reasoning(self, reasoning: str) -> None:
        self.reasoning_chars += len(reasoning)
        room = MAX_STORED_CONTENT - self.stored_reasoning
        if room > 0:
            piece = reasoning[:room]
            self.reasoning.append(piece)
            self.stored_reasoning += len(piece)

    def _add_tool_fragments(self, fragments: list[Any]) -> None:
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                continue
            index = as_count(fragment.get("index"))
            key = position if index is None else index
            builder = self.tools.get(key)
            if builder is None:
                builder = self.tools[key] = _ToolCallBuilder()
            builder.add(fragment)

    # ---- classification and freezing

    def _finished(self) -> bool:
        """The stream visibly reached its end: [DONE], a finish_reason or the usage chunk."""
        return self.done_ns is not None or self.finish_reason is not None or self.usage is not None

    def _classify_end(self) -> None:
        """A stream that ended without an error may still be unusable."""
        if self.error is not None or self.status is None:
            return
        if not self.token_ns and self.finish_reason is None:
            self.fail("protocol", "stream ended without any token")
        elif not self.token_ns and self._max_tokens != 0:
            # The engine answered nothing (on llama-server: end of generation as the first token).
            # Not a transport fault, but never a valid empty answer either (issue 14): kind "empty".
            self.fail("empty", f"stream ended with finish_reason {self.finish_reason!r} and no token")
        elif not self._finished():
            self.fail("disconnect", "stream ended before [DONE], finish_reason or usage")

    def to_record(self, end_ns: int) -> RequestRecord:
        """Freeze what was measured; offsets are milliseconds from the send."""
        self._classify_end()
        t0 = self.t0_ns

        def ms(t_ns: int | None) -> float | None:
            return None if t_ns is None else (t_ns - t0) / 1e6

        return RequestRecord(
            started_at=self.started_at,
            status=self.status,
            error=self.error,
            error_kind=self.error_kind,
            headers_ms=ms(self.headers_ns),
            ttft_ms=ms(self.first_token_ns),
            ttfc_ms=ms(self.first_content_ns),
            last_token_ms=ms(self.token_ns[-1] if self.token_ns else None),
            total_ms=ms(self.done_ns if self.done_ns is not None else end_ns),
            token_chunk_ms=tuple((t - t0) / 1e6 for t in self.token_ns),
            timings=self.timings,
            finish_reason=self.finish_reason,
            content="".join(self.content),
            content_chars=self.content_chars,
            reasoning_chars=self.reasoning_chars,
            reasoning="".join(self.reasoning),
            tool_calls=self._tool_calls(),
            malformed_lines=self.malformed + self._decoder.invalid_utf8,
            request_max_tokens=self._max_tokens,
            **self._usage_fields(),
        )

    def _tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(index=i, id=b.id, name=b.name, arguments="".join(b.arguments))
            for i, b in sorted(self.tools.items())
        )

    def _usage_fields(self) -> dict[str, Any]:
        usage = self.usage or {}
        cached, source = self._cached(usage)
        details = _as_dict(usage.get("completion_tokens_details"))
        return {
            "prompt_tokens": as_count(usage.get("prompt_tokens")),
            "completion_tokens": as_count(usage.get("completion_tokens")),
            "reasoning_tokens": as_count(details.get("reasoning_tokens")),
            "cached_tokens": cached,
            "cached_source": source,
        }

    def _cached(self, usage: dict[str, Any]) -> tuple[int | None, str | None]:
        """Cached prompt tokens from the first source that reports them, and which one it was."""
        candidates = (
            _as_dict(usage.get("prompt_tokens_details")).get("cached_tokens"),
            usage.get("cached_tokens"),
            (self.timings or {}).get("cache_n"),
        )
        for value, source in zip(candidates, CACHED_SOURCES, strict=True):
            count = as_count(value)
            if count is not None:
                return count, source
        return None, None

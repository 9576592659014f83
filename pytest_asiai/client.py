"""Streaming chat-completion clients that time every SSE chunk and never raise for request failures.

Both clients send ``POST …/v1/chat/completions`` with ``stream: true`` and
``stream_options.include_usage: true`` and return one immutable :class:`RequestRecord`. The clock
starts (``perf_counter_ns``) right before the serialized request is handed to httpx; each raw socket
read is timestamped once and that time applies to every SSE payload it completes. Reading raw bytes
with our own splitter keeps the client's CPU per chunk low: on a small machine a busy client slows the
engine it measures (real-engines.md, last section).

The per-stream logic lives once in :class:`_StreamAccumulator`; the sync and async clients only
differ in how they drive I/O and enforce the overall deadline.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from .records import CACHED_SOURCES, MAX_STORED_CONTENT, RequestRecord, ToolCall, as_count
from .sse import SSEDecoder

__all__ = [
    "AsyncStreamingClient",
    "DeadlineExceeded",
    "StreamAccumulator",
    "StreamingClient",
    "Timeouts",
    "chat_url",
    "encode_body",
    "request_headers",
]

_perf_ns = time.perf_counter_ns
#: FastAPI servers (llama-cpp-python, vLLM-MLX, oMLX, ...) refuse a JSON body sent without it (HTTP 500/422).
_JSON = {"Content-Type": "application/json"}
_MAX_ERROR_BODY = 300


@dataclass(frozen=True)
class Timeouts:
    """How long a request may take.

    ``deadline_s`` bounds the whole request (send, prefill, every token, end of stream), not each
    read: a server that drips a byte per second would otherwise never time out.
    """

    connect_s: float = 10.0
    deadline_s: float = 600.0


class _DeadlineExceeded(Exception):
    """Raised inside the read loop when a read arrives after the overall deadline."""


# --------------------------------------------------------------------------------------------- helpers


def chat_url(base_url: str) -> str:
    """``…/v1/chat/completions`` for a base URL given with or without its ``/v1``."""
    return _api_url(base_url, "chat/completions")


def _api_url(base_url: str, endpoint: str) -> str:
    base = base_url.rstrip("/")
    if urlsplit(base).path.endswith("/v1"):
        return f"{base}/{endpoint}"
    return f"{base}/v1/{endpoint}"


def _encode_body(body: Mapping[str, Any]) -> bytes:
    """Copy the caller's payload, force streaming with a usage chunk, and serialize it."""
    payload = dict(body)
    options = payload.get("stream_options")
    payload["stream"] = True
    payload["stream_options"] = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _headers(api_key: str | None) -> dict[str, str]:
    # identity encoding: the raw bytes we time are the SSE bytes, with no decompression in between.
    headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _httpx_timeout(timeouts: Timeouts) -> httpx.Timeout:
    """Per-operation httpx timeouts, none longer than the overall deadline."""
    deadline = timeouts.deadline_s
    return httpx.Timeout(connect=min(timeouts.connect_s, deadline), read=deadline, write=deadline, pool=deadline)


def _limits(max_connections: int) -> httpx.Limits:
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _engine_message(error: object) -> str:
    """The human message out of an engine's ``error`` value (object, string or anything else)."""
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or error.get("msg")
        if message:
            return str(message)
        return json.dumps(error)[:_MAX_ERROR_BODY]
    return str(error)[:_MAX_ERROR_BODY]


def _http_error_message(body: bytes) -> str:
    """``error.message`` (or FastAPI's ``detail``) from a JSON error body, else the body's start."""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:_MAX_ERROR_BODY]
    if isinstance(parsed, dict):
        for key in ("error", "detail", "message"):
            if parsed.get(key):
                return _engine_message(parsed[key])
    return text[:_MAX_ERROR_BODY]


_CONNECT_ERRORS = (httpx.ConnectTimeout, httpx.ConnectError, httpx.UnsupportedProtocol, httpx.ProxyError)


def _error_kind(exc: Exception) -> str:
    """Map an httpx failure to one of ``records.ERROR_KINDS``."""
    if isinstance(exc, _CONNECT_ERRORS):
        return "connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.DecodingError):
        return "protocol"
    return "disconnect"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# Failures of one request; anything else (a bug, KeyboardInterrupt, cancellation) propagates.
_REQUEST_ERRORS = (httpx.TransportError, httpx.DecodingError)


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


class _StreamAccumulator:
    """Everything one streamed response taught us, fed payload by payload, then frozen to a record.

    It knows nothing about I/O so the sync and async clients share every rule: what counts as a
    token, which usage wins, and how an unfinished stream is classified.
    """

    def __init__(self, deadline_s: float) -> None:
        self._deadline_s = deadline_s
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

    def start(self) -> None:
        """Start the clock: call right before the request is handed to the transport."""
        self.started_at = time.time()
        self.t0_ns = _perf_ns()
        self.deadline_ns = self.t0_ns + int(self._deadline_s * 1e9)

    def remaining_s(self) -> float:
        return max(0.0, (self.deadline_ns - _perf_ns()) / 1e9)

    def on_headers(self, status: int, t_ns: int) -> bool:
        """Record the response headers; True when the body is an SSE stream worth reading."""
        self.status = status
        self.headers_ns = t_ns
        return status < 400

    def on_http_error(self, body: bytes) -> None:
        self.fail("http", f"HTTP {self.status}: {_http_error_message(body)}")

    def on_bytes(self, raw: bytes, t_ns: int) -> bool:
        """Feed one raw read; True when reading must stop now (the engine reported an error)."""
        self.last_read_ns = t_ns
        if self.done_ns is not None:
            return False  # draining the end of the body so the connection can be reused
        for payload in self._decoder.feed(raw):
            if self.on_payload(payload, t_ns):
                break
        if self.error is not None:
            return True
        if self.done_ns is None and t_ns > self.deadline_ns:
            raise _DeadlineExceeded
        return False

    def on_eof(self) -> None:
        """The body ended cleanly: flush an event the server left without its blank line."""
        if self.done_ns is not None or self.error is not None:
            return
        t_ns = self.last_read_ns if self.last_read_ns is not None else _perf_ns()
        for payload in self._decoder.flush():
            if self.on_payload(payload, t_ns):
                break

    def on_exception(self, exc: Exception) -> None:
        """A transport failure; harmless once the stream had visibly finished."""
        if isinstance(exc, _DeadlineExceeded) or _perf_ns() >= self.deadline_ns:
            self.on_deadline()
            return
        kind = _error_kind(exc)
        if kind == "disconnect" and self._finished():
            return
        self.fail(kind, _describe(exc))

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
            self.fail("stream_error", _engine_message(error))
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
            malformed_lines=self.malformed,
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


# Public names for transports that drive their own sockets: pytest_asiai.dispatch writes a burst's
# requests itself so they leave together, and must keep every per-stream rule of these clients.
StreamAccumulator = _StreamAccumulator
DeadlineExceeded = _DeadlineExceeded
encode_body = _encode_body
request_headers = _headers


# ------------------------------------------------------------------------------------ sync client


class _Watchdog:
    """Enforces the overall deadline on a blocking stream by shutting its socket down at that time.

    A blocked ``recv`` cannot be interrupted otherwise, and httpx's read timeout is per read, so a
    stalled or dripping stream could outlive the deadline. Shutting the socket makes the pending read
    return EOF, which the read loop then reports as a timeout. Costs one timer thread per request.
    """

    def __init__(self) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def arm(self, response: httpx.Response, delay_s: float) -> None:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            self._timer = threading.Timer(delay_s, self._fire, args=(sock,))
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        """Must run before the response is closed, so a pooled connection is never shut down."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _fire(self, sock: socket.socket) -> None:
        with self._lock:
            if self._timer is None:
                return
            self.fired = True
            try:
                # The base-class call also works on an SSLSocket, whose own shutdown() unwraps TLS.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


class StreamingClient:
    """Blocking client: one request at a time per thread, connections kept alive between requests."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeouts: Timeouts = Timeouts(),
        max_connections: int = 100,
    ) -> None:
        self.url = chat_url(base_url)
        self.timeouts = timeouts
        # trust_env=False: a proxy from the environment must never sit between us and a local engine.
        self._client = httpx.Client(
            headers=_headers(api_key),
            timeout=_httpx_timeout(timeouts),
            limits=_limits(max_connections),
            trust_env=False,
        )

    def chat(self, body: Mapping[str, Any]) -> RequestRecord:
        """Stream one chat completion; failures are reported in the record, never raised.

        A kept-alive connection that the server closed while it sat in the pool fails before any
        response byte (llama-server b11434 closes a connection right after a response that outlasted
        its 5 s keep-alive timeout, so the next turn of a conversation hits it). That request never
        reached the engine: it is sent once more, on a fresh connection.
        """
        content = _encode_body(body)
        record, unanswered = self._chat_once(content)
        if unanswered:
            record, _ = self._chat_once(content)
        return record

    def _chat_once(self, content: bytes) -> tuple[RequestRecord, bool]:
        """One attempt, and whether the server dropped the connection without answering at all."""
        request = self._client.build_request("POST", self.url, content=content, headers=_JSON)
        acc = _StreamAccumulator(self.timeouts.deadline_s)
        watchdog = _Watchdog()
        unanswered = False
        acc.start()
        try:
            try:
                response = self._client.send(request, stream=True)
            except httpx.RemoteProtocolError:
                unanswered = True
                raise
            try:
                self._read(response, acc, watchdog)
            finally:
                watchdog.disarm()
                response.close()
        except (_DeadlineExceeded, *_REQUEST_ERRORS) as exc:
            acc.on_exception(exc)
        if watchdog.fired:
            acc.on_deadline()
        return acc.to_record(_perf_ns()), unanswered

    @staticmethod
    def _read(response: httpx.Response, acc: _StreamAccumulator, watchdog: _Watchdog) -> None:
        if not acc.on_headers(response.status_code, _perf_ns()):
            acc.on_http_error(response.read())
            return
        watchdog.arm(response, acc.remaining_s())
        for raw in response.iter_raw():
            if acc.on_bytes(raw, _perf_ns()):
                return
        acc.on_eof()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ----------------------------------------------------------------------------------- async client


class AsyncStreamingClient:
    """asyncio client for concurrent streams (bursts); the deadline is an ``asyncio.timeout``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeouts: Timeouts = Timeouts(),
        max_connections: int = 100,
    ) -> None:
        self.url = chat_url(base_url)
        self.models_url = _api_url(base_url, "models")
        self.timeouts = timeouts
        self.max_connections = max_connections
        self._client = httpx.AsyncClient(
            headers=_headers(api_key),
            timeout=_httpx_timeout(timeouts),
            limits=_limits(max_connections),
            trust_env=False,
        )

    async def chat(self, body: Mapping[str, Any]) -> RequestRecord:
        """Stream one chat completion; failures are reported in the record, never raised."""
        request = self._client.build_request("POST", self.url, content=_encode_body(body), headers=_JSON)
        acc = _StreamAccumulator(self.timeouts.deadline_s)
        acc.start()
        try:
            async with asyncio.timeout(self.timeouts.deadline_s):
                response = await self._client.send(request, stream=True)
                try:
                    await self._read(response, acc)
                finally:
                    await response.aclose()
        except TimeoutError:
            acc.on_deadline()
        except (_DeadlineExceeded, *_REQUEST_ERRORS) as exc:
            acc.on_exception(exc)
        return acc.to_record(_perf_ns())

    @staticmethod
    async def _read(response: httpx.Response, acc: _StreamAccumulator) -> None:
        if not acc.on_headers(response.status_code, _perf_ns()):
            acc.on_http_error(await response.aread())
            return
        async for raw in response.aiter_raw():
            if acc.on_bytes(raw, _perf_ns()):
                return
        acc.on_eof()

    async def prewarm(self, n: int) -> None:
        """Open up to ``n`` keep-alive connections now, so a burst's release does not pay connects.

        Sends ``n`` concurrent ``GET /v1/models`` (some engines have no ``/health``) and holds every
        response open until all have arrived, which forces ``n`` distinct connections; statuses and
        errors are ignored. Caveat, measured (real-engines.md): httpx's pool bookkeeping per request
        grows with the number of pooled connections, so at N≈80 a pre-filled pool dispatched *slower*
        than a cold one. Measure the dispatch spread with and without it before relying on it.
        """
        count = min(n, self.max_connections)
        if count <= 0:
            return
        opened = await asyncio.gather(*(self._open_models() for _ in range(count)), return_exceptions=True)
        responses = [r for r in opened if isinstance(r, httpx.Response)]
        await asyncio.gather(*(self._drain(r) for r in responses), return_exceptions=True)

    async def _open_models(self) -> httpx.Response:
        request = self._client.build_request("GET", self.models_url, headers={"Accept": "application/json"})
        return await self._client.send(request, stream=True)

    @staticmethod
    async def _drain(response: httpx.Response) -> None:
        """Read the body fully so the connection goes back to the pool instead of being closed."""
        try:
            await response.aread()
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

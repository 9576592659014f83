"""The streaming chat-completion client that times every SSE chunk and never raises for request failures.

:class:`StreamingClient` sends ``POST …/v1/chat/completions`` with ``stream: true`` and
``stream_options.include_usage: true`` and returns one immutable :class:`RequestRecord`. The clock
starts (``perf_counter_ns``) on an already open connection, right before the request is written; each
raw socket read is timestamped once and that time applies to every SSE payload it completes. Reading
raw bytes with our own splitter over a plain socket (h11 frames HTTP/1.1) keeps the client's CPU per
chunk at a stdlib reader's level (``benchmarks/sse_cpu.py``): on a small machine a busy client slows
the engine it measures (real-engines.md, last section).

The per-stream logic lives once in :class:`_StreamAccumulator`, shared with the burst dispatcher
(``pytest_asiai/wire/dispatch.py``), which drives its own sockets.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import h11

from pytest_asiai import __version__
from pytest_asiai.wire.records import CACHED_SOURCES, MAX_STORED_CONTENT, RequestRecord, ToolCall, as_count
from pytest_asiai.wire.sse import SSEDecoder, SSELineTooLong

__all__ = [
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
_MAX_ERROR_TEXT = 300
#: An HTTP error body is read up to this size, then the connection is dropped: a 300 MB error body
#: took the process to 766 MB when read whole (issue 14).
_MAX_ERROR_BODY = 64 * 1024
#: Largest response head accepted (h11 refuses a bigger one).
_MAX_HEAD = 64 * 1024
_READ_SIZE = 65536
_MAX_CHUNK_LINE = 4096
#: After ``[DONE]``, how long the body's end is awaited so the connection can be kept alive.
_DRAIN_NS = 1_000_000_000
_USER_AGENT = f"pytest-asiai/{__version__}"


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


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _engine_message(error: object) -> str:
    """The human message out of an engine's ``error`` value (object, string or anything else)."""
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or error.get("msg")
        if message:
            return str(message)
        return json.dumps(error)[:_MAX_ERROR_TEXT]
    return str(error)[:_MAX_ERROR_TEXT]


def _http_error_message(body: bytes) -> str:
    """``error.message`` (or FastAPI's ``detail``) from a JSON error body, else the body's start."""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:_MAX_ERROR_TEXT]
    if isinstance(parsed, dict):
        for key in ("error", "detail", "message"):
            if parsed.get(key):
                return _engine_message(parsed[key])
    return text[:_MAX_ERROR_TEXT]


def _error_kind(exc: Exception) -> str:
    """Map a failure after the connect to one of ``records.ERROR_KINDS``."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, h11.RemoteProtocolError | SSELineTooLong):
        return "protocol"
    return "disconnect"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
        self.fail("http", f"HTTP {self.status}: {_http_error_message(body)}")

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
            raise _DeadlineExceeded
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


# Public names for transports that drive their own sockets: pytest_asiai.wire.dispatch writes a burst's
# requests itself so they leave together, and must keep every per-stream rule of these clients.
StreamAccumulator = _StreamAccumulator
DeadlineExceeded = _DeadlineExceeded
encode_body = _encode_body
request_headers = _headers


# ------------------------------------------------------------------------------------ sync client


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the chat requests go, resolved once from the URL (the sync client and the burst dispatcher)."""

    host: str
    port: int
    target: str
    authority: str
    tls: bool

    @classmethod
    def for_chat(cls, base_url: str) -> Endpoint:
        """The chat completions endpoint of an engine's base URL."""
        return cls.of(chat_url(base_url))

    @classmethod
    def of(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r}: not an http(s) URL with a host")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)  # .port raises ValueError for a non-numeric port
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, port, target, parts.netloc.rpartition("@")[2], tls)


class _Connection:
    """One kept-alive HTTP/1.1 connection's socket, and whether it served a request before."""

    __slots__ = ("reused", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reused = False

    @classmethod
    def open(cls, endpoint: Endpoint, timeout_s: float, tls: ssl.SSLContext | None) -> _Connection:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=endpoint.host)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def idle_and_open(self) -> bool:
        """A pooled connection is usable when the server has neither closed it nor sent anything since.

        Checked before the clock starts: llama-server closes an idle kept-alive connection after 5 s,
        and discovering that after the send put a reconnect inside TTFT (+0.43 ms, issue 15).
        """
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class _Unanswered(Exception):
    """The server dropped a reused connection before any byte of a response: the request never ran."""


IN_FLIGHT: dict[int, tuple[str, _StreamAccumulator]] = {}
"""Each thread's chat request in flight: (chat URL, accumulator). Written before the clock starts and
after it stops, never in between; only read, from its own thread, by the live progress line
(pytest_asiai/runtime/progress.py), so the timing thread does no work for it."""


class StreamingClient:
    """Blocking client over plain sockets and h11: one request at a time per thread, kept-alive connections.

    Why not httpx here (issue 15, ``benchmarks/sse_cpu.py``): its per-read I/O machinery cost about 240
    µs of CPU per SSE line, 1.6× a stdlib ``http.client`` reader, on a 2-core machine where every
    client microsecond is taken from the engine. Here each read is one ``recv`` with a socket timeout
    computed from the overall deadline, so a server that trickles its headers, its error body or its
    stream can never hold a request past the deadline, and no watchdog thread is needed.

    The deadline counts from the send; opening the connection (bounded by ``connect_s``) happens
    before the clock starts, so every request ends within ``connect_s + deadline_s``.
    """

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
        self._max_idle = max_connections
        self._headers = {**_headers(api_key), **_JSON, "User-Agent": _USER_AGENT}
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._endpoint: Endpoint | None = None
        self._tls: ssl.SSLContext | None = None
        try:
            self._endpoint = Endpoint.of(self.url)
        except ValueError as exc:
            self._bad_url = str(exc)
        else:
            self._tls = ssl.create_default_context() if self._endpoint.tls else None

    def chat(self, body: Mapping[str, Any]) -> RequestRecord:
        """Stream one chat completion; failures are reported in the record, never raised.

        A kept-alive connection that the server closed while it sat in the pool is found before the
        clock starts. One closed in the instant between that check and the send fails before any
        response byte (llama-server b11434 closes a connection after its 5 s keep-alive timeout): that
        request never reached the engine, so it is sent once more on a fresh connection, with the
        clock restarted after the connect but the deadline kept, so a resent request still ends by
        ``connect_s + deadline_s``.

        The request sits in :data:`IN_FLIGHT` until it ends.
        """
        try:
            return self._chat(body)
        finally:
            IN_FLIGHT.pop(threading.get_ident(), None)

    def _chat(self, body: Mapping[str, Any]) -> RequestRecord:
        content = _encode_body(body)
        limit = _max_tokens(body)
        acc = _StreamAccumulator(self.timeouts.deadline_s, limit)
        IN_FLIGHT[threading.get_ident()] = (self.url, acc)
        conn = self._connect(acc, self.timeouts.connect_s)
        if conn is None:
            return acc.to_record(_perf_ns())
        deadline_ns = acc.start()
        try:
            self._exchange(conn, content, acc)
        except _Unanswered:
            acc = _StreamAccumulator(self.timeouts.deadline_s, limit)
            IN_FLIGHT[threading.get_ident()] = (self.url, acc)
            conn = self._connect(acc, max(0.0, (deadline_ns - _perf_ns()) / 1e9), fresh=True)
            if conn is None:
                return acc.to_record(_perf_ns())
            acc.start(deadline_ns)
            try:
                self._exchange(conn, content, acc)
            except _Unanswered:
                acc.fail("disconnect", "the server closed the connection without answering")
        return acc.to_record(_perf_ns())

    # ---- connections

    def _connect(self, acc: _StreamAccumulator, timeout_s: float, *, fresh: bool = False) -> _Connection | None:
        """An open connection (a pooled one that is still open, else a new one); None after a failure."""
        if not fresh:
            conn = self._pooled()
            if conn is not None:
                return conn
        if self._endpoint is None:
            acc.start()
            acc.fail("connect", self._bad_url)
            return None
        if timeout_s <= 0:
            acc.start()
            acc.on_deadline()
            return None
        try:
            return _Connection.open(self._endpoint, timeout_s, self._tls)
        except (OSError, ssl.SSLError) as exc:
            acc.start()
            acc.fail("connect", _describe(exc))
            return None

    def _pooled(self) -> _Connection | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if conn.idle_and_open():
                conn.reused = True
                return conn
            conn.close()

    def _release(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    # ---- one exchange

    def _exchange(self, conn: _Connection, content: bytes, acc: _StreamAccumulator) -> None:
        """Send the request and read its response into ``acc``; raises only :class:`_Unanswered`."""
        reader = _Reader(conn, acc)
        http = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        try:
            reader.run(http, self._request_bytes(http, content))
        except _Unanswered:
            conn.close()
            raise
        except _DeadlineExceeded as exc:
            acc.on_exception(exc)
        except TimeoutError:
            acc.on_deadline()
        except h11.RemoteProtocolError as exc:
            acc.on_exception(ConnectionError(str(exc)) if reader.eof else exc)
        except OSError as exc:
            acc.on_exception(exc)
        if reader.reusable and acc.error is None:
            self._release(conn)
        else:
            conn.close()

    def _request_bytes(self, http: h11.Connection, content: bytes) -> bytes:
        endpoint = self._endpoint
        assert endpoint is not None
        fields = [("Host", endpoint.authority), ("Content-Length", str(len(content))), *self._headers.items()]
        head = http.send(h11.Request(method="POST", target=endpoint.target, headers=fields)) or b""
        return head + (http.send(h11.Data(data=content)) or b"") + (http.send(h11.EndOfMessage()) or b"")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Body:
    """Frames a response body from raw reads: chunked, ``Content-Length`` or until the server closes.

    A lean decoder instead of h11's for the body: h11 cost about 17 µs of CPU per SSE event
    (measured offline on 2000 llama-server chunks), more than the rest of the per-line path. Only
    an unfinished size or CRLF line is ever buffered, so memory stays bounded whatever the server sends.
    """

    __slots__ = ("_buf", "_in_trailer", "_need_crlf", "done", "mode", "remaining")

    def __init__(self, mode: str, length: int = 0) -> None:
        self.mode = mode
        """``chunked``, ``length`` or ``close``."""
        self.remaining = length
        """Bytes left in the body (``length``) or in the current chunk (``chunked``)."""
        self.done = mode == "length" and length == 0
        self._buf = b""
        self._need_crlf = False
        self._in_trailer = False

    def feed(self, data: bytes) -> bytes:
        """The body bytes in ``data`` (possibly none); sets ``done`` at the body's end."""
        if self.mode == "chunked":
            return self._chunked(self._buf + data if self._buf else data)
        if self.mode == "close":
            return data
        piece = data[: self.remaining]
        self.remaining -= len(piece)
        self.done = self.remaining == 0
        return piece

    def _chunked(self, buf: bytes) -> bytes:
        out: list[bytes] = []
        pos, end = 0, len(buf)
        while pos < end and not self.done:
            if self.remaining:
                piece = buf[pos : pos + self.remaining]
                out.append(piece)
                pos += len(piece)
                self.remaining -= len(piece)
                self._need_crlf = self.remaining == 0
                continue
            if self._need_crlf:
                if end - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise h11.RemoteProtocolError("missing CRLF after a chunk")
                pos += 2
                self._need_crlf = False
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if end - pos > _MAX_CHUNK_LINE:
                    raise h11.RemoteProtocolError("chunk size line too long")
                break
            line, pos = buf[pos:eol], eol + 2
            if self._in_trailer:
                self.done = not line
            else:
                self._size_line(line)
        self._buf = buf[pos:]
        return out[0] if len(out) == 1 else b"".join(out)

    def _size_line(self, line: bytes) -> None:
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise h11.RemoteProtocolError(f"bad chunk size line {line[:40]!r}") from None
        if size < 0:
            raise h11.RemoteProtocolError(f"bad chunk size line {line[:40]!r}")
        self.remaining = size
        self._in_trailer = size == 0


def _framing(response: h11.Response) -> tuple[_Body, bool]:
    """How the body of ``response`` is delimited, and whether the connection may be reused after it."""
    length: int | None = None
    keep_alive = response.http_version == b"1.1"
    chunked = False
    for name, value in response.headers:
        if name == b"transfer-encoding":
            chunked = value.lower().endswith(b"chunked")
        elif name == b"content-length":
            length = int(value)  # h11 validated it
        elif name == b"connection" and b"close" in value.lower():
            keep_alive = False
    if chunked:
        return _Body("chunked"), keep_alive
    if length is not None:
        return _Body("length", length), keep_alive
    return _Body("close"), False


class _Reader:
    """Drives one request/response exchange on a connection, every blocking call bounded by the deadline.

    h11 writes the request and parses the response head (its size capped, 1xx heads skipped); the
    body is framed by :class:`_Body`.
    """

    __slots__ = ("acc", "conn", "eof", "got_bytes", "reusable")

    def __init__(self, conn: _Connection, acc: _StreamAccumulator) -> None:
        self.conn = conn
        self.acc = acc
        self.got_bytes = False
        self.eof = False
        self.reusable = False

    def _timeout(self) -> float:
        remaining = (self.acc.deadline_ns - _perf_ns()) / 1e9
        if remaining <= 0:
            raise _DeadlineExceeded
        return remaining

    def run(self, http: h11.Connection, request: bytes) -> None:
        sock, acc = self.conn.sock, self.acc
        try:
            sock.settimeout(self._timeout())
            sock.sendall(request)
        except (ConnectionError, ssl.SSLError) as exc:
            if self.conn.reused:
                raise _Unanswered from exc
            raise
        response, pending = self._head(sock, http)
        body, keep_alive = _framing(response)
        if not acc.on_headers(response.status_code, _perf_ns()):
            self._error_body(sock, body, pending)
            return
        self._stream(sock, body, pending)
        self.reusable = body.done and body.mode != "close" and keep_alive

    def _recv(self, sock: socket.socket) -> bytes:
        """One read before the response head ended; a reused connection found dead is :class:`_Unanswered`."""
        sock.settimeout(self._timeout())
        try:
            data = sock.recv(_READ_SIZE)
        except ConnectionError as exc:
            if not self.got_bytes and self.conn.reused:
                raise _Unanswered from exc
            raise
        if not data:
            if not self.got_bytes and self.conn.reused:
                raise _Unanswered
            self.eof = True
        self.got_bytes = True
        return data

    def _head(self, sock: socket.socket, http: h11.Connection) -> tuple[h11.Response, bytes]:
        """The final response head (1xx heads skipped; h11 caps its size) and the body bytes after it."""
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(self._recv(sock))
            elif isinstance(event, h11.Response):
                return event, http.trailing_data[0]
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection before the response headers")

    def _error_body(self, sock: socket.socket, body: _Body, pending: bytes) -> None:
        """An HTTP error: read at most ``_MAX_ERROR_BODY`` bytes of its body, until the deadline at most."""
        parts = [body.feed(pending)] if pending else []
        size = len(parts[0]) if parts else 0
        try:
            while size < _MAX_ERROR_BODY and not body.done:
                data = self._recv(sock)
                if not data:
                    break
                piece = body.feed(data)
                parts.append(piece)
                size += len(piece)
        except (_DeadlineExceeded, TimeoutError, OSError, h11.RemoteProtocolError):
            pass  # the status already says the request failed; keep what the body said so far
        self.acc.on_http_error(b"".join(parts)[:_MAX_ERROR_BODY])

    def _stream(self, sock: socket.socket, body: _Body, pending: bytes) -> None:
        """The SSE body: every read timestamped once and fed to the accumulator."""
        acc = self.acc
        t_ns = _perf_ns()
        if pending and acc.on_bytes(body.feed(pending), t_ns):
            return
        recv, settimeout, feed, on_bytes = sock.recv, sock.settimeout, body.feed, acc.on_bytes
        deadline_ns = acc.deadline_ns
        while not body.done:
            if acc.done_ns is not None:
                self._drain(sock, body)
                return
            remaining = deadline_ns - _perf_ns()
            if remaining <= 0:
                raise _DeadlineExceeded
            settimeout(remaining / 1e9)
            data = recv(_READ_SIZE)
            t_ns = _perf_ns()
            if not data:
                if body.mode != "close":
                    raise ConnectionError("the server closed the connection before the end of the body")
                break
            piece = feed(data)
            if piece and on_bytes(piece, t_ns):
                return
        acc.on_eof()

    def _drain(self, sock: socket.socket, body: _Body) -> None:
        """After [DONE]: read the body's end briefly so the connection can be kept alive."""
        deadline_ns = min(self.acc.deadline_ns, _perf_ns() + _DRAIN_NS)
        try:
            while not body.done and body.mode != "close":
                remaining = (deadline_ns - _perf_ns()) / 1e9
                if remaining <= 0:
                    return
                sock.settimeout(remaining)
                data = sock.recv(_READ_SIZE)
                if not data:
                    return
                body.feed(data)
        except (OSError, h11.RemoteProtocolError):
            return


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    """The output limit a request body sets, if any."""
    for key in ("max_tokens", "max_completion_tokens"):
        value = as_count(body.get(key))
        if value is not None:
            return value
    return None

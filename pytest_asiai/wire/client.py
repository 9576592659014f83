"""The streaming chat-completion client that times every SSE chunk and never raises for request failures.

:class:`StreamingClient` sends ``POST …/v1/chat/completions`` with ``stream: true`` and
``stream_options.include_usage: true`` and returns one immutable :class:`RequestRecord`. The clock
starts (``perf_counter_ns``) on an already open connection, right before the request is written; each
raw socket read is timestamped once and that time applies to every SSE payload it completes. Reading
raw bytes with our own splitter over a plain socket (h11 frames HTTP/1.1) keeps the client's CPU per
chunk at a stdlib reader's level (``benchmarks/sse_cpu.py``): on a small machine a busy client slows
the engine it measures (docs/real-engines.md).

The client is split by concern: the per-stream rules (tokens, usage, classification) live once in
:class:`~pytest_asiai.wire.stream.StreamAccumulator`, shared with the burst dispatcher
(pytest_asiai/wire/dispatch.py), which drives its own sockets; one exchange on a connection is
pytest_asiai/wire/exchange.py, body framing pytest_asiai/wire/framing.py, URLs and sockets
pytest_asiai/wire/http.py. This module owns the connection pool and the one keep-alive policy (the
resend-once of :meth:`StreamingClient.chat`); :func:`client_for` is the one way a suite gets a
client for its case, with :meth:`Timeouts.for_case`.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Protocol, Self

import h11

from pytest_asiai import __version__
from pytest_asiai.wire.exchange import Reader, Unanswered
from pytest_asiai.wire.failures import describe
from pytest_asiai.wire.framing import Body
from pytest_asiai.wire.http import Connection, Endpoint, chat_url, encode_body, request_headers
from pytest_asiai.wire.records import RequestRecord, as_count
from pytest_asiai.wire.stream import DeadlineExceeded, StreamAccumulator

__all__ = [
    "IN_FLIGHT",
    "Body",
    "DeadlineExceeded",
    "Endpoint",
    "StreamAccumulator",
    "StreamingClient",
    "Timeouts",
    "chat_url",
    "client_for",
    "encode_body",
    "request_headers",
]

_perf_ns = time.perf_counter_ns
#: FastAPI servers (llama-cpp-python, vLLM-MLX, oMLX, ...) refuse a JSON body sent without it (HTTP 500/422).
_JSON = {"Content-Type": "application/json"}
#: Largest response head accepted (h11 refuses a bigger one).
_MAX_HEAD = 64 * 1024
_USER_AGENT = f"pytest-asiai/{__version__}"


class _Case(Protocol):
    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def deadline_s(self) -> float: ...
    @property
    def api_key(self) -> str | None: ...


class _Handle(Protocol):
    """What :func:`client_for` reads from an engine handle (pytest_asiai/engines/handle.py)."""

    @property
    def case(self) -> _Case: ...
    def ensure_running(self) -> str: ...


@dataclass(frozen=True)
class Timeouts:
    """How long a request may take.

    ``deadline_s`` bounds the whole request (send, prefill, every token, end of stream), not each
    read: a server that drips a byte per second would otherwise never time out.
    """

    connect_s: float = 10.0
    deadline_s: float = 600.0

    @classmethod
    def for_case(cls, case: _Case) -> Timeouts:
        """A case's timeouts (engines.toml ``connect_timeout_s`` and ``deadline_s``): the one place they are read."""
        return cls(connect_s=case.connect_timeout_s, deadline_s=case.deadline_s)


IN_FLIGHT: dict[int, tuple[str, StreamAccumulator]] = {}
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
        self._headers = {**request_headers(api_key), **_JSON, "User-Agent": _USER_AGENT}
        self._idle: list[Connection] = []
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

        The one keep-alive policy: a kept-alive connection that the server closed while it sat in the
        pool is found before the clock starts. One closed in the instant between that check and the
        send fails before any response byte (llama-server b11434 closes a connection after its 5 s
        keep-alive timeout): that request never reached the engine, so it is sent once more on a
        fresh connection (the record says ``resent``), with the clock restarted after the connect but
        the deadline kept, so a resent request still ends by ``connect_s + deadline_s``.

        The request sits in :data:`IN_FLIGHT` until it ends.
        """
        return self._send(body, None)[0]

    def cancel(self, body: Mapping[str, Any], after_chunks: int) -> tuple[RequestRecord, bool]:
        """Stream ``body`` and close the connection after ``after_chunks`` token-bearing chunks.

        What a client does when its user presses stop: the engine sees the socket close mid-stream.
        Returns the record (a cut stream fails as ``disconnect``, its TTFT and chunks measured as
        any other) and whether the stream was cut (False: it ended, or failed, before the cut).
        """
        return self._send(body, after_chunks)

    def _send(self, body: Mapping[str, Any], cut_after: int | None) -> tuple[RequestRecord, bool]:
        try:
            return self._attempts(body, cut_after)
        finally:
            IN_FLIGHT.pop(threading.get_ident(), None)

    def _attempts(self, body: Mapping[str, Any], cut_after: int | None) -> tuple[RequestRecord, bool]:
        content = encode_body(body)
        limit = _max_tokens(body)
        acc = StreamAccumulator(self.timeouts.deadline_s, limit)
        IN_FLIGHT[threading.get_ident()] = (self.url, acc)
        conn = self._connect(acc, self.timeouts.connect_s)
        if conn is None:
            return acc.to_record(_perf_ns()), False
        deadline_ns = acc.start()
        try:
            cut = self._exchange(conn, content, acc, cut_after)
        except Unanswered:
            pass
        else:
            return acc.to_record(_perf_ns()), cut
        acc = StreamAccumulator(self.timeouts.deadline_s, limit)
        IN_FLIGHT[threading.get_ident()] = (self.url, acc)
        conn = self._connect(acc, max(0.0, (deadline_ns - _perf_ns()) / 1e9), fresh=True)
        if conn is None:
            return replace(acc.to_record(_perf_ns()), resent=True), False
        acc.start(deadline_ns)
        try:
            cut = self._exchange(conn, content, acc, cut_after)
        except Unanswered:
            acc.fail("disconnect", "the server closed the connection without answering")
            cut = False
        return replace(acc.to_record(_perf_ns()), resent=True), cut

    # ---- connections

    def _connect(self, acc: StreamAccumulator, timeout_s: float, *, fresh: bool = False) -> Connection | None:
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
            return Connection.open(self._endpoint, timeout_s, self._tls)
        except (OSError, ssl.SSLError) as exc:
            acc.start()
            acc.fail("connect", describe(exc))
            return None

    def _pooled(self) -> Connection | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if conn.idle_and_open():
                conn.reused = True
                return conn
            conn.close()

    def _release(self, conn: Connection) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    # ---- one exchange

    def _exchange(self, conn: Connection, content: bytes, acc: StreamAccumulator, cut_after: int | None) -> bool:
        """Send the request and read its response into ``acc``; True when the stream was cut.

        Raises only :class:`Unanswered`.
        """
        reader = Reader(conn, acc, cut_after)
        http = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        try:
            reader.run(http, self._request_bytes(http, content))
        except Unanswered:
            conn.close()
            raise
        except DeadlineExceeded as exc:
            acc.on_exception(exc)
        except TimeoutError:
            acc.on_deadline()
        except h11.RemoteProtocolError as exc:
            acc.on_exception(ConnectionError(str(exc)) if reader.eof else exc)
        except OSError as exc:
            acc.on_exception(exc)
        if reader.cut:
            acc.fail("disconnect", f"cancelled by the client after {cut_after} token chunks")
        if reader.reusable and acc.error is None:
            self._release(conn)
        else:
            conn.close()
        return reader.cut

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


def client_for(handle: _Handle) -> StreamingClient:
    """The client of a case's engine (started first if managed), with the case's timeouts and API key."""
    case = handle.case
    return StreamingClient(handle.ensure_running(), api_key=case.api_key, timeouts=Timeouts.for_case(case))


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    """The output limit a request body sets, if any."""
    for key in ("max_tokens", "max_completion_tokens"):
        value = as_count(body.get(key))
        if value is not None:
            return value
    return None

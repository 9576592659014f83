"""Burst dispatch: every call's connection is opened before the release, every request is written at it.

Why not the httpx client here: a burst is only a burst if its requests leave together, and measured on
this 2-core machine (docs/real-engines.md; ``benchmarks/burst_dispatch.py``) httpx's
``AsyncClient`` writes the last of 80 requests 23-58 ms after the release, because each request pays
httpx's and httpcore's per-request machinery (request building, pool bookkeeping, anyio) in turn on
one event loop; a pool pre-filled with 80 connections is slower still. Here the work that costs time is
done before the release: each call gets its own connection (``asyncio`` protocol, no pool) and its
request is serialized to bytes with h11, httpx's own HTTP/1.1 parser. The release is then a single
synchronous loop of socket writes, so no call can be scheduled late by the event loop.

Responses are parsed by h11 and fed to the clients' stream accumulator, so a burst call's record
follows exactly the same rules as any other request (TTFT, usage, errors, deadline); each call has its
own deadline counted from its own send. Each connection is closed once its response ended.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h11

from pytest_asiai import __version__
from pytest_asiai.wire.client import Timeouts
from pytest_asiai.wire.http import Endpoint, encode_body, request_headers
from pytest_asiai.wire.records import RequestRecord
from pytest_asiai.wire.stream import DeadlineExceeded, StreamAccumulator

__all__ = ["BurstDispatch", "DispatchedCall", "Endpoint", "dispatch", "run_dispatch"]

_perf_ns = time.perf_counter_ns
_MAX_ERROR_BODY = 64 * 1024
_DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True, slots=True)
class DispatchedCall:
    """One call of a burst: its record, and when its request left (``perf_counter_ns``)."""

    index: int
    start_ns: int
    """When the send began (the clock of the record's offsets: its ``ttft_ms`` counts from here)."""
    sent_ns: int | None
    """Right after the whole request was handed to the kernel; ``None`` when it was never sent."""
    end_ns: int
    """When the call ended (end of stream, failure or deadline)."""
    record: RequestRecord


@dataclass(frozen=True, slots=True)
class BurstDispatch:
    """What one released burst measured; every ``*_ns`` is a ``perf_counter_ns`` value."""

    release_ns: int
    released_at: float
    """Wall-clock time of the release (epoch seconds), for reports."""
    connect_ms: float
    """Time taken to open every connection before the release (not part of any call's latency)."""
    calls: tuple[DispatchedCall, ...]

    def offset_ms(self, t_ns: int | None) -> float | None:
        """Milliseconds from the release to ``t_ns``."""
        return None if t_ns is None else (t_ns - self.release_ns) / 1e6


def _serialize(conn: h11.Connection, endpoint: Endpoint, headers: Mapping[str, str], body: bytes) -> bytes:
    """The full HTTP/1.1 request, serialized by h11 before the release so the release only writes it."""
    fields = [
        ("Host", endpoint.authority),
        ("User-Agent", f"pytest-asiai/{__version__}"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        *headers.items(),
    ]
    head = conn.send(h11.Request(method="POST", target=endpoint.target, headers=fields)) or b""
    data = conn.send(h11.Data(data=body)) or b""
    return head + data + (conn.send(h11.EndOfMessage()) or b"")


Request = tuple[Endpoint, Mapping[str, str], bytes]
"""Where a call goes, its headers and its encoded JSON body."""


class _Call(asyncio.Protocol):
    """One burst call on its own connection: written at the release, read by protocol callbacks.

    Reading in ``data_received`` (no task per call, no stream reader) keeps the client's CPU per chunk
    low while 80 streams arrive at once; each read is timestamped once, as in the clients.
    """

    def __init__(self, index: int, request: Request, deadline_s: float, done: asyncio.Future[None]) -> None:
        self.index = index
        self.done = done
        self.acc = StreamAccumulator(deadline_s)
        self._http = h11.Connection(our_role=h11.CLIENT)
        self._request = _serialize(self._http, *request)
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._error_body: list[bytes] | None = None
        self._error_size = 0
        self._writing = False
        self.sent_ns: int | None = None
        self.end_ns = 0
        self.record: RequestRecord | None = None

    # ---- before the release

    async def connect(self, endpoint: Endpoint, connect_s: float, tls: ssl.SSLContext | None) -> None:
        """Open this call's connection; a failure is kept and reported when the burst is released."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_s):
                await loop.create_connection(
                    lambda: self, endpoint.host, endpoint.port, ssl=tls, server_hostname=endpoint.host if tls else None
                )
        except (OSError, TimeoutError) as exc:
            self.acc.fail("connect", f"{type(exc).__name__}: {exc}".rstrip(": "))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        # Any byte left in asyncio's buffer pauses us and its drain resumes us: that resume is the
        # exact moment a large request (one that did not fit the socket buffer) finished leaving.
        transport.set_write_buffer_limits(high=0, low=0)

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        if self._writing:
            self._writing = False
            self.sent_ns = _perf_ns()

    # ---- the release

    def send(self) -> None:
        """Write the request now; must stay cheap, it runs once per call inside the release loop."""
        self.acc.start()
        transport = self._transport
        if transport is None or transport.is_closing():
            self.acc.fail("connect", "connection closed before the burst was released")
            self._finish()
            return
        transport.write(self._request)
        if transport.get_write_buffer_size():
            self._writing = True
        else:
            self.sent_ns = _perf_ns()

    def arm_deadline(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start this call's own deadline (armed after the release loop, to keep that loop tight)."""
        if self.record is None:
            self._timer = loop.call_later(self.acc.remaining_s(), self._on_deadline)

    # ---- the response

    def data_received(self, data: bytes) -> None:
        t_ns = _perf_ns()
        if self.record is not None:
            return
        try:
            self._http.receive_data(data)
            self._events(t_ns)
        except DeadlineExceeded as exc:
            self.acc.on_exception(exc)
            self._finish()
        except h11.RemoteProtocolError as exc:
            self.acc.fail("protocol", f"invalid HTTP response: {exc}")
            self._finish()

    def eof_received(self) -> bool | None:
        self._on_closed(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_closed(exc)

    def _on_closed(self, exc: Exception | None) -> None:
        """The server closed the connection: it ends an until-close body, or cuts a stream short."""
        if self.record is not None:
            return
        if exc is None:
            try:
                self._http.receive_data(b"")
                self._events(_perf_ns())
            except (h11.RemoteProtocolError, DeadlineExceeded) as error:
                exc = ConnectionError(str(error)) if isinstance(error, h11.RemoteProtocolError) else error
        if self.record is None:
            self.acc.on_exception(exc or ConnectionError("connection closed before the response ended"))
            self._finish()

    def _events(self, t_ns: int) -> None:
        """Apply every event h11 can parse from what arrived; finish the call at its end."""
        while self.record is None:
            event = self._http.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                if not self.acc.on_headers(event.status_code, t_ns):
                    self._error_body = []
            elif isinstance(event, h11.Data):
                self._on_data(bytes(event.data), t_ns)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self._on_end()

    def _on_data(self, data: bytes, t_ns: int) -> None:
        if self._error_body is not None:
            if self._error_size < _MAX_ERROR_BODY:
                self._error_body.append(data)
                self._error_size += len(data)
            return
        # After [DONE] nothing in the body matters, and the connection is not reused.
        if self.acc.on_bytes(data, t_ns) or self.acc.done_ns is not None:
            self._finish()

    def _on_end(self) -> None:
        if self._error_body is not None:
            self.acc.on_http_error(b"".join(self._error_body))
        else:
            self.acc.on_eof()
        self._finish()

    def _on_deadline(self) -> None:
        self._timer = None
        if self.record is None:
            self.acc.on_deadline()
            self._finish()

    def _finish(self) -> None:
        """Freeze the record, close the connection (frees the server's HTTP thread) and wake the burst."""
        if self.record is not None:
            return
        self.end_ns = _perf_ns()
        self.record = self.acc.to_record(self.end_ns)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            if self.acc.error is not None:
                self._transport.abort()
            else:
                self._transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def result(self) -> DispatchedCall:
        assert self.record is not None, "result() before the call ended"
        return DispatchedCall(self.index, self.acc.t0_ns, self.sent_ns, self.end_ns, self.record)

    def abort(self) -> None:
        """Drop the connection (the burst was cancelled)."""
        if self._transport is not None:
            self._transport.abort()


async def dispatch(
    base_url: str,
    bodies: Sequence[Mapping[str, Any]],
    *,
    api_key: str | None = None,
    timeouts: Timeouts = _DEFAULT_TIMEOUTS,
) -> BurstDispatch:
    """Prepare every call (request bytes, open connection), release them at once, wait for all to end."""
    loop = asyncio.get_running_loop()
    endpoint = Endpoint.for_chat(base_url)
    headers = request_headers(api_key)
    calls = [
        _Call(i, (endpoint, headers, encode_body(body)), timeouts.deadline_s, loop.create_future())
        for i, body in enumerate(bodies)
    ]
    tls = ssl.create_default_context() if endpoint.tls else None
    try:
        t_connect = _perf_ns()
        await asyncio.gather(*(c.connect(endpoint, timeouts.connect_s, tls) for c in calls))
        connect_ms = (_perf_ns() - t_connect) / 1e6
        released_at, release_ns = time.time(), _perf_ns()
        for call in calls:
            call.send()
        for call in calls:
            call.arm_deadline(loop)
        await asyncio.gather(*(c.done for c in calls))
    except BaseException:
        for call in calls:
            call.abort()
        raise
    return BurstDispatch(release_ns, released_at, connect_ms, tuple(c.result() for c in calls))


def run_dispatch(
    base_url: str,
    bodies: Sequence[Mapping[str, Any]],
    *,
    api_key: str | None = None,
    timeouts: Timeouts = _DEFAULT_TIMEOUTS,
) -> BurstDispatch:
    """:func:`dispatch` from synchronous code (a test), on its own event loop."""
    return asyncio.run(dispatch(base_url, bodies, api_key=api_key, timeouts=timeouts))

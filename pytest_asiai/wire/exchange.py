"""One request/response exchange on an open connection, every blocking call bounded by the deadline.

The client (pytest_asiai/wire/client.py) owns connections and the keep-alive policy; this module
writes one request and reads its response into a stream accumulator (pytest_asiai/wire/stream.py).
"""

from __future__ import annotations

import socket
import ssl
import time

import h11

from pytest_asiai.wire.framing import Body, framing
from pytest_asiai.wire.http import Connection
from pytest_asiai.wire.stream import DeadlineExceeded, StreamAccumulator

__all__ = ["Reader", "Unanswered"]

_perf_ns = time.perf_counter_ns
#: An HTTP error body is read up to this size, then the connection is dropped: a 300 MB error body
#: took the process to 766 MB when read whole (issue 14).
_MAX_ERROR_BODY = 64 * 1024
_READ_SIZE = 65536
#: After ``[DONE]``, how long the body's end is awaited so the connection can be kept alive.
_DRAIN_NS = 1_000_000_000


class Unanswered(Exception):
    """The server dropped a reused connection before any byte of a response: the request never ran."""


class Reader:
    """Drives one request/response exchange on a connection, every blocking call bounded by the deadline.

    h11 writes the request and parses the response head (its size capped, 1xx heads skipped); the
    body is framed by :class:`Body`. With ``cut_after`` the stream is abandoned once that many
    token-bearing chunks arrived (``cut`` says it was): what a user's stop button does.
    """

    __slots__ = ("acc", "conn", "cut", "cut_after", "eof", "got_bytes", "reusable")

    def __init__(self, conn: Connection, acc: StreamAccumulator, cut_after: int | None = None) -> None:
        self.conn = conn
        self.acc = acc
        self.cut_after = cut_after
        self.cut = False
        self.got_bytes = False
        self.eof = False
        self.reusable = False

    def _cut_now(self) -> bool:
        """True (and ``cut`` set) when the stream has the token chunks it was to be cut after."""
        acc, limit = self.acc, self.cut_after
        self.cut = limit is not None and acc.done_ns is None and acc.error is None and len(acc.token_ns) >= limit
        return self.cut

    def _timeout(self) -> float:
        remaining = (self.acc.deadline_ns - _perf_ns()) / 1e9
        if remaining <= 0:
            raise DeadlineExceeded
        return remaining

    def run(self, http: h11.Connection, request: bytes) -> None:
        sock, acc = self.conn.sock, self.acc
        try:
            sock.settimeout(self._timeout())
            sock.sendall(request)
        except (ConnectionError, ssl.SSLError) as exc:
            if self.conn.reused:
                raise Unanswered from exc
            raise
        response, pending = self._head(sock, http)
        body, keep_alive = framing(response)
        if not acc.on_headers(response.status_code, _perf_ns()):
            self._error_body(sock, body, pending)
            return
        self._stream(sock, body, pending)
        self.reusable = body.done and body.mode != "close" and keep_alive

    def _recv(self, sock: socket.socket) -> bytes:
        """One read before the response head ended; a reused connection found dead is :class:`Unanswered`."""
        sock.settimeout(self._timeout())
        try:
            data = sock.recv(_READ_SIZE)
        except ConnectionError as exc:
            if not self.got_bytes and self.conn.reused:
                raise Unanswered from exc
            raise
        if not data:
            if not self.got_bytes and self.conn.reused:
                raise Unanswered
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

    def _error_body(self, sock: socket.socket, body: Body, pending: bytes) -> None:
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
        except (DeadlineExceeded, TimeoutError, OSError, h11.RemoteProtocolError):
            pass  # the status already says the request failed; keep what the body said so far
        self.acc.on_http_error(b"".join(parts)[:_MAX_ERROR_BODY])

    def _stream(self, sock: socket.socket, body: Body, pending: bytes) -> None:
        """The SSE body: every read timestamped once and fed to the accumulator."""
        acc = self.acc
        t_ns = _perf_ns()
        if pending and acc.on_bytes(body.feed(pending), t_ns):
            return
        if self.cut_after is not None and self._cut_now():
            return
        recv, settimeout, feed, on_bytes = sock.recv, sock.settimeout, body.feed, acc.on_bytes
        deadline_ns = acc.deadline_ns
        while not body.done:
            if acc.done_ns is not None:
                self._drain(sock, body)
                return
            remaining = deadline_ns - _perf_ns()
            if remaining <= 0:
                raise DeadlineExceeded
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
            if self.cut_after is not None and self._cut_now():
                return
        acc.on_eof()

    def _drain(self, sock: socket.socket, body: Body) -> None:
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

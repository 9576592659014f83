"""A tiny loopback HTTP server that misbehaves on purpose: it answers every request with a script.

A script is a sequence of steps played on the connection after the request was read: ``bytes`` are
written, a ``float`` is a pause in seconds, :data:`DROP` closes the connection, and a generator
may stand for them so a 300 MB body is produced 64 KiB at a time (the server stays small). After
the script the connection is kept open without a word (``hold=True``, a stall) or closed. Used by
tests/test_client_hostile.py and benchmarks/client_limits.py to check that the client gives up by
its deadline and reads boundedly (issue 14 item 3), and by tests/test_client_quirks.py to replay
real servers' captured bytes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Self


class Drop:
    """A step that closes the connection at once, whatever ``keep_alive`` says."""


DROP = Drop()
Step = bytes | float | Drop
Script = Callable[[int], Iterable[Step]]
"""The steps to play for the n-th request (0-based) the server reads."""

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(data: bytes) -> bytes:
    """One HTTP/1.1 chunk carrying ``data``."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def sse_response(body: bytes, *, pieces: Iterable[bytes] | None = None) -> list[Step]:
    """A complete 200 ``text/event-stream`` response with ``body`` (or its ``pieces``) as chunks."""
    return [OK_HEAD, *(chunked(p) for p in (pieces if pieces is not None else [body]) if p), LAST_CHUNK]


def repeated(block: bytes, total: int) -> Iterator[bytes]:
    """``total`` bytes made of ``block``, produced lazily."""
    sent = 0
    while sent < total:
        piece = block[: total - sent]
        sent += len(piece)
        yield piece


def trickle(data: bytes, size: int, pause_s: float) -> Iterator[Step]:
    """``data`` written ``size`` bytes at a time with a pause after each write."""
    for i in range(0, len(data), size):
        yield data[i : i + size]
        yield pause_s


class HostileServer:
    """Serves ``script`` on ``127.0.0.1``; each connection in its own thread, stopped on exit."""

    def __init__(self, script: Script, *, hold: bool = False, keep_alive: bool = False) -> None:
        self.script = script
        self.hold = hold
        self.keep_alive = keep_alive
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
        self._thread.join(5)

    def _accept(self) -> None:
        self._listener.settimeout(0.02)  # a blocked accept() does not wake when the listener closes
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while self._read_request(conn):
                with self._lock:
                    n = len(self.requests) - 1
                for step in self.script(n):
                    if self._stop.is_set():
                        return
                    if isinstance(step, float):
                        self._stop.wait(step)
                    elif isinstance(step, Drop):
                        return
                    else:
                        conn.sendall(step)
                if not self.keep_alive:
                    break
            if self.hold:
                self._stop.wait()
        except OSError:
            pass  # the client gave up and closed: that is what most scripts test
        finally:
            conn.close()

    def _read_request(self, conn: socket.socket) -> bool:
        """Read one request (head plus Content-Length body); False when the client closed first."""
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return False
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            piece = conn.recv(65536)
            if not piece:
                return False
            body += piece
        with self._lock:
            self.requests.append(head + b"\r\n\r\n" + body)
        return True

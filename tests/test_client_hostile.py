"""The client against servers that trickle, stall or flood (issue 14 item 3): every request ends by its
deadline (plus the connect), error bodies and SSE lines are read up to a cap, a resend keeps the
deadline, and opening a connection is never inside TTFT (issue 15 item 5c)."""

from __future__ import annotations

import socket
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hostile_server import DROP, LAST_CHUNK, OK_HEAD, HostileServer, Step, chunked, repeated, sse_response, trickle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_asiai.wire.client import StreamingClient, Timeouts
from pytest_asiai.wire.records import RequestRecord

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
STREAM = (
    b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
    b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
    b"data: [DONE]\n\n"
)
#: Room for a loaded 2-core machine (six helpers, CI) on top of the deadline.
MARGIN_S = 1.0
MB = 1024 * 1024


def timed(base_url: str, deadline_s: float, connect_s: float = 1.0) -> tuple[RequestRecord, float]:
    started = time.perf_counter()
    with StreamingClient(base_url, timeouts=Timeouts(connect_s=connect_s, deadline_s=deadline_s)) as client:
        record = client.chat(BODY)
    return record, time.perf_counter() - started


def traced(base_url: str, deadline_s: float) -> tuple[RequestRecord, int]:
    """The record and the peak of Python allocations while it was measured."""
    tracemalloc.start()
    try:
        record, _ = timed(base_url, deadline_s)
        return record, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_trickled_headers_end_by_the_deadline() -> None:
    """Issue 14: a server trickling its header bytes held a request 60 s against deadline_s = 3."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Pad: " + b"a" * 60 + b"\r\n\r\n"
    with HostileServer(lambda _: trickle(head, 1, 0.05)) as server:  # the head alone takes ~7 s
        record, elapsed = timed(server.base_url, 0.5)
    assert record.error_kind == "timeout", record.error
    assert record.status is None and record.headers_ms is None
    assert elapsed < 0.5 + MARGIN_S


def test_trickled_error_body_ends_by_the_deadline() -> None:
    """Issue 14: a 500 whose body trickles held a request 63 s; the status and the start of the body stay."""
    body = b'{"error":{"message":"out of memory"}}' + b" " * 100
    head = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % len(body)
    with HostileServer(lambda _: [head, *trickle(body, 2, 0.05)]) as server:  # the body takes ~3.5 s
        record, elapsed = timed(server.base_url, 0.5)
    assert elapsed < 0.5 + MARGIN_S
    assert record.status == 500 and record.error_kind == "http"
    assert record.error is not None and record.error.startswith("HTTP 500: ")


def test_huge_error_body_is_read_up_to_a_cap() -> None:
    """Issue 14: a 500 with a 300 MB body took the process to 766 MB; here 100 MB must stay unread."""
    total = 100 * MB
    head = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % total

    def script(_: int) -> Iterator[Step]:
        yield head
        yield b'{"error":{"message":"boom"'
        yield from repeated(b" " * 65536, total - 26)

    with HostileServer(script) as server:
        record, peak = traced(server.base_url, 10.0)
    assert record.status == 500 and record.error_kind == "http", record.error
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MB"


def test_huge_sse_line_is_refused_with_bounded_memory() -> None:
    """Issue 14: a 50 MB SSE line took 207 MB; a 20 MB one must fail as a protocol error, boundedly."""

    def script(_: int) -> Iterator[Step]:
        yield OK_HEAD
        yield chunked(b'data: {"choices":[{"delta":{"content":"')
        for piece in repeated(b"x" * 65536, 20 * MB):
            yield chunked(piece)
        yield LAST_CHUNK

    with HostileServer(script) as server:
        record, peak = traced(server.base_url, 10.0)
    assert record.error_kind == "protocol", record.error
    assert record.error is not None and "SSE line longer than" in record.error
    assert peak < 24 * MB, f"peak {peak / MB:.1f} MB"


def test_resend_on_a_dropped_connection_keeps_the_first_deadline() -> None:
    """The resend-once after a dropped kept-alive connection must not grant a second deadline."""

    def script(n: int) -> list[Step]:
        if n == 0:
            return sse_response(STREAM)
        if n == 1:
            return [0.9, DROP]  # read the second request, say nothing, then drop the connection
        return [OK_HEAD, 30.0]  # the resend meets a stall

    with HostileServer(script) as server:
        server.keep_alive = True
        with StreamingClient(server.base_url, timeouts=Timeouts(connect_s=1.0, deadline_s=1.2)) as client:
            first = client.chat(BODY)
            started = time.perf_counter()
            second = client.chat(BODY)
            elapsed = time.perf_counter() - started
    assert first.ok, first.error
    assert second.error_kind == "timeout", second.error
    assert elapsed < 1.2 + 0.5 + 0.2  # the old client took 0.9 + a fresh 1.2 s


def test_a_resent_request_says_so_and_a_cancel_cuts_after_its_chunks() -> None:
    """The one keep-alive policy marks what it resent; ``cancel`` closes after N token chunks."""
    token = chunked(b'data: {"choices":[{"delta":{"content":"w"}}]}\n\n')

    def script(n: int) -> list[Step]:
        if n == 1:
            return [DROP]  # the kept-alive connection dies unanswered
        if n == 3:
            return [OK_HEAD, token, 0.05, token, 0.05, token]  # then silence: only the cut ends it
        return sse_response(STREAM)

    with HostileServer(script) as server:
        server.keep_alive = True
        with StreamingClient(server.base_url, timeouts=Timeouts(connect_s=1.0, deadline_s=5.0)) as client:
            first, second = client.chat(BODY), client.chat(BODY)
            record, cut = client.cancel(BODY, 2)
    assert first.ok and not first.resent and second.ok and second.resent
    assert cut and record.chunks == 2 and record.status == 200 and record.ttft_ms is not None
    assert record.error_kind == "disconnect" and record.error == "cancelled by the client after 2 token chunks"


@pytest.fixture
def slow_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new TCP connection takes 0.3 s to open."""
    real = socket.create_connection

    def slow(*args: Any, **kwargs: Any) -> socket.socket:
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", slow)


@pytest.mark.usefixtures("slow_connect")
def test_opening_the_connection_is_not_inside_ttft() -> None:
    with HostileServer(lambda _: sse_response(STREAM)) as server:
        record, elapsed = timed(server.base_url, 5.0)
    assert record.ok, record.error
    assert elapsed >= 0.3
    assert record.ttft_ms is not None and record.ttft_ms < 150


@pytest.mark.usefixtures("slow_connect")
def test_a_kept_alive_connection_the_server_closed_is_replaced_before_the_clock() -> None:
    """Issue 15 item 5c: llama-server closes an idle connection after 5 s; the reconnect was inside TTFT."""
    with HostileServer(lambda _: sse_response(STREAM)) as server:
        server.keep_alive = False  # answer, then close the idle connection at once
        with StreamingClient(server.base_url, timeouts=Timeouts(deadline_s=5.0)) as client:
            first = client.chat(BODY)
            time.sleep(0.1)
            second = client.chat(BODY)
        assert len(server.requests) == 2  # never sent on the dead connection
    assert first.ok and second.ok, (first.error, second.error)
    assert second.ttft_ms is not None and second.ttft_ms < 150


# ------------------------------------------------------------------------------------ property


PAUSE = st.floats(min_value=0.0, max_value=0.08)


@st.composite
def hostile_scripts(draw: st.DrawFn) -> list[Step]:
    """A response whose head, body and pacing are arbitrary: trickled, stalled, oversized or fine."""
    status = draw(st.sampled_from([200, 200, 500]))
    body_kind = draw(st.sampled_from(["stream", "oversize_line", "big_error", "stall"]))
    if status == 500 or body_kind == "big_error":
        head = b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % (8 * MB)
        body: list[Step] = list(repeated(b"e" * 65536, 8 * MB))
    else:
        head = OK_HEAD
        if body_kind == "oversize_line":
            body = [chunked(b"data: " + b"x" * 65536) for _ in range(100)]
        elif body_kind == "stall":
            body = [chunked(STREAM[:20]), 30.0]
        else:
            body = [chunked(STREAM[i : i + 7]) for i in range(0, len(STREAM), 7)] + [LAST_CHUNK]
    head_size = draw(st.integers(min_value=1, max_value=len(head)))
    head_pause = draw(PAUSE)
    body_pause = draw(PAUSE)
    steps: list[Step] = list(trickle(head, head_size, head_pause))
    for piece in body:
        steps.append(piece)
        if isinstance(piece, bytes) and body_pause:
            steps.append(body_pause)
    if draw(st.booleans()):
        steps.append(30.0)  # stall before the end
    return steps


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=hostile_scripts(), deadline_s=st.floats(min_value=0.1, max_value=0.3))
def test_every_request_ends_by_its_deadline_with_bounded_memory(steps: list[Step], deadline_s: float) -> None:
    connect_s = 0.5
    with HostileServer(lambda _: steps) as server:
        tracemalloc.start()
        try:
            record, elapsed = timed(server.base_url, deadline_s, connect_s)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert elapsed < deadline_s + connect_s + MARGIN_S, record.error
    assert peak < 24 * MB, f"peak {peak / MB:.1f} MB"
    assert record.ok or record.error_kind in ("timeout", "http", "protocol", "disconnect"), record.error

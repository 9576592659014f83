#!/usr/bin/env python3
"""How the client fares against hostile servers (issue 14 item 3): time to give up, and peak memory.

Each scenario runs the client in a fresh child process (so its peak RSS, ``ru_maxrss``, is its own)
against tests/hostile_server.py serving in this process:

* ``trickled-head``: the response head dribbles one byte every 50 ms (deadline 3 s; issue 14
  measured 60 s before the fix);
* ``trickled-error``: a 500 whose 2 KB body dribbles one byte every 50 ms (deadline 3 s; was 63 s);
* ``error-300MB``: a 500 with a 300 MB body (was 766 MB peak);
* ``line-50MB``: a 200 stream whose first SSE line is 50 MB long (was 207 MB peak);
* ``baseline``: a normal 16-token stream, for the child's own footprint.

Usage: ``python benchmarks/client_limits.py [--deadline 3] [--only error-300MB,line-50MB]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from hostile_server import LAST_CHUNK, OK_HEAD, HostileServer, Step, chunked, repeated, sse_response, trickle  # noqa: E402

MB = 1024 * 1024


def stream() -> bytes:
    events = [b'data: {"choices":[{"delta":{"content":"w"}}]}\n\n'] * 16
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":16}}\n\n'
    return (
        b"".join(events)
        + b'data: {"choices":[{"delta":{},"finish_reason":"length"}]}\n\n'
        + usage
        + b"data: [DONE]\n\n"
    )


def trickled_head(_: int) -> Iterator[Step]:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Pad: " + b"a" * 2000 + b"\r\n\r\n"
    return trickle(head, 1, 0.05)


def trickled_error(_: int) -> Iterator[Step]:
    body = b'{"error":{"message":"server busy"}}' + b" " * 2000
    yield b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % len(body)
    yield from trickle(body, 1, 0.05)


def error_300mb(_: int) -> Iterator[Step]:
    total = 300 * MB
    yield b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % total
    yield from repeated(b"e" * 65536, total)


def line_50mb(_: int) -> Iterator[Step]:
    yield OK_HEAD
    yield chunked(b'data: {"choices":[{"delta":{"content":"')
    for piece in repeated(b"x" * 65536, 50 * MB):
        yield chunked(piece)
    yield LAST_CHUNK


SCENARIOS = {
    "baseline": lambda _: sse_response(stream()),
    "trickled-head": trickled_head,
    "trickled-error": trickled_error,
    "error-300MB": error_300mb,
    "line-50MB": line_50mb,
}


def child(url: str, deadline_s: float) -> None:
    """Runs in the child: one request, then its figures as one JSON line."""
    from pytest_asiai.wire.client import StreamingClient, Timeouts

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with StreamingClient(url, timeouts=Timeouts(connect_s=2.0, deadline_s=deadline_s)) as client:
        record = client.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16})
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"elapsed_s": elapsed, "rss_before_mb": before / 1024, "rss_peak_mb": peak / 1024,
                      "error_kind": record.error_kind, "error": (record.error or "")[:80]}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deadline", type=float, default=3.0)
    parser.add_argument("--only", help="comma-separated scenarios (default: all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.deadline)
        return
    print(f"deadline_s = {args.deadline:g}, connect_s = 2; one child process per scenario")
    print(f"{'scenario':16s} {'gave up after':>13s} {'peak RSS':>9s} {'(start)':>8s}  outcome")
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    for name in chosen:
        script = SCENARIOS[name]
        with HostileServer(script) as server:
            out = subprocess.run(
                [sys.executable, __file__, "--child", server.base_url, "--deadline", str(args.deadline)],
                capture_output=True, text=True, check=True, timeout=600,
            )  # fmt: skip
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        outcome = f"{figures['error_kind'] or 'ok'}: {figures['error']}"
        took, peak, start = figures["elapsed_s"], figures["rss_peak_mb"], figures["rss_before_mb"]
        print(f"{name:16s} {took:11.2f} s {peak:6.0f} MB {start:5.0f} MB  {outcome}")


if __name__ == "__main__":
    main()

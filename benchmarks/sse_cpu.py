#!/usr/bin/env python3
"""Client CPU per SSE line: the project's client beside a stdlib ``http.client`` reader, same stream.

A server in a child process (so its CPU is not counted) streams the same 2000-token chat completion,
one HTTP chunk per SSE event with a short pause after each write, as llama-server does while
decoding, so that every event arrives in its own read. Each arm reads the stream in this process and
the process CPU time it took (user + system, ``time.process_time``) is divided by the SSE lines
(events) read. Arms alternate for ``--rounds`` rounds; the medians are printed.

* ``project``: :class:`pytest_asiai.wire.client.StreamingClient` (socket + h11 + the project's SSE
  decoder and accumulator: everything a phase records);
* ``stdlib``: ``http.client`` reading line by line, a ``perf_counter_ns`` per line and ``json.loads``
  of each data payload (the reference reader of issue 15);
* ``httpx``: a plain ``httpx.Client`` with ``iter_raw``, the transport the client used before
  (for reference; issue 15 measured 247 µs per line for the old client and 249 for plain httpx);
* ``asiai``: asiai 1.34's way of reading a stream (``asiai/benchmark/agentic.py``, read in the
  PyPI wheel, written here anew): ``urllib.request.urlopen`` per request (no connection reuse), the
  response iterated line by line, each line decoded and stripped, ``json.loads`` of each data line,
  ``perf_counter`` at the first content.

Usage::

    python benchmarks/sse_cpu.py [--tokens 2000] [--rounds 7] [--pause-us 300]

On a 2-core machine shared with other work, the absolute figures move; the ratio is what matters.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import socket
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx

from pytest_asiai.wire.client import StreamingClient, Timeouts

BODY: dict[str, Any] = {"model": "smollm2", "messages": [{"role": "user", "content": "go"}], "max_tokens": 2000}


def events(tokens: int) -> list[bytes]:
    """llama-server b11434's chunk shape, one token each, then its usage chunk and [DONE]."""
    out = []
    for i in range(tokens):
        chunk = {
            "choices": [{"finish_reason": None, "index": 0, "delta": {"content": f" word{i % 97}"}}],
            "created": 1796160522, "id": "chatcmpl-Zr2kQ8vX1", "model": "smollm2",
            "system_fingerprint": "b11434-5d26f5f0", "object": "chat.completion.chunk",
        }  # fmt: skip
        out.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    finish = {"choices": [{"finish_reason": "length", "index": 0, "delta": {}}], "object": "chat.completion.chunk"}
    usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": tokens, "total_tokens": tokens + 9}}
    out += [b"data: " + json.dumps(finish).encode() + b"\n\n", b"data: " + json.dumps(usage).encode() + b"\n\n"]
    return [*out, b"data: [DONE]\n\n"]


def serve(listener: socket.socket, tokens: int, pause_us: int) -> None:
    """Answer every request on every connection (one thread each) with the stream, kept alive."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = [b"%x\r\n%s\r\n" % (len(e), e) for e in events(tokens)]
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=answer, args=(conn, head, chunks, pause_us / 1e6), daemon=True).start()


def answer(conn: socket.socket, head: bytes, chunks: list[bytes], pause: float) -> None:
    with conn:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head_end = buf.index(b"\r\n\r\n") + 4
            length = 0
            for line in buf[:head_end].split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(buf) < head_end + length:
                buf += conn.recv(65536)
            buf = buf[head_end + length :]
            conn.sendall(head)
            for chunk in chunks:
                conn.sendall(chunk)
                deadline = time.perf_counter() + pause
                while time.perf_counter() < deadline:  # busy-wait: sleep() granularity is too coarse
                    pass
            conn.sendall(b"0\r\n\r\n")


def project_arm(port: int) -> Callable[[], int]:
    client = StreamingClient(f"http://127.0.0.1:{port}", timeouts=Timeouts(deadline_s=120))

    def run() -> int:
        record = client.chat(BODY)
        assert record.ok and record.chunks > 0, record.error
        return record.chunks + 3  # the token events, plus finish, usage and [DONE]

    return run


def stdlib_arm(port: int) -> Callable[[], int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({**BODY, "stream": True, "stream_options": {"include_usage": True}}).encode()
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}

    def run() -> int:
        conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
        response = conn.getresponse()
        lines = 0
        stamps = []
        for line in response:
            stamps.append(time.perf_counter_ns())
            if line.startswith(b"data: "):
                payload = line[6:].strip()
                lines += 1
                if payload != b"[DONE]":
                    json.loads(payload)
        return lines

    return run


def httpx_arm(port: int) -> Callable[[], int]:
    client = httpx.Client(timeout=120, trust_env=False)
    body = json.dumps({**BODY, "stream": True, "stream_options": {"include_usage": True}}).encode()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    def run() -> int:
        lines = 0
        buf = b""
        with client.stream("POST", url, content=body, headers={"Content-Type": "application/json"}) as response:
            for raw in response.iter_raw():
                time.perf_counter_ns()
                buf += raw
                *complete, buf = buf.split(b"\n\n")
                for event in complete:
                    lines += 1
                    if event != b"data: [DONE]":
                        json.loads(event[6:])
        return lines

    return run


def asiai_arm(port: int) -> Callable[[], int]:
    body = json.dumps({**BODY, "stream": True, "stream_options": {"include_usage": True}}).encode()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    def run() -> int:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        lines, first = 0, None
        with urllib.request.urlopen(request, timeout=120) as response:
            for raw in response:
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                lines += 1
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                choices = json.loads(payload).get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content") and first is None:
                    first = time.perf_counter()
        return lines

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pause-us", type=int, default=300)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = multiprocessing.Process(target=serve, args=(listener, args.tokens, args.pause_us), daemon=True)
    server.start()
    arms = {
        "project": project_arm(port),
        "stdlib": stdlib_arm(port),
        "httpx": httpx_arm(port),
        "asiai": asiai_arm(port),
    }
    per_line: dict[str, list[float]] = {name: [] for name in arms}
    for run in arms.values():
        run()  # warm-up: connect, imports, caches
    for _ in range(args.rounds):
        for name, run in arms.items():
            cpu0 = time.process_time()
            lines = run()
            per_line[name].append((time.process_time() - cpu0) / lines * 1e6)
    server.terminate()
    medians = {name: statistics.median(values) for name, values in per_line.items()}
    print(f"{args.tokens} tokens, one SSE event per read, {args.rounds} interleaved rounds; client CPU per SSE line:")
    for name, values in per_line.items():
        spread = ", ".join(f"{v:.0f}" for v in sorted(values))
        print(f"  {name:8s} {medians[name]:6.1f} µs   (rounds: {spread})")
    print(f"  ratio project/stdlib: {medians['project'] / medians['stdlib']:.3f}")
    print(f"  ratio httpx/stdlib:   {medians['httpx'] / medians['stdlib']:.3f}")
    print(f"  ratio asiai/stdlib:   {medians['asiai'] / medians['stdlib']:.3f}")


if __name__ == "__main__":
    main()

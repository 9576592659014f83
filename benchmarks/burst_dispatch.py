"""How long a burst takes to leave: the dispatch spread of N simultaneous chat calls.

Measures, for many bursts against a local endpoint (the scripted test engine, run in a child process
so it does not compete with the client for the GIL), the time from the release to the moment each
request was written to its socket:

* ``lean``: ``pytest_asiai.wire.dispatch`` (what the burst suite uses): connections opened before the
  release, requests serialized before it, one synchronous write loop at the release;
* ``barrier``: the same pre-opened calls, but each call is its own task behind an ``asyncio.Barrier``
  and writes when the barrier wakes it (what "release through a barrier" costs in task switches);
* ``httpx``: one ``httpx.AsyncClient`` with a large enough pool, N tasks behind an ``asyncio.Event``,
  the write time taken from httpcore's ``http11.send_request_body.complete`` trace event.

Usage: ``python benchmarks/burst_dispatch.py [--sizes 30,60,80] [--bursts 30] [--modes lean,barrier,httpx]``.
The target on a 2-core machine: median spread of an 80-call lean burst under 5 ms (asiai's thread
pool: 50 ms to 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from pytest_asiai.wire.client import Timeouts, encode_body, request_headers
from pytest_asiai.wire.dispatch import Endpoint, _Call, dispatch

REPO = Path(__file__).resolve().parent.parent
TIMEOUTS = Timeouts(connect_s=10.0, deadline_s=60.0)

Sends = list[float]
"""Milliseconds from the release to each request's write."""


def bodies(n: int) -> list[dict[str, Any]]:
    return [
        {"model": "m", "messages": [{"role": "user", "content": f"Burst call #{i}."}], "max_tokens": 4}
        for i in range(n)
    ]


async def lean(base_url: str, n: int) -> Sends:
    result = await dispatch(base_url, bodies(n), timeouts=TIMEOUTS)
    return [result.offset_ms(c.sent_ns) or 0.0 for c in result.calls if c.sent_ns is not None]


async def barrier(base_url: str, n: int) -> Sends:
    """Pre-opened calls, each in its own task, released by an asyncio.Barrier."""
    loop = asyncio.get_running_loop()
    endpoint = Endpoint.of(base_url)
    headers = request_headers(None)
    calls = [_Call(i, (endpoint, headers, encode_body(b)), 60.0, loop.create_future()) for i, b in enumerate(bodies(n))]
    await asyncio.gather(*(c.connect(endpoint, 10.0, None) for c in calls))
    gate = asyncio.Barrier(n + 1)
    release: list[int] = []

    async def one(call: _Call) -> None:
        await gate.wait()
        call.send()
        call.arm_deadline(loop)
        await call.done

    tasks = [asyncio.create_task(one(c)) for c in calls]
    await asyncio.sleep(0)  # every task is now waiting at the barrier
    release.append(time.perf_counter_ns())
    await gate.wait()
    await asyncio.gather(*tasks)
    return [(c.sent_ns - release[0]) / 1e6 for c in calls if c.sent_ns is not None]


async def httpx_event(base_url: str, n: int) -> Sends:
    """httpx.AsyncClient, pool of n, tasks behind an asyncio.Event; write time from httpcore's trace."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    written: list[int] = []

    async def trace(name: str, info: dict[str, Any]) -> None:
        if name == "http11.send_request_body.complete":
            written.append(time.perf_counter_ns())

    async with httpx.AsyncClient(limits=limits, timeout=60.0, trust_env=False, headers=request_headers(None)) as client:
        go = asyncio.Event()

        async def one(body: dict[str, Any]) -> None:
            request = client.build_request(
                "POST", f"{base_url}/v1/chat/completions", content=encode_body(body), extensions={"trace": trace}
            )
            await go.wait()
            response = await client.send(request, stream=True)
            async for _ in response.aiter_raw():
                pass
            await response.aclose()

        tasks = [asyncio.create_task(one(b)) for b in bodies(n)]
        await asyncio.sleep(0)
        release = time.perf_counter_ns()
        go.set()
        await asyncio.gather(*tasks)
    return [(t - release) / 1e6 for t in written]


MODES: dict[str, Callable[[str, int], Coroutine[Any, Any, Sends]]] = {
    "lean": lean,
    "barrier": barrier,
    "httpx": httpx_event,
}


def serve() -> None:
    """Child process: the scripted test engine, fast and fully parallel, until stdin closes."""
    sys.path.insert(0, str(REPO / "tests"))
    from scripted_engine import Behaviour, ScriptedEngine

    with ScriptedEngine(Behaviour(slots=1000, completion_tokens=4, decode_ms_per_token=1.0)) as engine:
        print(engine.base_url, flush=True)
        sys.stdin.read()


def measure(base_url: str, mode: str, n: int, bursts: int) -> tuple[list[float], list[float]]:
    """Per burst: the spread (last write − first write) and the time from release to the last write."""
    spreads, lasts = [], []
    for _ in range(bursts):
        sends = asyncio.run(MODES[mode](base_url, n))
        if len(sends) != n:
            raise SystemExit(f"{mode} n={n}: only {len(sends)} of {n} requests were written")
        spreads.append(max(sends) - min(sends))
        lasts.append(max(sends))
    return spreads, lasts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,60,80")
    parser.add_argument("--bursts", type=int, default=30)
    parser.add_argument("--modes", default="lean,barrier,httpx")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        print(f"endpoint {base_url} (scripted test engine in pid {server.pid}), {args.bursts} bursts per row")
        print(f"{'mode':<8} {'N':>4} {'spread median ms':>17} {'spread max ms':>14} {'release→last median':>20}")
        for mode in args.modes.split(","):
            for n in (int(s) for s in args.sizes.split(",")):
                measure(base_url, mode, n, 2)  # warm-up: imports, first connections
                spreads, lasts = measure(base_url, mode, n, args.bursts)
                print(
                    f"{mode:<8} {n:>4} {statistics.median(spreads):>17.2f} {max(spreads):>14.2f} "
                    f"{statistics.median(lasts):>20.2f}"
                )
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()

"""What the psutil samplers cost: CPU per sample, and the SOLO/duplicates snapshot.

The samplers run beside the request path on the same machine as the engine; on 2 cores a busy
sampler slows the engine it measures. This prints, against a local listening process with one
child (a stand-in engine):

* ``sample``: one sampler tick (system swap + the engine tree's RSS), CPU µs and wall µs;
* ``locate``: finding the engine from its port the first time (a scan of every listener);
* ``snapshot``: one pass over the process table for SOLO and duplicates (taken between requests);
* ``duty``: the sampler's CPU share at its default interval.

Usage: ``python benchmarks/samplers_overhead.py [--samples 2000]``. Target: a tick under 1 ms of CPU,
so the default 0.5 s interval costs under 0.2 % of one core.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from pytest_asiai.measure.locator import EngineLocator
from pytest_asiai.measure.samplers import DEFAULT_INTERVAL_S, CaseSampler, LiveSamplers

ENGINE = """
import socket, subprocess, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(s.getsockname()[1], flush=True)
time.sleep(600)
"""


@dataclass
class Source:
    base_url: str
    pid: int | None = None
    kind: str = "llamacpp"
    family: object = None


def timed(fn: object, n: int) -> tuple[float, float]:
    """Median CPU and wall time of ``n`` calls, in microseconds."""
    cpu, wall = [], []
    for _ in range(n):
        c0, w0 = time.process_time_ns(), time.perf_counter_ns()
        fn()  # type: ignore[operator]
        cpu.append((time.process_time_ns() - c0) / 1000)
        wall.append((time.perf_counter_ns() - w0) / 1000)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    engine = subprocess.Popen([sys.executable, "-c", ENGINE], stdout=subprocess.PIPE, text=True)
    try:
        assert engine.stdout is not None
        port = int(engine.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        locate_cpu, locate_wall = timed(lambda: EngineLocator(Source(url)).processes(), 20)
        sampler = CaseSampler(EngineLocator(Source(url)))
        sampler.sample()
        cpu, wall = timed(sampler.sample, args.samples)
        view = LiveSamplers(sampler, Source(url))
        snap_cpu, snap_wall = timed(view.processes, 10)
        print(f"sample   : {cpu:8.0f} µs CPU {wall:8.0f} µs wall (median of {args.samples})")
        print(f"locate   : {locate_cpu:8.0f} µs CPU {locate_wall:8.0f} µs wall (first lookup by port)")
        print(f"snapshot : {snap_cpu:8.0f} µs CPU {snap_wall:8.0f} µs wall (process table pass)")
        print(f"duty     : {100 * cpu / (DEFAULT_INTERVAL_S * 1e6):8.3f} % of one core at {DEFAULT_INTERVAL_S} s")
    finally:
        engine.kill()
        engine.wait()


if __name__ == "__main__":
    main()

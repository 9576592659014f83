#!/usr/bin/env python3
"""What keeping the report costs the run: per-event logging, the throttled rewrite, the final write.

The collector appends every event to the JSON Lines log (flushed), and rewrites the validated report
at most once per ``WRITE_INTERVAL_S``; at the end it validates and writes once more. This script
replays the events of a full-size run (``--cases`` cases × 9 phases × ``--runs`` repeats, each
request with ``--tokens`` token timestamps, as the ``full`` profile produces) through a collector and
prints:

* the time per event spent in ``add`` (what a test's report pays on the controller),
* one validation + atomic write of the whole report (the throttled rewrite and the final write),
* the size of the report and of the log, and ``rebuild`` time from the log.

Usage: ``python benchmarks/report_writing.py [--cases 8] [--runs 3] [--tokens 400]``. Target: the
per-event cost stays well under a millisecond, and a full write under a second for a fleet-sized run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from report_helpers import META, phase_dict, request_record

from pytest_asiai.agentic.protocol import PHASE_NAMES
from pytest_asiai.report.files import log_path_for
from pytest_asiai.report.fold import rebuild
from pytest_asiai.report.writer import ReportCollector


def events(cases: int, runs: int, tokens: int) -> list[tuple[str, dict]]:
    """The events of a run, in the order a run emits them (a phase event after every request)."""
    out: list[tuple[str, dict]] = []
    for c in range(cases):
        case_id = f"engine{c}-model-mtp_off"
        for name in PHASE_NAMES:
            records = []
            for repeat in range(runs):
                records.append(request_record(100.0 + repeat, 60.0, tokens=tokens))
                out.append((case_id, {"type": "phase", "phase": phase_dict(name, records)}))
            test = {"type": "test", "nodeid": f"t.py::test_phase[{case_id}-{name}]", "name": name, "outcome": "passed"}
            out.append((case_id, {**test, "message": None}))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=400)
    args = parser.parse_args()
    stream = events(args.cases, args.runs, args.tokens)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.json"
        collector = ReportCollector(META, path)
        costs = []
        for case_id, event in stream:
            t0 = time.perf_counter()
            collector.add(case_id, [event])
            costs.append((time.perf_counter() - t0) * 1000)
        writes = []
        for _ in range(3):
            t0 = time.perf_counter()
            collector.write(finished=False)
            writes.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        collector.close(0)
        close_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        rebuilt = rebuild(log_path_for(path))
        rebuild_ms = (time.perf_counter() - t0) * 1000
        assert len(rebuilt["cases"]) == args.cases
        costs.sort()
        size = f"{args.cases} cases × {len(PHASE_NAMES)} phases × {args.runs} runs, {args.tokens} tokens"
        print(f"events: {len(stream)} ({size})")
        print(
            f"add() per event: median {statistics.median(costs):.2f} ms, p95 {costs[int(0.95 * len(costs))]:.2f} ms, "
            f"max {costs[-1]:.1f} ms (max includes the throttled rewrites)"
        )
        print(f"validate + atomic write of the report: median {statistics.median(writes):.0f} ms")
        print(f"close (recover, final write): {close_ms:.0f} ms; rebuild from the log: {rebuild_ms:.0f} ms")
        print(f"report {path.stat().st_size / 1e6:.1f} MB, log {log_path_for(path).stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

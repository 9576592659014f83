"""A write-ahead copy of every event a process emits, so a crash never loses a measurement.

Events normally reach the report on test reports (see :mod:`pytest_asiai.report.writer`). What a test
measured before its process died (an xdist worker killed by the OOM killer, a segfault in a native
extension, SIGKILL of pytest itself) never makes it onto a report; the spool keeps it. Each process
appends its events, stamped with an ``origin`` (worker id and pid) and a sequence number, to its own
JSON Lines file as they are emitted. The controller remembers which ``(origin, seq)`` pairs it has
received and, after a crash or at the end of the run, applies the ones it never saw.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from pytest_asiai.report.redact import Redactor
from pytest_asiai.wire.serialize import StrictJSONError, json_safe, loads_lenient

SPOOL_SUFFIX = ".jsonl"


def process_origin() -> str:
    """``gw0-1234`` on an xdist worker, ``main-1234`` otherwise: unique even for a replaced worker."""
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"


class Spool:
    """One process's append-only, line-flushed event file."""

    def __init__(self, directory: Path, redactor: Redactor, origin: str | None = None) -> None:
        self.origin = origin or process_origin()
        self.path = directory / f"{self.origin}{SPOOL_SUFFIX}"
        self._redactor = redactor
        self._seq = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO | None = self.path.open("a", encoding="utf-8")

    def stamp(self, case_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Give the event its origin and sequence number and write it through; return the stamped event."""
        self._seq += 1
        stamped: dict[str, Any] = json_safe(self._redactor.scrub({**event, "origin": self.origin, "seq": self._seq}))
        if self._fh is not None:
            self._fh.write(json.dumps({"case_id": case_id, **stamped}, separators=(",", ":"), default=str) + "\n")
            self._fh.flush()
        return stamped

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The events of one spool file, stopping quietly at a line cut short by a crash."""
    try:
        fh = path.open(encoding="utf-8")
    except OSError:
        return
    with fh:
        for line in fh:
            try:
                obj = loads_lenient(line)
            except StrictJSONError:
                return
            if isinstance(obj, dict) and "case_id" in obj:
                yield obj


def spool_files(directory: Path) -> list[Path]:
    """The spool files of a run, oldest first (a replaced worker's file precedes its successor's)."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"*{SPOOL_SUFFIX}"), key=lambda p: (p.stat().st_mtime_ns, p.name))


def key_of(event: Mapping[str, Any]) -> tuple[str, int] | None:
    """The ``(origin, seq)`` identity of a spooled event; None for events emitted without a spool."""
    origin, seq = event.get("origin"), event.get("seq")
    return (origin, seq) if isinstance(origin, str) and isinstance(seq, int) else None

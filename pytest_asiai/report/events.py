"""Report events that are not measurements: a test's outcome and a run-level incident, and the node-id
rules that attribute them to a case (also on the xdist controller, which has no items).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

import pytest

TEST_FIELDS = ("nodeid", "name", "outcome", "message", "duration", "markers", "worker")
ASIAI_MARKERS = ("agentic", "burst", "toolcall", "endurance", "gate")


def plain_nodeid(nodeid: str) -> str:
    """The node id without the ``@group`` suffix xdist's loadgroup mode appends (never key on it)."""
    head, sep, tail = nodeid.rpartition("::")
    if "@" in tail and (tail.rfind("]") < tail.rfind("@")):
        tail = tail[: tail.rfind("@")]
    return head + sep + tail


def test_event(item: pytest.Item, report: pytest.TestReport) -> dict[str, Any]:
    """A test's outcome as a report event: a gate a user writes lands in the report like ours."""
    message = None
    if report.failed or report.skipped:
        message = report.longreprtext.strip().splitlines()[-1] if report.longreprtext else None
        if report.skipped and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2])
    return {
        "type": "test",
        "nodeid": plain_nodeid(item.nodeid),
        "name": item.name,
        "outcome": report.outcome,
        "message": message,
        "duration": report.duration,
        "markers": sorted({m.name for m in item.iter_markers() if m.name in ASIAI_MARKERS}),
        # The worker this run's own xdist gave the test: the environment variable would also name the
        # worker of an outer run that started this one (a pytest run inside an xdist worker).
        "worker": getattr(item.config, "workerinput", {}).get("workerid"),
    }


test_event.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name


def case_for_nodeid(nodeid: str, case_ids: Iterable[str]) -> str | None:
    """The case a node id belongs to, from its parameter id (the controller of xdist has no items)."""
    m = re.search(r"\[(.*)\]", plain_nodeid(nodeid))
    if m is None:
        return None
    params = m.group(1)
    matches = [c for c in case_ids if params == c or params.startswith(c + "-") or f"-{c}-" in f"-{params}-"]
    return max(matches, key=len) if matches else None


def incident(kind: str, message: str, nodeid: str | None = None, case_id: str | None = None) -> dict[str, Any]:
    """A run-level failure that is not a test outcome: an interrupt, a crashed worker."""
    return {
        "type": "incident",
        "kind": kind,
        "message": message,
        "nodeid": nodeid,
        "case_id": case_id,
        "at": time.time(),
    }

"""Events folded into the report structure, live on the controller or again from an events log.

:class:`ReportModel` applies each event (case, phase, result, metric, test, incident) to its case and
builds the report dict the schema describes; :func:`rebuild` replays an events log, read leniently
(the last line may be cut short by a crash), plus any spool left beside it. A case's ``tier`` is
set at build time from :func:`pytest_asiai.report.tiers.tiers_by_case`, the one place tiers are
decided; ``tier`` events in logs written by older versions are ignored (the tier is re-ranked).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_asiai.measure.machine import case_machine_id
from pytest_asiai.report import spool
from pytest_asiai.report.events import TEST_FIELDS
from pytest_asiai.report.mtp import mtp_deltas
from pytest_asiai.report.schema import SCHEMA_ID
from pytest_asiai.report.tiers import tiers_by_case
from pytest_asiai.wire.serialize import StrictJSONError, loads_lenient

CUT_SHORT = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
"""Exit statuses of a run that did not get to the end: its report is not ``complete``."""


def _empty_case(case_id: str) -> dict[str, Any]:
    return {
        "id": case_id,
        "case": None,
        "engine": None,
        "profile": None,
        "runs": None,
        "phases": {},
        "tests": [],
        "metrics": {},
        "results": {},
        "tier": None,
    }


def repeats_done(phase: Mapping[str, Any]) -> set[int]:
    """The repeats of a phase event that have a run or the reason they sent nothing."""
    done = {r["repeat"] for r in phase.get("runs", []) if isinstance(r.get("repeat"), int)}
    return done | {int(m) for e in phase.get("errors", []) for m in re.findall(r" repeat (\d+):", str(e))[:1]}


class ReportModel:
    """Folds events into the report structure; also used to rebuild a report from its log."""

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self.meta = dict(meta)
        self.cases: dict[str, dict[str, Any]] = {}
        self.incidents: list[dict[str, Any]] = []
        self.changed: set[str] = set()
        """Cases changed since the last validated write."""
        self.phase_origin: dict[tuple[str, str], str | None] = {}
        """Which process (``origin``, see :mod:`pytest_asiai.report.spool`) measured each reported phase."""

    def is_remeasured(self, case_id: str, event: Mapping[str, Any]) -> bool:
        """Whether a phase event re-runs a phase another process already finished measuring.

        One case's phases are measured by one process, except after an xdist worker crash: the
        replacement worker measures the case again from its first phase, because every phase
        depends on the engine's cache state left by the ones before it (and a managed engine died
        with the crashed worker, see :mod:`pytest_asiai.engines.orphans`). The rule (docs/hostile-input.md):
        a phase the dead worker finished (a run or a reason for every repeat) keeps the dead
        worker's measurement, taken in its designed order; the replacement's re-run only rebuilt
        the cache state and stays in the events log, so no measurement is lost or counted twice. A
        phase the dead worker left unfinished is taken whole from the replacement.
        """
        name, origin = event["phase"]["name"], event.get("origin")
        key = (case_id, name)
        if key not in self.phase_origin or self.phase_origin[key] in (None, origin) or origin is None:
            return False
        kept = self.cases[case_id]["phases"][name]
        return len(repeats_done(kept)) >= (self.cases[case_id].get("runs") or 1)

    def apply(self, case_id: str | None, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "incident":
            self.incidents.append({k: event.get(k) for k in ("kind", "message", "nodeid", "case_id", "at")})
            return
        if case_id is None:
            return
        case = self.cases.setdefault(case_id, _empty_case(case_id))
        self.changed.add(case_id)
        if kind == "case":
            case.update({k: event.get(k) for k in ("case", "engine", "profile", "runs")})
        elif kind == "phase" and not self.is_remeasured(case_id, event):
            phase = event["phase"]
            case["phases"][phase["name"]] = phase
            self.phase_origin[(case_id, phase["name"])] = event.get("origin")
        elif kind == "result":
            # Suites beyond the phases (gates, burst, toolcall, regression) report under a section.
            case["results"].setdefault(event["section"], {})[event["key"]] = event["value"]
        elif kind == "metric":
            case["metrics"][event["name"]] = event["value"]
        elif kind == "test":
            case["tests"].append({k: event.get(k) for k in TEST_FIELDS})

    def build(self, finished: bool, exit_status: int | None = None) -> dict[str, Any]:
        local = self.meta.get("machine_id")
        tiers = tiers_by_case(self.cases.values(), local)
        cases = [
            {**c, "machine_id": case_machine_id(local, c), "tier": tiers.get(c["id"])} for c in self.cases.values()
        ]
        return {
            "schema": SCHEMA_ID,
            **self.meta,
            "finished_at": time.time() if finished else None,
            "complete": finished and exit_status not in CUT_SHORT,
            "exit_status": exit_status,
            "incidents": list(self.incidents),
            "cases": cases,
            "mtp": mtp_deltas(cases),
        }


def _log_lines(log_path: Path) -> Iterable[dict[str, Any]]:
    with log_path.open(encoding="utf-8") as fh:
        lines = fh.readlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = loads_lenient(line)
        except StrictJSONError as exc:
            # The last line may be cut short by the crash; anything else is a real problem.
            if n < len(lines):
                raise ValueError(f"{log_path}:{n}: not a JSON line ({exc})") from None
            return
        if not isinstance(obj, dict):
            raise ValueError(f"{log_path}:{n}: not a JSON object")
        yield obj


def rebuild(log_path: Path) -> dict[str, Any]:
    """Rebuild a report from its events log and any spool left beside it (after a hard crash)."""
    model: ReportModel | None = None
    seen: set[tuple[str, int]] = set()
    finish: dict[str, Any] | None = None
    for obj in _log_lines(log_path):
        if obj.get("type") == "meta":
            model = ReportModel(obj["meta"])
        elif obj.get("type") == "finish":
            finish = obj
        elif model is not None:
            if (key := spool.key_of(obj)) is not None:
                seen.add(key)
            model.apply(obj.pop("case_id", None), obj)
    if model is None:
        raise ValueError(f"{log_path}: no meta line: not a pytest-asiai events log")
    name = log_path.name.removesuffix(".events.jsonl")
    for path in spool.spool_files(log_path.with_name(name + ".spool")):
        for obj in spool.read_events(path):
            key = spool.key_of(obj)
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
            model.apply(obj.pop("case_id"), obj)
    report = model.build(finished=finish is not None, exit_status=finish.get("exit_status") if finish else None)
    if finish is not None:
        report["finished_at"] = finish.get("finished_at")
    return report

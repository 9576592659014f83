"""The JSON report: events appended to a JSON Lines log as they arrive, the report file rewritten
atomically after each one, so Ctrl-C, a dead engine or a crashed worker never lose a measurement.

Only the controller (or a run without xdist) owns a collector. The report is validated against
``schemas/report.schema.json`` before every write.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from . import __version__

SCHEMA_ID = "pytest-asiai/report-v1"


@cache
def report_schema() -> dict[str, Any]:
    text = resources.files("pytest_asiai").joinpath("schemas/report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_report(report: Mapping[str, Any]) -> None:
    """Raise jsonschema.ValidationError when the report does not match the shipped schema."""
    jsonschema.Draft202012Validator(report_schema()).validate(report)


def log_path_for(json_path: Path) -> Path:
    """The incremental JSON Lines log kept beside the report."""
    return json_path.with_name(json_path.name + ".events.jsonl")


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    }


class ReportModel:
    """Folds events into the report structure; also used to rebuild a report from its log."""

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self.meta = dict(meta)
        self.cases: dict[str, dict[str, Any]] = {}

    def apply(self, case_id: str, event: Mapping[str, Any]) -> None:
        case = self.cases.setdefault(case_id, _empty_case(case_id))
        kind = event.get("type")
        if kind == "case":
            case.update({k: event.get(k) for k in ("case", "engine", "profile", "runs")})
        elif kind == "phase":
            phase = event["phase"]
            case["phases"][phase["name"]] = phase
        elif kind == "result":
            # Suites beyond the phases (gates, burst, toolcall, endurance) report under a section.
            case["results"].setdefault(event["section"], {})[event["key"]] = event["value"]
        elif kind == "metric":
            case["metrics"][event["name"]] = event["value"]
        elif kind == "test":
            case["tests"].append({k: event.get(k) for k in ("nodeid", "name", "outcome", "message", "duration")})

    def build(self, finished: bool) -> dict[str, Any]:
        return {
            "schema": SCHEMA_ID,
            **self.meta,
            "finished_at": time.time() if finished else None,
            "complete": finished,
            "cases": list(self.cases.values()),
        }


class ReportCollector:
    """Receives events on the controller and keeps the log and the report file up to date."""

    def __init__(self, json_path: Path, meta: Mapping[str, Any]) -> None:
        self.json_path = json_path
        self.log_path = log_path_for(json_path)
        self.model = ReportModel(meta)
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w", encoding="utf-8")
        self._write_line({"type": "meta", "meta": dict(meta)})

    def _write_line(self, obj: Mapping[str, Any]) -> None:
        self._log.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
        self._log.flush()

    def add(self, case_id: str, events: Iterable[Mapping[str, Any]]) -> None:
        changed = False
        for event in events:
            self._write_line({"case_id": case_id, **event})
            self.model.apply(case_id, event)
            changed = True
        if changed:
            self.write(finished=False)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Hook: fold in the events a test report carries (from this process or an xdist worker)."""
        payload = getattr(report, "asiai", None)
        if isinstance(payload, dict):
            self.add(payload["case_id"], payload["events"])

    def write(self, finished: bool, exit_status: int | None = None) -> dict[str, Any]:
        report = self.model.build(finished)
        report["exit_status"] = exit_status
        validate_report(report)
        atomic_write(self.json_path, json.dumps(report, indent=1, default=str) + "\n")
        return report

    def close(self, exit_status: int) -> dict[str, Any]:
        report = self.write(finished=True, exit_status=exit_status)
        self._log.close()
        return report


def run_meta(config: pytest.Config) -> dict[str, Any]:
    """What identifies this run: versions, time and command line."""
    return {
        "plugin_version": __version__,
        "pytest_version": pytest.__version__,
        "python_version": sys.version.split()[0],
        "started_at": time.time(),
        "command_line": [*config.invocation_params.args],
    }


def rebuild(log_path: Path) -> dict[str, Any]:
    """Rebuild a report from its events log (after a hard crash left no final report)."""
    model: ReportModel | None = None
    with log_path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                # The last line may be cut short by the crash; anything else is a real problem.
                if fh.readline():
                    raise ValueError(f"{log_path}:{n}: not a JSON line") from None
                break
            if obj.get("type") == "meta":
                model = ReportModel(obj["meta"])
            elif model is not None:
                model.apply(obj.pop("case_id"), obj)
    if model is None:
        raise ValueError(f"{log_path}: no meta line: not a pytest-asiai events log")
    report = model.build(finished=False)
    report["exit_status"] = None
    return report

"""The JSON report's collector: events appended to a JSON Lines log as they arrive, the report file rewritten
atomically, so Ctrl-C, a dead engine or a crashed worker never lose a measurement.

Measurements travel as events on test reports (``report.asiai``), so the controller sees the same
events under xdist as in a serial run. Only the controller (or a run without xdist) owns a
:class:`ReportCollector`. Every process also spools its events (:mod:`pytest_asiai.report.spool`); the
collector applies whatever a crashed or interrupted process measured but never reported. The
report is validated against ``schemas/report.schema.json`` before every write, and scrubbed of
secrets (:mod:`pytest_asiai.report.redact`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_asiai import __version__
from pytest_asiai.config.matrix import Case
from pytest_asiai.measure.machine import git_info, machine_id, machine_info
from pytest_asiai.report import spool
from pytest_asiai.report.events import case_for_nodeid, incident, plain_nodeid
from pytest_asiai.report.files import atomic_write, dump_report, log_path_for, spool_dir_for
from pytest_asiai.report.fold import ReportModel
from pytest_asiai.report.redact import Redactor
from pytest_asiai.report.schema import schema_problem, validate_partial, validate_report
from pytest_asiai.wire.serialize import json_safe

WRITE_INTERVAL_S = 2.0
"""Rewrite the report at most this often during a run (the log is always up to date)."""


class ReportCollector:
    """Receives events on the controller and keeps the log and the report file up to date.

    Registered as a plugin, so its methods are hooks. ``json_path`` may be None: the model is still
    kept (the terminal table, the HTML report and baselines read it), only no file is written.
    """

    def __init__(
        self,
        meta: Mapping[str, Any],
        json_path: Path | None,
        *,
        redactor: Redactor | None = None,
        case_ids: Iterable[str] = (),
        spool_dir: Path | None = None,
    ) -> None:
        self.json_path = json_path
        self.log_path = log_path_for(json_path) if json_path else None
        self.spool_dir = spool_dir
        self.redactor = redactor or Redactor()
        self.case_ids = list(case_ids)
        self.model = ReportModel(self.redactor.scrub(dict(meta)))
        self.report: dict[str, Any] | None = None
        self.notes: list[str] = []
        """Lines for the terminal summary (HTML written, baseline updated)."""
        self.running: dict[str, float] = {}
        self._seen: set[tuple[str, int]] = set()
        self._dirty = False
        self._last_write = 0.0
        self._log = None
        if self.json_path is not None and self.log_path is not None:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("w", encoding="utf-8")
            self._write_line({"type": "meta", "meta": self.model.meta})
        if spool_dir is not None:
            shutil.rmtree(spool_dir, ignore_errors=True)
            spool_dir.mkdir(parents=True, exist_ok=True)

    def own_spool(self) -> spool.Spool | None:
        """The controller's own spool (so ``rebuild`` recovers even a SIGKILLed serial run)."""
        return spool.Spool(self.spool_dir, self.redactor) if self.spool_dir is not None else None

    # -- events
    def _write_line(self, obj: Mapping[str, Any]) -> None:
        if self._log is not None and not self._log.closed:
            try:
                self._log.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
                self._log.flush()
            except (OSError, ValueError) as exc:
                self._note_failure(f"cannot append to {self.log_path}: {getattr(exc, 'strerror', None) or exc}")

    def add(self, case_id: str | None, events: Iterable[Mapping[str, Any]]) -> None:
        """Fold events in (each spooled event once), log them, and rewrite the report now and then."""
        for raw in events:
            key = spool.key_of(raw)
            if key is not None:
                if key in self._seen:
                    continue
                self._seen.add(key)
            event = json_safe(self.redactor.scrub(dict(raw)))
            self._write_line({"case_id": case_id, **event})
            self.model.apply(case_id, event)
            self._dirty = True
        if self._dirty and time.monotonic() - self._last_write >= WRITE_INTERVAL_S:
            self.write(finished=False)

    def record_incident(self, kind: str, message: str, nodeid: str | None = None) -> None:
        case_id = case_for_nodeid(nodeid, self.case_ids) if nodeid else None
        self.add(case_id, [incident(kind, message, plain_nodeid(nodeid) if nodeid else None, case_id)])
        self.write(finished=False)

    def recover(self) -> int:
        """Apply spooled events the controller never received (after a crash, and at the end)."""
        if self.spool_dir is None:
            return 0
        before = len(self._seen)
        for path in spool.spool_files(self.spool_dir):
            for obj in spool.read_events(path):
                self.add(obj.pop("case_id"), [obj])
        return len(self._seen) - before

    # -- hooks
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.running[nodeid] = time.time()

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.running.pop(nodeid, None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold in the events a test report carries (from this process or an xdist worker).

        First, so that JUnit and the terminal see the node id without the ``@group`` suffix xdist's
        loadgroup mode appends: test case names do not change with ``-n``.
        """
        report.nodeid = plain_nodeid(report.nodeid)
        self.scrub_report(report)
        payload = getattr(report, "asiai", None)
        if isinstance(payload, dict):
            self.add(payload["case_id"], payload["events"])
        elif report.failed and report.when not in ("setup", "call", "teardown"):
            self._crashed_test(report)

    def scrub_report(self, report: pytest.TestReport) -> None:
        """Secrets out of the failure text and captured output, before the terminal and JUnit see them.

        An engine's 401 body may echo the Authorization header; a start-up failure quotes the engine's
        log. Only a report that holds a secret is rewritten (its traceback becomes plain text).
        """
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            report.longrepr = (longrepr[0], longrepr[1], self.redactor.text(str(longrepr[2])))
        elif longrepr is not None:
            text = str(longrepr)
            clean = self.redactor.text(text)
            if clean != text:
                report.longrepr = clean
        report.sections = [(title, self.redactor.text(body)) for title, body in report.sections]

    def _crashed_test(self, report: pytest.TestReport) -> None:
        """xdist's synthetic report for the test a worker died in: record it against its case."""
        message = str(report.longrepr)
        case_id = case_for_nodeid(report.nodeid, self.case_ids)
        self.record_incident("worker_crash", message, report.nodeid)
        if case_id is not None:
            test = {"type": "test", "nodeid": plain_nodeid(report.nodeid), "outcome": "failed", "message": message}
            test["name"] = test["nodeid"].rsplit("::", 1)[-1]
            if self._measured_before_crash(case_id, test["name"]):
                test["outcome"] = "interrupted"
                test["message"] = f"{message} (after its phase was measured: the report keeps that measurement)"
            self.add(case_id, [test])

    def _measured_before_crash(self, case_id: str, test_name: str) -> bool:
        """Whether a crashed ``test_phase[<case>-<phase>]`` had its phase measured, every run ok.

        Its worker died later in the test (the first phase test runs every planned phase). The
        measurement stands (see :meth:`ReportModel.is_remeasured`), so the test is shown cut short
        (``interrupted``), not ``failed`` next to a valid phase; the run still fails (xdist reports the
        crash). A phase with a failed request, or none, leaves the test ``failed``.
        """
        suffix = test_name.partition(f"[{case_id}-")[2].removesuffix("]")
        phase = self.model.cases.get(case_id, {}).get("phases", {}).get(suffix)
        if not test_name.startswith("test_phase[") or phase is None:
            return False
        runs = phase.get("runs") or []
        repeats = self.model.cases[case_id].get("runs") or 1
        return len(runs) >= repeats and not phase.get("errors") and all(r.get("ok") for r in runs)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Tell each xdist worker where to spool its events."""
        if self.spool_dir is not None:
            node.workerinput["asiai_spool"] = str(self.spool_dir)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """Report a benchmark test that crashed its worker once, instead of re-running it.

        Under loadgroup (loadscope) scheduling xdist puts the crashed test back in its group's work
        unit, so the replacement worker runs it again, crashes again, and so on until
        ``--max-worker-restart`` gives up, losing the rest of the group. Marking it done lets the
        replacement worker carry on with the group's remaining tests.
        """
        if case_for_nodeid(crashitem, self.case_ids) is None:
            return
        for unit in getattr(sched, "workqueue", {}).values():
            if crashitem in unit:
                unit[crashitem] = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        """A worker went down: take what it spooled now, before a replacement re-measures its case."""
        self.recover()
        if error is not None and str(error) != "keyboard-interrupt":
            worker = getattr(getattr(node, "gateway", None), "id", "?")
            self.record_incident("worker_down", f"worker {worker} went down: {error}")

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C: record it and which tests were running; the partial report is written at close."""
        self.recover()
        message = f"{excinfo.typename}: {excinfo.value}".rstrip(": ")
        self.record_incident("interrupted", message)
        for nodeid in list(self.running):
            case_id = case_for_nodeid(nodeid, self.case_ids)
            if case_id is not None:
                name = plain_nodeid(nodeid).rsplit("::", 1)[-1]
                test = {"type": "test", "nodeid": plain_nodeid(nodeid), "name": name, "outcome": "interrupted"}
                self.add(case_id, [{**test, "message": message}])

    # -- files
    def write(self, finished: bool, exit_status: int | None = None) -> dict[str, Any]:
        """Build, validate and (with a path) atomically write the report.

        A report that does not match the schema (a suite recorded a malformed result) is not written
        over the report path: it goes to ``PATH.invalid`` with a note in the terminal summary, and the
        run goes on; the events log keeps everything either way.
        """
        report = self.model.build(finished, exit_status)
        self.report = report
        self._dirty = False
        self._last_write = time.monotonic()
        try:
            if finished:
                validate_report(report)
            else:
                validate_partial(report, self.model.changed)
        except jsonschema.ValidationError:
            self._keep_invalid(report)
            return report
        self.model.changed.clear()
        if self.json_path is not None:
            self._write_file(self.json_path, report)
        return report

    def _write_file(self, path: Path, report: Mapping[str, Any]) -> None:
        self.try_write(path, lambda: atomic_write(path, dump_report(report)))

    def try_write(self, path: Path | None, write: Callable[[], object]) -> bool:
        """Run ``write``; a full disk or a vanished directory becomes a note, never a crash (issue 14)."""
        try:
            write()
        except (OSError, ValueError) as exc:
            self._note_failure(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}")
            return False
        return True

    def _note_failure(self, problem: str) -> None:
        where = f"the events log {self.log_path} keeps what it holds" if self.log_path else "no events log"
        note = f"asiai: {problem}; {where} (pytest-asiai rebuild LOG -o REPORT, once there is space)"
        if note not in self.notes:
            self.notes.append(note)

    def _keep_invalid(self, report: Mapping[str, Any]) -> None:
        where = f" ({self.json_path} kept its last valid version)" if self.json_path else ""
        note = f"asiai report does not match its schema{where}: {schema_problem(report)}"
        if self.json_path is not None:
            self._write_file(self.json_path.with_name(self.json_path.name + ".invalid"), report)
            note += f"; see {self.json_path.name}.invalid"
        if note not in self.notes:
            self.notes.append(note)

    def close(self, exit_status: int) -> dict[str, Any]:
        """Take in every spooled event, write the final report, and remove the spool."""
        self.recover()
        report = self.write(finished=True, exit_status=exit_status)
        self._write_line({"type": "finish", "exit_status": exit_status, "finished_at": report["finished_at"]})
        if self._log is not None:
            try:
                self._log.close()
            except OSError as exc:
                self._note_failure(f"cannot close {self.log_path}: {exc.strerror or exc}")
        if self.spool_dir is not None:
            shutil.rmtree(self.spool_dir, ignore_errors=True)
        return report


def redactor_for(cases: Iterable[Case]) -> Redactor:
    """Secrets to keep out of every output: API keys, URL passwords, secret launch arguments."""
    return Redactor.for_cases(cases)


def run_spool_dir(config: pytest.Config, json_path: Path | None) -> Path | None:
    """Beside the report with ``--asiai-json``; a temporary directory for an xdist run without one."""
    if json_path is not None:
        return spool_dir_for(json_path.absolute())
    if getattr(config.option, "numprocesses", None):
        return Path(tempfile.gettempdir()) / f"pytest-asiai-spool-{os.getpid()}"
    return None


def make_collector(
    config: pytest.Config, json_path: Path | None, case_ids: Iterable[str], redactor: Redactor
) -> ReportCollector:
    """The controller's collector, registered as a plugin so its hooks see every test report."""
    collector = ReportCollector(
        run_meta(config),
        json_path,
        redactor=redactor,
        case_ids=case_ids,
        spool_dir=run_spool_dir(config, json_path),
    )
    config.pluginmanager.register(collector, "asiai-report")
    return collector


def worker_spool(config: pytest.Config, redactor: Redactor) -> spool.Spool | None:
    """An xdist worker spools where the controller told it to (``workerinput["asiai_spool"]``)."""
    directory = getattr(config, "workerinput", {}).get("asiai_spool")
    return spool.Spool(Path(directory), redactor) if directory else None


def run_meta(config: pytest.Config) -> dict[str, Any]:
    """What identifies this run: versions, time, command line, source tree and machine."""
    machine = machine_info()
    return {
        "plugin_version": __version__,
        "pytest_version": pytest.__version__,
        "python_version": sys.version.split()[0],
        "started_at": time.time(),
        "command_line": [*config.invocation_params.args],
        "git": git_info(config.invocation_params.dir),
        "machine": machine,
        "machine_id": machine_id(machine),
    }

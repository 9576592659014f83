"""The JSON report: events appended to a JSON Lines log as they arrive, the report file rewritten
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
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_asiai import __version__
from pytest_asiai.config.matrix import Case
from pytest_asiai.measure.machine import case_machine_id, git_info, machine_id, machine_info
from pytest_asiai.measure.mtp import mtp_deltas
from pytest_asiai.report import spool
from pytest_asiai.report.redact import Redactor
from pytest_asiai.wire.serialize import StrictJSONError, json_safe, loads_lenient

SCHEMA_ID = "pytest-asiai/report-v1"
WRITE_INTERVAL_S = 2.0
"""Rewrite the report at most this often during a run (the log is always up to date)."""
CUT_SHORT = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
"""Exit statuses of a run that did not get to the end: its report is not ``complete``."""
TEST_FIELDS = ("nodeid", "name", "outcome", "message", "duration", "markers", "worker")
ASIAI_MARKERS = ("agentic", "burst", "toolcall", "endurance", "gate")


@cache
def report_schema() -> dict[str, Any]:
    text = resources.files("pytest_asiai").joinpath("schemas/report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validators() -> tuple[
    jsonschema.Draft202012Validator, jsonschema.Draft202012Validator, jsonschema.Draft202012Validator
]:
    """The whole report, the report without its cases, and one case (validators are built once)."""
    schema = report_schema()
    envelope = {**schema, "properties": {**schema["properties"], "cases": {"type": "array"}}}
    case = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/case"}
    return tuple(jsonschema.Draft202012Validator(s) for s in (schema, envelope, case))  # type: ignore[return-value]


def validate_report(report: Mapping[str, Any]) -> None:
    """Raise jsonschema.ValidationError when the report does not match the shipped schema."""
    _validators()[0].validate(report)


def validate_partial(report: Mapping[str, Any], case_ids: Iterable[str]) -> None:
    """Validate the report but only the named cases (the others were validated before and did not change).

    Validating a fleet-sized report costs seconds of CPU (jsonschema walks every token timestamp); a
    run rewrites its report often, so only the final write pays for a full validation.
    """
    _, envelope, case = _validators()
    envelope.validate(report)
    wanted = set(case_ids)
    for item in report["cases"]:
        if item.get("id") in wanted:
            case.validate(item)


def schema_problem(report: Any) -> str | None:
    """The most relevant schema violation as one line (``cases[0].phases.cold: ...``), or None."""
    validator = jsonschema.Draft202012Validator(report_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(report))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    return f"{where or '(top level)'}: {error.message}"


def case_problem(case: Any) -> str | None:
    """The most relevant schema violation of one report case (``phases.cold.runs[0].ttft_ms: ...``)."""
    error = jsonschema.exceptions.best_match(_validators()[2].iter_errors(case))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    return f"{where or '(case)'}: {error.message}"


def log_path_for(json_path: Path) -> Path:
    """The incremental JSON Lines log kept beside the report."""
    return json_path.with_name(json_path.name + ".events.jsonl")


def spool_dir_for(json_path: Path) -> Path:
    """Where every process spools its events during a run (removed after a clean finish)."""
    return json_path.with_name(json_path.name + ".spool")


def output_problem(path: Path) -> str | None:
    """Why a file cannot be written at ``path`` (one line), or None; checked before a run starts.

    A report path under a regular file or pointing at a directory used to crash at the end of a
    benchmark (INTERNALERROR, no report); :func:`atomic_write` needs a writable directory.
    """
    if path.is_dir():
        return f"{path} is a directory"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable"
    return None


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


def dump_report(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=1, default=str, allow_nan=False) + "\n"


# -- test events ------------------------------------------------------------------------------------


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
        "worker": os.environ.get("PYTEST_XDIST_WORKER"),
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


# -- the report model ----------------------------------------------------------------------------------


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
        elif kind == "tier":
            case["tier"] = event.get("tier")
        elif kind == "test":
            case["tests"].append({k: event.get(k) for k in TEST_FIELDS})

    def build(self, finished: bool, exit_status: int | None = None) -> dict[str, Any]:
        local = self.meta.get("machine_id")
        cases = [{**c, "machine_id": case_machine_id(local, c)} for c in self.cases.values()]
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


# -- the collector (controller only) ------------------------------------------------------------------


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


# -- rebuild ---------------------------------------------------------------------------------------------


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

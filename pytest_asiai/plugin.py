"""pytest-asiai's hooks. Only hooks live here; the work is done by the modules they call.

Reference for each hook: https://docs.pytest.org/en/stable/reference/reference.html#hooks
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from . import options
from .fixtures import agentic, engine
from .matrix import Case, MatrixError, load_matrix, select_cases
from .protocol import PHASE_NAMES
from .report import ReportCollector, run_meta
from .session import AsiaiSession
from .stash import COLLECTOR_KEY, SESSION_KEY, session_of
from .table import summary_lines

__all__ = ["agentic", "engine"]

MARKERS = {
    "agentic": "agentic protocol phases and their gates (pytest-asiai)",
    "burst": "bursts of simultaneous calls (pytest-asiai)",
    "toolcall": "tool-call cleanliness, thinking ablation and instruction following (pytest-asiai)",
    "endurance": "long sequential tool-call trajectories (pytest-asiai)",
    "gate": "quality gates evaluated on measured or replayed cases (pytest-asiai)",
}


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_addoption(parser: pytest.Parser) -> None:
    options.register(parser)


def _load_cases(settings: options.Settings) -> tuple[list[Case], str | None]:
    """The selected cases, or a reason why there are none (raises UsageError on a bad file)."""
    path = settings.engines_path
    if not settings.engines_path_explicit and not path.exists():
        return [], f"no engine matrix: {path} does not exist (give --asiai-engines PATH)"
    try:
        cases = load_matrix(path)
    except MatrixError as exc:
        raise pytest.UsageError(str(exc)) from None
    return select_cases(cases, settings.engine_filter, settings.model_filter, settings.mtp_filter), None


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    settings = options.read(config)
    cases, load_error = _load_cases(settings)
    log_dir = config.rootpath / ".asiai" / "logs"
    config.stash[SESSION_KEY] = AsiaiSession(settings, cases, load_error, log_dir)
    if settings.json_path is not None and not is_worker(config):
        collector = ReportCollector(settings.json_path, run_meta(config))
        config.stash[COLLECTOR_KEY] = collector
        config.pluginmanager.register(collector, "asiai-report")


def pytest_report_header(config: pytest.Config) -> str | None:
    session = session_of(config)
    if session.load_error:
        return f"asiai: {session.load_error}"
    profiles = sorted({session.settings.profile_for(c.profile) for c in session.cases})
    return (
        f"asiai: {len(session.cases)} case(s) from {session.settings.engines_path} "
        f"(profile {', '.join(profiles) or '-'}, runs {session.settings.runs})"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "asiai_case" not in metafunc.fixturenames:
        return
    session = session_of(metafunc.config)
    if session.load_error and not session.cases:
        raise pytest.UsageError(session.load_error)
    cases = session.cases
    metafunc.parametrize("asiai_case", cases, ids=[c.id for c in cases], scope="session")
    if "phase_name" in metafunc.fixturenames:
        metafunc.parametrize("phase_name", PHASE_NAMES)


def case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("asiai_case") if callspec is not None else None
    return case if isinstance(case, Case) else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Plan each case's phases from the selected tests, and keep each engine on one xdist worker."""
    session = session_of(config)
    for item in items:
        case = case_of(item)
        if case is None:
            continue
        item.add_marker(pytest.mark.xdist_group(case.host_group))
        phase_name = item.callspec.params.get("phase_name")  # type: ignore[attr-defined]
        if isinstance(phase_name, str):
            session.planned[case.id].add(phase_name)


def _test_event(item: pytest.Item, report: pytest.TestReport) -> dict[str, Any]:
    message = None
    if report.failed or report.skipped:
        message = report.longreprtext.strip().splitlines()[-1] if report.longreprtext else None
        if report.skipped and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2])
    return {
        "type": "test",
        "nodeid": item.nodeid,
        "name": item.name,
        "outcome": report.outcome,
        "message": message,
        "duration": report.duration,
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Attach what the case measured since its last report, so it reaches the controller."""
    report: pytest.TestReport = yield
    case = case_of(item)
    if case is not None:
        events = session_of(item.config).drain(case.id)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            events.append(_test_event(item, report))
        report.asiai = {"case_id": case.id, "events": events}  # type: ignore[attr-defined]
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = session_of(config)
    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None:
        for case_id in list(state.outbox):
            collector.add(case_id, state.drain(case_id))
    state.close()
    if collector is not None:
        collector.close(int(exitstatus))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if is_worker(config):
        return
    collector = config.stash.get(COLLECTOR_KEY, None)
    state = session_of(config)
    lines = summary_lines(collector.model.cases if collector else _local_cases(state))
    if lines:
        terminalreporter.write_sep("=", "asiai results")
        for line in lines:
            terminalreporter.write_line(line)
        if collector is not None:
            terminalreporter.write_line(f"report: {collector.json_path}")


def _local_cases(state: AsiaiSession) -> dict[str, dict[str, Any]]:
    return {
        cid: {"id": cid, "phases": {n: r.to_dict() for n, r in a.results.items()}} for cid, a in state.agentics.items()
    }

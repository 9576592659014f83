"""pytest-asiai's hooks. Only hooks live here; the work is done by the modules they call.

Reference for each hook: https://docs.pytest.org/en/stable/reference/reference.html#hooks
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_asiai.agentic.protocol import PHASE_NAMES, phase_names_for
from pytest_asiai.agentic.recordings import ReplayError
from pytest_asiai.agentic.replay import load_replay
from pytest_asiai.burst import runner as burst_runner
from pytest_asiai.config import options, pathargs
from pytest_asiai.config.matrix import Case, MatrixError, load_matrix, select_cases
from pytest_asiai.config.stash import COLLECTOR_KEY, SESSION_KEY, session_of
from pytest_asiai.gates.phases import GATE_NAMES
from pytest_asiai.gates.user import user_gate_event
from pytest_asiai.report import junit, regression
from pytest_asiai.report.events import test_event
from pytest_asiai.report.html import write_html
from pytest_asiai.report.regression import asiai_baseline
from pytest_asiai.report.table import summary_lines
from pytest_asiai.report.writer import make_collector, redactor_for, worker_spool
from pytest_asiai.runtime import progress, termination
from pytest_asiai.runtime import suites as builtin_suites
from pytest_asiai.runtime.distribute import choose_engine_scheduling, is_worker, wants_engine_scheduling
from pytest_asiai.runtime.fixtures import agentic, asiai_context, burst, endurance, engine, toolcall
from pytest_asiai.runtime.session import AsiaiSession

__all__ = ["agentic", "asiai_baseline", "asiai_context", "burst", "endurance", "engine", "toolcall"]

MARKERS = {
    "agentic": "agentic protocol phases and their gates (pytest-asiai)",
    "burst": "bursts of simultaneous calls (pytest-asiai)",
    "toolcall": "tool-call cleanliness, thinking ablation and instruction following (pytest-asiai)",
    "endurance": "long sequential tool-call trajectories (pytest-asiai)",
    "gate": "quality gates evaluated on measured or replayed cases (pytest-asiai)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    options.register(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before any conftest is imported: a path option written with a space moved the rootdir."""
    params = early_config.invocation_params
    pathargs.check(params.args, params.dir)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    choose_engine_scheduling(config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n``, unless the user chose a ``--dist`` mode: one worker per engine host."""
    if not wants_engine_scheduling(config):
        return None
    from pytest_asiai.runtime.scheduling import EngineGroupScheduling

    return EngineGroupScheduling(config, log, {c.id: c.host_group for c in session_of(config).cases})


def _load_cases(settings: options.Settings) -> tuple[list[Case], str | None]:
    """The selected cases, or a reason why there are none (raises UsageError on a bad file).

    With ``--asiai-replay`` the cases are the recorded ones and engines.toml is not read.
    """
    if settings.replay:
        try:
            replayed = load_replay(settings.replay)
        except ReplayError as exc:
            raise pytest.UsageError(str(exc)) from None
        return _select(replayed, settings), None
    path = settings.engines_path
    if not settings.engines_path_explicit and not path.exists():
        return [], f"no engine matrix: {path} does not exist (give --asiai-engines=PATH)"
    try:
        cases = load_matrix(path)
    except MatrixError as exc:
        raise pytest.UsageError(str(exc)) from None
    return _select(cases, settings), None


def _select(cases: list[Case], settings: options.Settings) -> list[Case]:
    """The cases the --asiai-engine/-model/-mtp filters keep; a filter matching nothing is a usage error."""
    try:
        return select_cases(cases, settings.engine_filter, settings.model_filter, settings.mtp_filter)
    except MatrixError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    settings = options.read(config)
    builtin_suites.add_to_args(config, settings)
    cases, load_error = _load_cases(settings)
    log_dir = config.rootpath / ".asiai" / "logs"
    state = config.stash[SESSION_KEY] = AsiaiSession(settings, cases, load_error, log_dir)
    regression.configure(config, settings.baseline, settings.tolerances, settings.update_baseline)
    redactor = redactor_for(cases)
    if is_worker(config):
        state.spool = worker_spool(config, redactor)
    elif cases or settings.json_path or settings.html_path:
        collector = make_collector(config, settings.json_path, [c.id for c in cases], redactor)
        config.stash[COLLECTOR_KEY] = collector
        state.spool = collector.own_spool()
    if cases:
        termination.install(config)
        progress.install(config)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Built-in suites the user did not pick, or whose file name the user's own tree holds."""
    return builtin_suites.ignored(config, collection_path)


def pytest_unconfigure(config: pytest.Config) -> None:
    termination.uninstall(config)


def pytest_report_header(config: pytest.Config) -> str | None:
    session = session_of(config)
    if session.load_error:
        return f"asiai: {session.load_error}"
    profiles = sorted({session.settings.profile_for(c.profile) for c in session.cases})
    if session.settings.replay:
        return f"asiai: {len(session.cases)} case(s) replayed from {', '.join(map(str, session.settings.replay))}"
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
    if "burst_size" in metafunc.fixturenames:
        pairs, ids = burst_runner.parametrization(session.settings, cases)
        metafunc.parametrize(("asiai_case", "burst_size"), pairs, ids=ids, scope="session")
    else:
        metafunc.parametrize("asiai_case", cases, ids=[c.id for c in cases], scope="session")
    if "phase_name" in metafunc.fixturenames:
        metafunc.parametrize("phase_name", PHASE_NAMES)
    if "gate_name" in metafunc.fixturenames:
        metafunc.parametrize("gate_name", GATE_NAMES)
    if "asiai_metric" in metafunc.fixturenames:
        metrics = regression.regression_metrics(metafunc.config, PHASE_NAMES)
        metafunc.parametrize("asiai_metric", metrics, ids=[m.id for m in metrics])


def case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("asiai_case") if callspec is not None else None
    return case if isinstance(case, Case) else None


def _deselect_inapplicable_phases(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``restart-prefix`` needs an engine the plugin manages: deselect it for live cases given by URL."""
    dropped = []
    for item in items:
        case = case_of(item)
        phase_name = item.callspec.params.get("phase_name") if case is not None else None  # type: ignore[attr-defined]
        if case is not None and case.replay is None and isinstance(phase_name, str):
            if phase_name not in phase_names_for(case.managed is not None):
                dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.hookimpl(tryfirst=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_group_by_host(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its engine host's ``xdist_group``, for users who choose ``--dist loadgroup``.

    The plugin's own scheduler does not need the mark. First, so the marks exist when an xdist worker
    turns them into ``@group`` node-id suffixes (on pytest < 9.2; see :mod:`pytest_asiai.runtime.scheduling`)."""
    for item in items:
        case = case_of(item)
        if case is not None:
            item.add_marker(pytest.mark.xdist_group(case.host_group))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Plan each case's phases from the selected tests; regression tests go last."""
    session = session_of(config)
    _deselect_inapplicable_phases(config, items)
    for item in items:
        case = case_of(item)
        if case is None:
            continue
        phase_name = item.callspec.params.get("phase_name")  # type: ignore[attr-defined]
        if isinstance(phase_name, str):
            session.planned[case.id].add(phase_name)
    items[:] = regression.order_regression_items(config, items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Attach what the case measured since its last report, so it reaches the controller."""
    report: pytest.TestReport = yield
    case = case_of(item)
    if case is not None:
        state = session_of(item.config)
        events = state.drain(case.id)
        if report.when == "call":
            phase_name = item.callspec.params.get("phase_name")  # type: ignore[attr-defined]
            context = state.contexts.get(case.id)
            results = (context.phase_results() if context is not None else None) or {}
            phase = results.get(phase_name) if isinstance(phase_name, str) else None
            properties = junit.properties_for(phase_name, phase.stats if phase else None, events)
            item.user_properties.extend(properties)
            report.user_properties.extend(properties)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            events.append(test_event(item, report))
            if (gate := user_gate_event(item, report, events)) is not None:
                events.append(gate)
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
    if state.spool is not None:
        state.spool.close()
    if collector is not None:
        report = collector.close(int(exitstatus))
        html_path = state.settings.html_path
        if html_path is not None and collector.try_write(html_path, lambda: write_html(report, html_path)):
            collector.notes.append(f"HTML report: {html_path}")
        collector.try_write(
            state.settings.baseline, lambda: collector.notes.extend(regression.finish(config, report, int(exitstatus)))
        )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR_KEY, None)
    if is_worker(config) or collector is None:
        return  # without a collector (no case, no report path) nothing was measured
    lines = summary_lines(collector.model.cases, collector.model.meta.get("machine_id"))
    if lines:
        terminalreporter.write_sep("=", "asiai results")
        for line in lines:
            terminalreporter.write_line(line)
        if collector.json_path is not None:
            terminalreporter.write_line(f"report: {collector.json_path}")
    for line in collector.notes:
        terminalreporter.write_line(line)

"""The in-run baseline check: ``--asiai-baseline`` read once per process, ``test_regression`` per case
and metric, and the end-of-run summary and update.

The comparison itself (metrics, tolerances, matching, verdicts) is :mod:`pytest_asiai.report.baseline`.
A live case is compared from its measured phase statistics and its comparison key, read through
the same typed phase reader a stored report goes through (:class:`pytest_asiai.report.model.ReportedPhase`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from pytest_asiai.config.stash import session_of
from pytest_asiai.measure.machine import case_machine_id, machine_id, machine_info
from pytest_asiai.report.baseline import (
    BaselineError,
    CaseKey,
    Metric,
    Verdict,
    compare_values,
    describe_key,
    find_case,
    key_of,
    load_report,
    metrics_for,
    parse_tolerances,
    tolerance_for,
    write_baseline,
)
from pytest_asiai.report.model import ReportedPhase, parse_stats


class BaselineImprovement(UserWarning):
    """A metric improved beyond its tolerance: the baseline is stale."""


@cache
def local_machine_id() -> str | None:
    return machine_id(machine_info())


class BaselineCheck:
    """The baseline of this session, and the comparison behind ``test_regression``."""

    def __init__(
        self,
        path: Path | None,
        tolerances: Mapping[str, float],
        *,
        require: bool = False,
        update: bool = False,
    ) -> None:
        self.path = path
        self.tolerances = dict(tolerances)
        self.require = require
        self.update = update
        self.report: dict[str, Any] | None = None
        self.missing: str | None = None
        if path is not None:
            if path.exists():
                self.report = load_report(path)
            else:
                self.missing = f"baseline {path} does not exist"

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def compare(self, key: CaseKey, metric: Metric, value: float | None, version: str | None) -> Verdict:
        """The verdict for one metric of the current case: its comparison key, measured value and engine version."""
        tolerance = tolerance_for(metric, self.tolerances)
        base = find_case(self.report, key) if self.report is not None else None
        if base is None:
            why = self.missing or f"no case in {self.path} matches {describe_key(key)}"
            return Verdict(metric, None, value, tolerance, "no_baseline", f"{metric.id}: {why}")
        verdict = compare_values(metric, metric.value(base), value, tolerance)
        old_v, new_v = base.version, version
        message = verdict.message if old_v == new_v else f"{verdict.message} [engine {old_v} → {new_v}]"
        return replace(verdict, message=message, old_version=old_v, new_version=new_v)

    def settle(self, verdict: Verdict) -> Verdict:
        """Apply the session's policy: updating accepts everything, a missing baseline may be required."""
        if self.update:
            return replace(verdict, outcome="updated", message=f"{verdict.message} (baseline being updated)")
        if verdict.outcome == "no_baseline" and self.require:
            return replace(verdict, outcome="not_measured", message=f"{verdict.message} (--asiai-require-baseline)")
        return verdict


BASELINE_KEY: pytest.StashKey[BaselineCheck] = pytest.StashKey()


def configure(config: pytest.Config, path: Path | None, tolerances: Sequence[str], update: bool) -> BaselineCheck:
    """Read the options once per process; a bad tolerance or an unreadable baseline is a usage error."""
    if update and path is None:
        raise pytest.UsageError("--asiai-update-baseline: needs --asiai-baseline PATH (the file to write)")
    try:
        parsed = parse_tolerances(tolerances, "--asiai-tolerance / ini asiai_tolerances")
        check = BaselineCheck(path, parsed, require=bool(config.getoption("asiai_require_baseline")), update=update)
    except (ValueError, BaselineError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[BASELINE_KEY] = check
    if check.missing and not update and not hasattr(config, "workerinput"):
        config.issue_config_time_warning(BaselineMissing(f"{check.missing}: nothing to compare with"), stacklevel=2)
    return check


class RegressionGate:
    """What ``test_regression`` asks: measure the metric's phase, compare, record, warn or skip."""

    def __init__(self, config: pytest.Config, check: BaselineCheck) -> None:
        self.config = config
        self.baseline = check

    def check(self, agentic: Any, metric: Metric) -> Verdict:
        """Measure the metric's phase (once per session) and compare its median with the baseline."""
        phase = ReportedPhase(metric.phase, parse_stats(agentic.phase(metric.phase).stats))
        engine = agentic.handle.to_dict()
        desc = agentic.case.describe()
        key = key_of(
            desc, engine, agentic.profile.name, case_machine_id(local_machine_id(), {"case": desc, "engine": engine})
        )
        value = phase.stat(metric.stat)
        verdict = self.baseline.settle(self.baseline.compare(key, metric, value, engine.get("version")))
        if verdict.outcome == "improved":
            warnings.warn(
                BaselineImprovement(f"{verdict.message}: refresh the baseline with --asiai-update-baseline"),
                stacklevel=2,
            )
        record = verdict.to_dict(baseline=str(self.baseline.path))
        session_of(self.config).record_result(agentic.case.id, "regression", metric.id, record)
        if verdict.outcome == "no_baseline":
            warnings.warn(BaselineMissing(verdict.message), stacklevel=2)
            pytest.skip(verdict.message)
        return verdict


@pytest.fixture(scope="session")
def asiai_baseline(request: pytest.FixtureRequest) -> RegressionGate:
    """The session's baseline comparison (``--asiai-baseline``); used by ``suites/test_regression.py``."""
    return RegressionGate(request.config, request.config.stash[BASELINE_KEY])


class BaselineMissing(UserWarning):
    """Nothing to compare with: the baseline file or one of its cases is missing."""


def regression_metrics(config: pytest.Config, phases: Iterable[str]) -> list[Metric]:
    """``test_regression`` is generated per case × metric only when a baseline is given."""
    check = config.stash.get(BASELINE_KEY, None)
    return metrics_for(phases) if check is not None and check.enabled else []


def order_regression_items(config: pytest.Config, items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """Regression tests run last (after everything they compare was measured); without a baseline
    they are deselected rather than skipped one by one."""
    keep: list[pytest.Item] = []
    regression: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if "asiai_metric" not in getattr(item, "fixturenames", ()):
            keep.append(item)
        elif isinstance(getattr(getattr(item, "callspec", None), "params", {}).get("asiai_metric"), Metric):
            regression.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    return keep + regression


def _regressions(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for c in report.get("cases", []) for r in (c.get("results") or {}).get("regression", {}).values()]


def finish(config: pytest.Config, report: Mapping[str, Any], exit_status: int) -> list[str]:
    """At the end of the run (controller): summarise the comparison and update the baseline if asked."""
    check = config.stash.get(BASELINE_KEY, None)
    if check is None or not check.enabled:
        return []
    verdicts = _regressions(report)
    counts = {o: sum(v["outcome"] == o for v in verdicts) for o in ("regressed", "improved", "no_baseline")}
    lines = [
        f"asiai baseline {check.path}: {len(verdicts)} metric(s) compared, {counts['regressed']} regression(s), "
        f"{counts['improved']} improvement(s), {counts['no_baseline']} without baseline"
    ]
    if not check.update:
        return lines
    if exit_status == pytest.ExitCode.INTERRUPTED:
        return [*lines, f"baseline {check.path} not updated: the run was interrupted"]
    if not any(c.get("phases") for c in report.get("cases", [])):
        return [*lines, f"baseline {check.path} not updated: no case was measured"]
    assert check.path is not None
    try:
        merged = write_baseline(check.path, check.report, report)
    except BaselineError as exc:
        return [*lines, f"baseline not updated: {exc}"]
    kept = len(merged["cases"]) - len(report.get("cases", []))
    return [*lines, f"baseline updated: {check.path} ({len(report['cases'])} case(s) from this run, {kept} kept)"]

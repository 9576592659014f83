"""Baselines: compare a run (or a report) with a stored report, metric by metric, direction-aware.

A baseline is an ordinary pytest-asiai report. Cases are matched by what was measured, never by
node id (xdist's loadgroup rewrites node ids): engine name, engine family (``kind``, so an engine
*upgrade* still matches its baseline), model, MTP setting, prompt profile and machine. Each metric
has a direction (TTFT lower is better, decode throughput higher is better) and a tolerance in
percent; moving the wrong way beyond it is a regression, moving the right way beyond it is an
improvement worth a baseline refresh. A regression fails ``test_regression[<case>-<metric>]``, so it
is attributed to one JUnit test case and gives pytest's own exit code 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_asiai.config.stash import session_of
from pytest_asiai.measure.machine import case_machine_id, machine_id, machine_info
from pytest_asiai.report.writer import atomic_write, dump_report, schema_problem
from pytest_asiai.wire.serialize import StrictJSONError, loads_strict

Direction = Literal["lower", "higher"]

#: Phase statistics compared with a baseline, with their direction and default tolerance (percent).
STATS: dict[str, tuple[Direction, float, str]] = {
    "ttft_ms": ("lower", 20.0, "ms"),
    "decode_tok_s": ("higher", 10.0, "tok/s"),
}
FALLBACK_TOLERANCE = 20.0


class BaselineError(Exception):
    """A baseline file that cannot be used; the message is one line naming the file."""


class BaselineImprovement(UserWarning):
    """A metric improved beyond its tolerance: the baseline is stale."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One comparable figure of a case: the median of a phase statistic."""

    phase: str
    stat: str

    @property
    def id(self) -> str:
        return f"{self.phase}.{self.stat}"

    @property
    def direction(self) -> Direction:
        return STATS[self.stat][0]

    @property
    def unit(self) -> str:
        return STATS[self.stat][2]

    def value(self, case: Mapping[str, Any]) -> float | None:
        """The metric in a report case (None when that phase or value was not measured)."""
        phase = (case.get("phases") or {}).get(self.phase) or {}
        stat = (phase.get("stats") or {}).get(self.stat) or {}
        value = stat.get("median")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def metrics_for(phases: Iterable[str]) -> list[Metric]:
    """Every compared metric of these phases, phase by phase."""
    return [Metric(p, s) for p in phases for s in STATS]


# -- tolerances -------------------------------------------------------------------------------------------


def parse_tolerances(items: Iterable[str], where: str = "--asiai-tolerance") -> dict[str, float]:
    """``ttft_ms=20%`` (every phase) or ``warm.ttft_ms=35%`` (one phase); raise ValueError in one line."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name, text = name.strip(), raw.strip().removesuffix("%").strip()
        stat = name.rpartition(".")[2]
        if not sep or not name:
            raise ValueError(f"{where}: {item!r}: expected METRIC=PCT, e.g. ttft_ms=20%")
        if stat not in STATS:
            raise ValueError(f"{where}: {item!r}: unknown metric {stat!r} (known: {', '.join(STATS)})")
        try:
            pct = float(text)
        except ValueError:
            raise ValueError(f"{where}: {item!r}: {raw.strip()!r} is not a percentage") from None
        if not pct >= 0:
            raise ValueError(f"{where}: {item!r}: a tolerance cannot be negative")
        out[name] = pct
    return out


def tolerance_for(metric: Metric, tolerances: Mapping[str, float]) -> float:
    """The most specific tolerance: ``phase.stat``, then ``stat``, then the built-in default."""
    if metric.id in tolerances:
        return tolerances[metric.id]
    if metric.stat in tolerances:
        return tolerances[metric.stat]
    return STATS[metric.stat][1] if metric.stat in STATS else FALLBACK_TOLERANCE


# -- matching ---------------------------------------------------------------------------------------------

CaseKey = tuple[str | None, ...]


def case_key(case: Mapping[str, Any], report_machine_id: str | None = None) -> CaseKey:
    """What makes two measurements comparable: engine, family, model, MTP, profile and machine."""
    desc = case.get("case") or {}
    engine = case.get("engine") or {}
    machine = case.get("machine_id") or case_machine_id(report_machine_id, case)
    return (
        desc.get("engine") or engine.get("name"),
        engine.get("kind") or desc.get("kind"),
        desc.get("model") or engine.get("model"),
        desc.get("mtp") or engine.get("mtp"),
        case.get("profile") or desc.get("profile"),
        machine,
    )


def describe_key(key: CaseKey) -> str:
    engine, kind, model, mtp, profile, machine = key
    return f"{engine} ({kind}) {model} mtp_{mtp} profile {profile} on {machine}"


def find_case(report: Mapping[str, Any], key: CaseKey) -> Mapping[str, Any] | None:
    """The report's case measured under the same conditions, or None."""
    for case in report.get("cases", []):
        if case_key(case, report.get("machine_id")) == key:
            return dict(case)
    return None


def load_report(path: Path) -> dict[str, Any]:
    """Read and validate a report file; BaselineError (one line) when it is unusable."""
    try:
        data = loads_strict(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BaselineError(f"{path}: not JSON: {exc}") from None
    except StrictJSONError as exc:  # NaN, 1e400, huge integers, deep nesting (issue 14 item 9)
        raise BaselineError(f"{path}: {exc}") from None
    problem = schema_problem(data)
    if problem is not None:
        raise BaselineError(f"{path}: not a pytest-asiai report: {problem}")
    report: dict[str, Any] = data
    return report


# -- comparing --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """One metric of one case against the baseline."""

    metric: Metric
    old: float | None
    new: float | None
    tolerance_pct: float
    outcome: str
    """passed, regressed, improved, no_baseline, not_measured or updated."""
    message: str
    change_pct: float | None = None
    old_version: str | None = None
    new_version: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome not in ("regressed", "not_measured")

    def to_dict(self, **extra: Any) -> dict[str, Any]:
        return {
            "metric": self.metric.id,
            "direction": self.metric.direction,
            "old": self.old,
            "new": self.new,
            "change_pct": self.change_pct,
            "tolerance_pct": self.tolerance_pct,
            "outcome": self.outcome,
            "message": self.message,
            "old_version": self.old_version,
            "new_version": self.new_version,
            **extra,
        }


def _fmt(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:.1f} {unit}"


def worse_pct(metric: Metric, reference: float, value: float) -> float | None:
    """How much worse ``value`` is than ``reference``, in percent of ``reference`` (negative: better)."""
    if reference == 0:
        return None
    change = (value - reference) / abs(reference) * 100.0
    return change if metric.direction == "lower" else -change


def compare_values(metric: Metric, old: float | None, new: float | None, tolerance_pct: float) -> Verdict:
    """Direction-aware comparison with the baseline.

    A regression is a change the wrong way beyond the tolerance, relative to the baseline (TTFT
    +20 %, decode −10 %). An improvement is a regression in reverse: taking this run as the baseline,
    the old value would fail. So a TTFT that halves is an improvement at 20 % (and at 99 %), which a
    plain −20 % rule would cap at −100 %.
    """
    rule = f"{metric.direction} is better, tolerance {tolerance_pct:g}%"
    if old is None:
        return Verdict(metric, old, new, tolerance_pct, "no_baseline", f"{metric.id}: not in the baseline")
    if new is None:
        message = f"{metric.id}: not measured in this run (baseline {_fmt(old, metric.unit)})"
        return Verdict(metric, old, new, tolerance_pct, "not_measured", message)
    head = f"{metric.id}: {_fmt(old, metric.unit)} → {_fmt(new, metric.unit)}"
    worse, reverse = worse_pct(metric, old, new), worse_pct(metric, new, old)
    if worse is None:
        return Verdict(metric, old, new, tolerance_pct, "passed", f"{head} (baseline is 0: no relative change)")
    change = (new - old) / abs(old) * 100.0
    text = f"{head} ({change:+.1f}%, {rule})"
    if worse > tolerance_pct:
        return Verdict(metric, old, new, tolerance_pct, "regressed", f"regression: {text}", change)
    if reverse is not None and reverse > tolerance_pct:
        return Verdict(metric, old, new, tolerance_pct, "improved", f"improvement: {text}", change)
    return Verdict(metric, old, new, tolerance_pct, "passed", text, change)


@dataclass(frozen=True, slots=True)
class CaseComparison:
    """A case of the new report with its baseline case (None when the baseline lacks it)."""

    key: CaseKey
    case_id: str
    baseline_id: str | None
    verdicts: list[Verdict]
    old_version: str | None = None
    new_version: str | None = None


def _version(case: Mapping[str, Any] | None) -> str | None:
    return ((case or {}).get("engine") or {}).get("version")


def compare_reports(
    old: Mapping[str, Any], new: Mapping[str, Any], tolerances: Mapping[str, float]
) -> list[CaseComparison]:
    """Every case of ``new`` against its match in ``old`` (the ``compare`` command and its tests)."""
    out = []
    for case in new.get("cases", []):
        key = case_key(case, new.get("machine_id"))
        base = find_case(old, key)
        phases = [p for p in case.get("phases", {}) if base is None or p in base.get("phases", {})]
        old_v, new_v = _version(base), _version(case)
        verdicts = [
            replace(
                compare_values(m, m.value(base) if base else None, m.value(case), tolerance_for(m, tolerances)),
                old_version=old_v,
                new_version=new_v,
            )
            for m in metrics_for(phases)
        ]
        base_id = base.get("id") if base else None
        out.append(CaseComparison(key, case["id"], base_id, verdicts, _version(base), _version(case)))
    return out


def comparison_lines(comparisons: Sequence[CaseComparison]) -> list[str]:
    """A readable table: one row per case and metric, then a one-line verdict."""
    lines = [f"{'case':<36} {'metric':<28} {'old':>12} {'new':>12} {'change':>8}  verdict"]
    for comp in comparisons:
        if comp.baseline_id is None:
            lines.append(f"{comp.case_id:<36} {'(no baseline case)':<28} {describe_key(comp.key)}")
            continue
        for v in comp.verdicts:
            change = "—" if v.change_pct is None else f"{v.change_pct:+.1f}%"
            lines.append(
                f"{comp.case_id:<36} {v.metric.id:<28} {_fmt(v.old, ''):>12} {_fmt(v.new, ''):>12} {change:>8}  "
                f"{v.outcome}"
            )
    regressions = sum(v.outcome == "regressed" for c in comparisons for v in c.verdicts)
    lines.append(f"{regressions} regression(s)" if regressions else "no regression")
    return lines


# -- updating ---------------------------------------------------------------------------------------------


def with_machine_ids(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report with each case's machine pinned, so merged baselines keep where each was measured."""
    out = dict(report)
    out["cases"] = [
        {**c, "machine_id": c.get("machine_id") or case_machine_id(report.get("machine_id"), c)}
        for c in report.get("cases", [])
    ]
    return out


def merge_baseline(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """This run's cases replace their matches; the baseline's other cases (other engines, machines) stay."""
    new = with_machine_ids(new)
    keys = {case_key(c) for c in new["cases"]}
    kept = [c for c in with_machine_ids(old)["cases"] if case_key(c) not in keys] if old else []
    return {**new, "cases": [*kept, *new["cases"]]}


def write_baseline(path: Path, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Merge and atomically write the baseline; it is validated like any report."""
    merged = merge_baseline(old, new)
    problem = schema_problem(merged)
    if problem is not None:
        raise BaselineError(f"{path}: refusing to write an invalid baseline: {problem}")
    atomic_write(path, dump_report(merged))
    return merged


# -- the in-run check (the ``asiai_baseline`` fixture) ------------------------------------------------------


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

    def compare(self, current: Mapping[str, Any], metric: Metric) -> Verdict:
        """The verdict for one metric of the current case (a report-shaped dict)."""
        tolerance = tolerance_for(metric, self.tolerances)
        key = case_key(current, local_machine_id())
        base = find_case(self.report, key) if self.report is not None else None
        if base is None:
            why = self.missing or f"no case in {self.path} matches {describe_key(key)}"
            return Verdict(metric, None, metric.value(current), tolerance, "no_baseline", f"{metric.id}: {why}")
        verdict = compare_values(metric, metric.value(base), metric.value(current), tolerance)
        old_v, new_v = _version(base), _version(current)
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
        result = agentic.phase(metric.phase)
        current = {
            "case": agentic.case.describe(),
            "engine": agentic.handle.to_dict(),
            "profile": agentic.profile.name,
            "phases": {metric.phase: {"stats": result.stats}},
        }
        verdict = self.baseline.settle(self.baseline.compare(current, metric))
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

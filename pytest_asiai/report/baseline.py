"""Baselines: compare a run (or a report) with a stored report, metric by metric, direction-aware.

A baseline is an ordinary pytest-asiai report. Cases are matched by what was measured, never by
node id (xdist's loadgroup rewrites node ids): engine name, engine family (``kind``, so an engine
*upgrade* still matches its baseline), model, MTP setting, prompt profile and machine. Each metric
has a direction (TTFT lower is better, decode throughput higher is better) and a tolerance in
percent; moving the wrong way beyond it is a regression, moving the right way beyond it is an
improvement worth a baseline refresh. A regression fails ``test_regression[<case>-<metric>]``, so it
is attributed to one JUnit test case and gives pytest's own exit code 1 (the in-run side lives in
:mod:`pytest_asiai.report.regression`). Cases are read as typed results (:mod:`pytest_asiai.report.model`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pytest_asiai.measure.machine import case_machine_id
from pytest_asiai.report.files import atomic_write, dump_report
from pytest_asiai.report.model import CaseResult, as_case
from pytest_asiai.report.schema import schema_problem
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

    def value(self, case: CaseResult | Mapping[str, Any]) -> float | None:
        """The metric in a report case (None when that phase or value was not measured)."""
        return as_case(case).stat(self.phase, self.stat)


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


def case_key(case: CaseResult | Mapping[str, Any], report_machine_id: str | None = None) -> CaseKey:
    """What makes two measurements comparable: engine, family, model, MTP, profile and machine."""
    case = as_case(case, report_machine_id)
    return key_of(case.description, case.engine, case.profile, case.machine_id)


def key_of(desc: Mapping[str, Any], engine: Mapping[str, Any], profile: str | None, machine: str | None) -> CaseKey:
    """The comparison key of a case description, its engine, prompt profile and machine."""
    return (
        desc.get("engine") or engine.get("name"),
        engine.get("kind") or desc.get("kind"),
        desc.get("model") or engine.get("model"),
        desc.get("mtp") or engine.get("mtp"),
        profile or desc.get("profile"),
        machine,
    )


def describe_key(key: CaseKey) -> str:
    engine, kind, model, mtp, profile, machine = key
    return f"{engine} ({kind}) {model} mtp_{mtp} profile {profile} on {machine}"


def find_case(report: Mapping[str, Any], key: CaseKey) -> CaseResult | None:
    """The report's case measured under the same conditions, or None."""
    for raw in report.get("cases", []):
        case = as_case(raw, report.get("machine_id"))
        if case_key(case) == key:
            return case
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


def compare_reports(
    old: Mapping[str, Any], new: Mapping[str, Any], tolerances: Mapping[str, float]
) -> list[CaseComparison]:
    """Every case of ``new`` against its match in ``old`` (the ``compare`` command and its tests)."""
    out = []
    for raw in new.get("cases", []):
        case = as_case(raw, new.get("machine_id"))
        key = case_key(case)
        base = find_case(old, key)
        phases = [p for p in case.phases if base is None or p in base.phases]
        old_v, new_v = base.version if base else None, case.version
        verdicts = [
            replace(
                compare_values(m, m.value(base) if base else None, m.value(case), tolerance_for(m, tolerances)),
                old_version=old_v,
                new_version=new_v,
            )
            for m in metrics_for(phases)
        ]
        out.append(CaseComparison(key, case.id, base.id if base else None, verdicts, old_v, new_v))
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

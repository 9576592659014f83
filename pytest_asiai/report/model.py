"""Typed report results: a report case parsed once into frozen dataclasses, read the same way by the
terminal table, the HTML page, baselines, JUnit properties and tiers.

The JSON report (``schemas/report.schema.json``) stays the interchange format; it comes in through the
readers that check it (:func:`pytest_asiai.report.baseline.load_report`, strict JSON and the schema;
:func:`pytest_asiai.report.fold.rebuild`, the lenient reader of a crash-cut events log) or straight
from the collector's model. :func:`parse_case` turns one ``cases[i]`` into a :class:`CaseResult`:
statistics, gates, bursts and endurance curves become typed fields, and an unmeasured value is None,
never 0. One name per quantity: a request's total time is ``total_ms`` everywhere; reports written
before that rename called it ``latency_ms`` in burst, tool-call and endurance results, and
:func:`total_ms` still reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_asiai.measure.machine import case_machine_id

TOTAL = "total_ms"
"""A request's time from sent to its last byte, in phases, bursts, tool calls and endurance."""
LEGACY_TOTAL = "latency_ms"
"""The same quantity's name in burst, tool-call and endurance results of older reports."""

EMPTY: Mapping[str, Any] = {}


def number(value: Any) -> float | None:
    """A measured number, or None (booleans and strings are not measurements)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else EMPTY


def total_ms(entry: Mapping[str, Any]) -> Any:
    """``total_ms`` of a call, turn, pass or curve; ``latency_ms`` in a report written before the rename."""
    return entry[TOTAL] if TOTAL in entry else entry.get(LEGACY_TOTAL)


@dataclass(frozen=True, slots=True)
class Stat:
    """One phase statistic over its successful requests (``metrics.summarize``)."""

    n: int = 0
    median: float | None = None
    min: float | None = None
    max: float | None = None
    cv: float | None = None

    @classmethod
    def parse(cls, raw: Any) -> Stat:
        """Numbers kept as reported (a token count's median stays an integer in JUnit properties)."""
        raw = mapping(raw)
        n = raw.get("n")
        values = (raw.get(k) if number(raw.get(k)) is not None else None for k in ("median", "min", "max", "cv"))
        return cls(n if isinstance(n, int) and not isinstance(n, bool) else 0, *values)

    def get(self, key: str) -> float | None:
        """``median``, ``min``, ``max`` or ``cv`` as a float."""
        return number(getattr(self, key)) if key in ("median", "min", "max", "cv") else None


def parse_stats(raw: Any) -> dict[str, Stat]:
    """A phase's ``stats``: the report's, or a live :class:`pytest_asiai.agentic.results.PhaseResult`'s."""
    return {str(name): Stat.parse(stat) for name, stat in mapping(raw).items()}


@dataclass(frozen=True, slots=True)
class ReportedPhase:
    """One measured phase: its statistics, its requests and the repeats that sent nothing."""

    name: str
    stats: Mapping[str, Stat] = field(default_factory=dict)
    runs: tuple[Mapping[str, Any], ...] = ()
    errors: tuple[str, ...] = ()

    @classmethod
    def parse(cls, name: str, raw: Any) -> ReportedPhase:
        raw = mapping(raw)
        runs = tuple(r for r in raw.get("runs") or () if isinstance(r, Mapping))
        return cls(name, parse_stats(raw.get("stats")), runs, tuple(str(e) for e in raw.get("errors") or ()))

    def stat(self, metric: str, key: str = "median") -> float | None:
        """One statistic of the phase; None when it was not measured."""
        found = self.stats.get(metric)
        return found.get(key) if found is not None else None

    @property
    def max_tokens(self) -> int | None:
        values = [r["max_tokens"] for r in self.runs if isinstance(r.get("max_tokens"), int)]
        return max(values) if values else None


@dataclass(frozen=True, slots=True)
class ReportedGate:
    """A gate's entry in ``results.gates``: its value, threshold, outcome and declared tier effect."""

    name: str
    value: Any = None
    unit: str | None = None
    threshold: Any = None
    outcome: str = ""
    reason: str | None = None
    tier: str | None = None
    """``ok``, ``reserve`` or ``eliminated``: what the gate declared its outcome means for the tier."""
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, raw: Any) -> ReportedGate:
        raw = mapping(raw)
        unit, reason, tier = (raw.get(k) if isinstance(raw.get(k), str) else None for k in ("unit", "reason", "tier"))
        outcome, details = str(raw.get("outcome", "")), mapping(raw.get("details"))
        return cls(name, raw.get("value"), unit, raw.get("threshold"), outcome, reason, tier, details)

    @property
    def passed(self) -> bool:
        return self.outcome.lower() in ("pass", "passed")

    def cause(self) -> str:
        """What put a case in its tier: ``ttft 600 ms > ttft_ok 500`` (the bound the gate names)."""
        value = number(self.value)
        if value is None:
            return self.name
        text = f"{self.name} {value:g}{'' if self.unit in (None, 'fraction', 'ratio') else ' ' + str(self.unit)}"
        bound, limit = self.details.get("bound"), number(self.details.get("bound_ms"))
        return f"{text} > {bound} {limit:g}" if bound and limit is not None else text


def _values(values: Iterable[Any]) -> list[float]:
    return [v for v in (number(x) for x in values) if v is not None]


@dataclass(frozen=True, slots=True)
class BurstResult:
    """One burst size's entry in ``results.burst`` (every pass pooled)."""

    key: str
    raw: Mapping[str, Any]

    def per_call(self, key: str = TOTAL) -> list[float]:
        """Per-call values of this burst (:func:`per_call`)."""
        return per_call(self.raw, key)

    @property
    def aggregate_tok_s(self) -> float | None:
        """Median aggregate output tok/s over the passes."""
        return number(mapping(mapping(self.raw.get("summary")).get("aggregate_tok_s")).get("median"))

    @property
    def total_quantiles(self) -> Mapping[str, Any] | None:
        found = total_ms(self.raw)
        return found if isinstance(found, Mapping) else None


def per_call(entry: Any, key: str = TOTAL) -> list[float]:
    """Per-call values of a burst result, every pass pooled: ``passes[].calls[].total_ms``, a plain
    ``calls`` list, or a list of values. A failed call (None) is left out."""
    if not isinstance(entry, Mapping):
        return []
    passes = entry.get("passes")
    if isinstance(passes, list):
        return [v for p in passes for v in per_call(p, key)]
    values = total_ms(entry) if key == TOTAL else entry.get(key)
    if not isinstance(values, list):
        values = entry.get("latencies_ms")
    if isinstance(values, list):
        return _values(values)
    calls = entry.get("calls")
    if not isinstance(calls, list):
        return []
    return _values((total_ms(c) if key == TOTAL else c.get(key)) for c in calls if isinstance(c, Mapping))


@dataclass(frozen=True, slots=True)
class EnduranceCurve:
    """One endurance scenario's stability curve: one list per measure, index i is turn i + 1."""

    name: str
    raw: Mapping[str, Any]

    def column(self, key: str) -> list[Any]:
        values = total_ms(self.raw) if key == TOTAL else self.raw.get(key)
        return list(values) if isinstance(values, list) else []

    def __len__(self) -> int:
        return len(self.column(TOTAL))


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One report case: what was measured, gated and tested for one engine × model × MTP case."""

    id: str
    description: Mapping[str, Any] = field(default_factory=dict)
    """The case as engines.toml described it (the report's ``case``)."""
    engine: Mapping[str, Any] = field(default_factory=dict)
    profile: str | None = None
    runs: int | None = None
    phases: Mapping[str, ReportedPhase] = field(default_factory=dict)
    tests: tuple[Mapping[str, Any], ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    results: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Every suite section as reported (gates, burst, toolcall, endurance, probes, regression, ...)."""
    tier: str | None = None
    machine_id: str | None = None

    def stat(self, phase: str, metric: str, key: str = "median") -> float | None:
        """The one reader of phase statistics (tiers, table, HTML, baselines, JUnit)."""
        found = self.phases.get(phase)
        return found.stat(metric, key) if found is not None else None

    @property
    def gates(self) -> dict[str, ReportedGate]:
        return {str(k): ReportedGate.parse(str(k), v) for k, v in self.section("gates").items()}

    @property
    def bursts(self) -> dict[str, BurstResult]:
        return {str(k): BurstResult(str(k), v) for k, v in self.section("burst").items() if isinstance(v, Mapping)}

    @property
    def curves(self) -> dict[str, EnduranceCurve]:
        curves = {str(k): mapping(v).get("curve") for k, v in self.section("endurance").items()}
        return {k: EnduranceCurve(k, c) for k, c in curves.items() if isinstance(c, Mapping)}

    def section(self, name: str) -> Mapping[str, Any]:
        return mapping(self.results.get(name))

    def probe(self, probe: str) -> Mapping[str, Any]:
        """``results.probes.<probe>`` (engine RSS, power), or {}."""
        return mapping(self.section("probes").get(probe))

    def probe_phase(self, probe: str, phase: str) -> Mapping[str, Any]:
        """``results.probes.<probe>.phases.<phase>``, or {}."""
        return mapping(mapping(self.probe(probe).get("phases")).get(phase))

    @property
    def version(self) -> str | None:
        found = self.engine.get("version")
        return str(found) if found is not None else None

    @property
    def measured_or_gated(self) -> bool:
        return bool(self.phases or self.section("gates"))


def parse_case(raw: Mapping[str, Any], local_machine: str | None = None) -> CaseResult:
    """One report case (``cases[i]``) as typed results; ``local_machine`` places a live case."""
    phases = {str(n): ReportedPhase.parse(str(n), p) for n, p in mapping(raw.get("phases")).items()}
    runs, profile, tier = raw.get("runs"), raw.get("profile"), raw.get("tier")
    return CaseResult(
        id=str(raw.get("id")),
        description=mapping(raw.get("case")),
        engine=mapping(raw.get("engine")),
        profile=profile if isinstance(profile, str) else None,
        runs=runs if isinstance(runs, int) and not isinstance(runs, bool) else None,
        phases=phases,
        tests=tuple(t for t in raw.get("tests") or () if isinstance(t, Mapping)),
        metrics=mapping(raw.get("metrics")),
        results={str(k): v for k, v in mapping(raw.get("results")).items() if isinstance(v, Mapping)},
        tier=tier if isinstance(tier, str) else None,
        machine_id=case_machine_id(local_machine, raw),
    )


def as_case(case: CaseResult | Mapping[str, Any], local_machine: str | None = None) -> CaseResult:
    """A typed case from either form (the collector's dicts, a loaded report's cases, or typed already)."""
    return case if isinstance(case, CaseResult) else parse_case(case, local_machine)

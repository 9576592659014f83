"""A case's phase results, and the ``agentic`` object that reads them from a record source.

The records of a case come from one of two sources behind one interface (:class:`RecordSource`):
the live runner (:class:`pytest_asiai.agentic.runner.LiveSource`) sends the protocol's requests,
the replay (:class:`pytest_asiai.agentic.replay.ReplaySource`) reads them from a recorded file.
:class:`Agentic` is what the ``agentic`` fixture, the gates and the burst suite see: they ask for
phases and never learn which source answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pytest_asiai.measure import metrics
from pytest_asiai.wire.records import RequestRecord
from pytest_asiai.wire.serialize import record_to_dict

if TYPE_CHECKING:
    from pytest_asiai.agentic.calibrate import Calibration
    from pytest_asiai.agentic.prompts import Corpus
    from pytest_asiai.agentic.protocol import Profile
    from pytest_asiai.config.matrix import Case
    from pytest_asiai.engines.handle import EngineHandle
    from pytest_asiai.measure.samplers import SamplerView

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class PhaseRun:
    """One request of one phase in one repeat."""

    phase: str
    repeat: int
    max_tokens: int
    record: RequestRecord
    cold_method: str | None = None
    """For cold phases: how this request was made cold, e.g. ``salt+request+restart``."""
    sent: Mapping[str, Any] = field(default_factory=dict)
    """Every request field except the messages (thinking and cold fields included)."""
    prompt: Mapping[str, str] = field(default_factory=dict)
    """Which texts were sent: ``system`` (A or B), ``user`` (X, Y, Z or L) and the ``salt``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "repeat": self.repeat,
            "max_tokens": self.max_tokens,
            "cold_method": self.cold_method,
            "sent": dict(self.sent),
            "prompt": dict(self.prompt),
            **record_to_dict(self.record),
        }


@dataclass(slots=True)
class PhaseResult:
    """Every request of one phase (one per repeat), their statistics, and why any repeat sent nothing."""

    name: str
    runs: list[PhaseRun] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Repeats that sent no request, and why (context too small, restart failed, engine down)."""
    description: str = ""
    context_note: str | None = None
    """For long phases: the context they need and the engine's, appended to request failures."""

    @property
    def records(self) -> list[RequestRecord]:
        return [r.record for r in self.runs]

    @property
    def ok(self) -> bool:
        """True when the phase ran and none of its requests failed."""
        return bool(self.runs) and not self.errors and all(r.record.ok for r in self.runs)

    @property
    def failures(self) -> list[PhaseRun]:
        return [r for r in self.runs if not r.record.ok]

    @property
    def stats(self) -> dict[str, Mapping[str, float | int | None]]:
        return metrics.phase_stats(self.records)

    def median(self, metric: str) -> float | None:
        """Median of one metric over the successful requests (None when never measured)."""
        value = self.stats[metric]["median"]
        return None if value is None else float(value)

    @property
    def ttft_ms(self) -> float | None:
        return self.median("ttft_ms")

    @property
    def ttfc_ms(self) -> float | None:
        return self.median("ttfc_ms")

    @property
    def decode_tok_s(self) -> float | None:
        return self.median("decode_tok_s")

    @property
    def cached_tokens(self) -> float | None:
        return self.median("cached_tokens")

    @property
    def prompt_tokens(self) -> float | None:
        return self.median("prompt_tokens")

    @property
    def completion_tokens(self) -> float | None:
        return self.median("completion_tokens")

    def failure_message(self) -> str | None:
        """One line per failed request (with the engine's own message) or request not sent."""
        if not self.runs and not self.errors:
            return f"phase {self.name} sent no request"
        suffix = f" ({self.context_note})" if self.context_note else ""
        lines = [*self.errors]
        lines += [
            f"{self.name} repeat {r.repeat}: {r.record.error_kind}: {r.record.error}{suffix}" for r in self.failures
        ]
        return "\n".join(lines) or None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "runs": [r.to_dict() for r in self.runs],
            "errors": list(self.errors),
            "stats": self.stats,
        }


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a case's records come from, as the gates need to know it."""

    source_name: str = "this run"
    unrecorded: frozenset[str] = frozenset()
    """Record fields the source never held (their gates say "not measured")."""
    thinking_off: bool | None = None
    """Thinking was asked off; None when the source does not say which fields were sent."""


class RecordSource(Protocol):
    """A source of phase records: a live engine (requests) or a recording (a file)."""

    handle: EngineHandle
    runs: int
    profile: Profile
    phase_names: tuple[str, ...]
    """The phases this case can have, in order."""
    planned: list[str]
    results: dict[str, PhaseResult]
    primers: list[dict[str, Any]]
    origin: Origin
    emit: Emit
    """Where the case's events go (pytest_asiai/runtime/session.py queues them for its next report)."""
    samplers: SamplerView | None
    """The psutil samplers' view of the engine (None: no sampler watched it)."""

    @property
    def calibration(self) -> Calibration | None: ...

    @property
    def cold_method(self) -> str: ...

    def phase(self, name: str) -> PhaseResult:
        """The phase's result, produced now if the source has not produced it yet."""
        ...

    def corpus(self) -> Corpus: ...

    def close(self) -> None: ...


class Agentic:
    """The ``agentic`` fixture's object: one case's phases, from whichever source holds them."""

    def __init__(self, source: RecordSource) -> None:
        self.source = source
        self.handle: EngineHandle = source.handle
        self.case: Case = source.handle.case
        self.metrics: dict[str, Any] = {}

    def phase(self, name: str) -> PhaseResult:
        """The result of ``name``: run now with the phases before it (live), or read (replay)."""
        return self.source.phase(name)

    def record_metric(self, name: str, value: float | int | str | bool | None) -> None:
        """Keep a value computed by a user's test; it lands in the report next to the gates."""
        self.metrics[name] = value
        self.source.emit({"type": "metric", "name": name, "value": value})

    def corpus(self) -> Corpus:
        """The prompts of this case, sized for its profile on the engine's tokenizer."""
        return self.source.corpus()

    def close(self) -> None:
        self.source.close()

    @property
    def engine(self) -> EngineHandle:
        return self.handle

    @property
    def results(self) -> dict[str, PhaseResult]:
        return self.source.results

    @property
    def runs(self) -> int:
        return self.source.runs

    @property
    def profile(self) -> Profile:
        return self.source.profile

    @property
    def phase_names(self) -> tuple[str, ...]:
        return self.source.phase_names

    @property
    def planned(self) -> list[str]:
        return self.source.planned

    @property
    def primers(self) -> list[dict[str, Any]]:
        """Unmeasured requests resent to restore a repeat's cache state (see agentic/runner.py)."""
        return self.source.primers

    @property
    def calibration(self) -> Calibration | None:
        """How the prompts were sized (None until the first live phase ran, and for a recording)."""
        return self.source.calibration

    @property
    def cold_method(self) -> str:
        return self.source.cold_method

    @property
    def samplers(self) -> SamplerView | None:
        return self.source.samplers

    @property
    def unrecorded(self) -> frozenset[str]:
        return self.source.origin.unrecorded

    @property
    def thinking_off(self) -> bool | None:
        return self.source.origin.thinking_off

    @property
    def source_name(self) -> str:
        return self.source.origin.source_name

"""What the phase gates read: a case's phases (run on demand) and its samplers, live or replayed.

:func:`gather` asks the ``agentic`` object for each phase a gate needs (running it if needed) and
records what could not be measured and why, so a gate can say "not measured" with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pytest

from pytest_asiai.agentic.results import Agentic, PhaseResult, PhaseRun
from pytest_asiai.measure.samplers import Reading, SamplerView


@dataclass(frozen=True, slots=True)
class GateInputs:
    """What a case measured, as the gates see it."""

    phases: Mapping[str, PhaseResult]
    """Phases that sent requests, in protocol order (failed requests included)."""
    missing: Mapping[str, str]
    """Phases that were wanted but not measured, and why."""
    samplers: SamplerView
    unrecorded: frozenset[str] = frozenset()
    """Request fields a recording does not have (``text``, ``finish_reason``, ``reasoning_chars``)."""
    thinking_off: bool | None = None
    """Whether thinking was requested off; None when a recording does not say."""
    source: str = "this run"

    def runs(self) -> list[PhaseRun]:
        return [run for result in self.phases.values() for run in result.runs]

    def not_sent(self) -> list[str]:
        """Requests of measured phases that could not be sent (engine down, context too small)."""
        return [error for result in self.phases.values() for error in result.errors]

    def usable(self, name: str) -> PhaseResult | None:
        """A phase whose requests all succeeded (a failed phase is "not measured" for a gate)."""
        result = self.phases.get(name)
        return result if result is not None and result.ok else None

    def why_missing(self, name: str) -> str:
        result = self.phases.get(name)
        if result is not None and not result.ok:
            return f"phase {name} failed: {result.failure_message()}"
        return self.missing.get(name, f"phase {name} was not measured")

    def nothing_measured(self) -> str:
        reasons = "; ".join(f"{k}: {v}" for k, v in self.missing.items())
        return "no phase request was measured" + (f" ({reasons})" if reasons else "")


class _NoSamplers:
    """A case no sampler watched (it never started a live request)."""

    def swap(self) -> Reading:
        return Reading(None, "no sampler ran for this case")

    engine_memory = processes = swap


def all_phase_names(agentic: Agentic) -> list[str]:
    """Every phase this case can have: the protocol's for its engine, or the recorded ones."""
    return list(agentic.phase_names)


def run_phase_names(agentic: Agentic) -> list[str]:
    """The phases of this run: those selected with the phase tests, else all of them."""
    names = all_phase_names(agentic)
    planned = set(agentic.planned)
    return [n for n in names if n in planned] or names


def prefix_names(agentic: Agentic) -> list[str]:
    return [n for n in all_phase_names(agentic) if n.startswith("prefix-test")]


def gather(agentic: Agentic, names: Iterable[str], samplers: SamplerView) -> GateInputs:
    """Request each phase (running it if needed); what cannot run is recorded as missing."""
    phases: dict[str, PhaseResult] = {}
    missing: dict[str, str] = {}
    for name in names:
        try:
            result = agentic.phase(name)
        except KeyError as exc:
            missing[name] = f"not part of this run ({exc.args[0] if exc.args else name})"
            continue
        except pytest.skip.Exception as exc:
            missing[name] = str(exc.msg)
            continue
        if result.runs:
            phases[name] = result
        else:
            missing[name] = result.failure_message() or f"phase {name} sent no request"
    return GateInputs(
        phases=phases,
        missing=missing,
        samplers=samplers,
        unrecorded=agentic.unrecorded,
        thinking_off=agentic.thinking_off,
        source=agentic.source_name,
    )


def samplers_of(agentic: Agentic) -> SamplerView:
    """The samplers' view of a case: the recording's, or the live sampler started with the case."""
    return agentic.samplers if agentic.samplers is not None else _NoSamplers()

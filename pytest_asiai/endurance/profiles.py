"""Endurance workload sizes: the profile (turns, token plan, probe and fault turns) and the scenario."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["EnduranceProfile", "ScenarioSpec"]


@dataclass(frozen=True, slots=True)
class EnduranceProfile:
    """Trajectory sizes: ``full`` is the seed panel's 80 calls from 10K to 50K tokens, ``smoke`` fits
    SmolLM2's 8K context and a couple of minutes on 2 CPU cores."""

    name: str
    turns: int
    """Calls in the straight run; the context plan spans these turns in every scenario."""
    start_tokens: int
    end_tokens: int
    max_tokens: int
    probe_turns: tuple[int, ...]
    short_turns: int
    """Calls in the interrupt and malformed scenarios (they stop early on the same plan)."""
    interrupt_turn: int
    malformed_turn: int
    max_retries: int = 2
    cancel_after_chunks: int = 1

    def with_turns(self, turns: int) -> EnduranceProfile:
        """The profile stretched or shortened to ``turns`` calls (events kept inside the run)."""
        short = min(self.short_turns, turns)
        return replace(
            self,
            turns=turns,
            short_turns=short,
            interrupt_turn=min(self.interrupt_turn, short),
            malformed_turn=min(self.malformed_turn, short),
        )


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """How many turns a scenario runs and which fault it injects where."""

    name: str
    turns: int
    interrupt_at: int | None = None
    malformed_at: int | None = None

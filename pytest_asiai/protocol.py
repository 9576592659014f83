"""The agentic protocol: its phases, in order, and what each one sends.

A phase names its system prompt, its user message and its output budget; the prompts themselves
come from :mod:`pytest_asiai.prompts`. Phases run in protocol order, and asking for one runs every
earlier phase of the case first (the cache state a phase measures depends on them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Phase:
    """One step of the protocol."""

    name: str
    system: str
    """Which system prompt: ``A`` (the shared agent prompt) or ``B`` (a different one)."""
    user: str
    """Which user message: ``X``, ``Y``, ``Z`` or ``L`` (the long-context corpus)."""
    long: bool = False
    """Long-context phases use the long output budget and the long prompt size."""
    description: str = ""


PHASES: tuple[Phase, ...] = (
    Phase("cold", "A", "X", description="first request, nothing cached (salted per repeat)"),
    Phase("warm", "A", "X", description="the identical request again: a full prefix hit"),
)

PHASE_NAMES: tuple[str, ...] = tuple(p.name for p in PHASES)


@dataclass(frozen=True, slots=True)
class Profile:
    """Prompt sizes in tokens and output budgets; ``smoke`` fits a 2-core CPU and an 8K context."""

    name: str
    system_tokens: int
    user_tokens: int
    long_tokens: int
    max_tokens: int
    long_max_tokens: int


PROFILES: dict[str, Profile] = {
    "full": Profile(
        "full", system_tokens=6000, user_tokens=1500, long_tokens=50000, max_tokens=400, long_max_tokens=200
    ),
    "smoke": Profile("smoke", system_tokens=1000, user_tokens=250, long_tokens=5000, max_tokens=64, long_max_tokens=32),
}

DEFAULT_PROFILE = "full"


def phase(name: str) -> Phase:
    """Look a phase up by name."""
    for p in PHASES:
        if p.name == name:
            return p
    raise KeyError(f"unknown phase {name!r}; phases are {', '.join(PHASE_NAMES)}")


def dependencies(name: str) -> tuple[str, ...]:
    """Every phase that must have run before ``name``: all earlier phases, in order."""
    names = PHASE_NAMES
    return names[: names.index(phase(name).name)]

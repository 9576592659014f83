"""The agentic protocol: its phases, in order, what each one sends, and the prompt-size profiles.

A phase names its system prompt, its user message and its output budget; the prompts themselves
come from :mod:`pytest_asiai.agentic.prompts`. Phases run in protocol order, and asking for one runs every
earlier phase of the case first (the cache state a phase measures depends on them).

Where asiai's design is weak, this protocol differs on purpose (docs/agentic.md):
``prefix-test-3`` sends a third, new user message (asiai repeats prefix-test-1, which a multi-entry
cache answers with a full hit); every user message asks for a long answer, so output length does
not depend on how talkative the model is; cold phases are cold in every repeat (salt, and the
engine's own cache bypass); and ``restart-prefix`` asks whether the cache survives an engine restart.
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
    expect: str
    """The cache state the phase is designed to meet: ``miss``, ``system`` (the system prompt is
    cached), ``full`` (the whole prompt is cached), ``restart`` (whatever survives a restart)."""
    long: bool = False
    """Long-context phases use the long output budget and the long prompt size."""
    cold: bool = False
    """A cold phase must miss every cache: fresh salt, plus the engine's cache bypass if it has one."""
    restart: bool = False
    """Restart the (managed) engine right before this phase's request."""
    reset: bool = False
    """Reset the engine's prompt cache first, by the family's method (endpoint, unload, restart or
    request fields; the salt alone where it has none): the first request of every repeat."""
    description: str = ""


PHASES: tuple[Phase, ...] = (
    Phase(
        "cold",
        "A",
        "X",
        "miss",
        cold=True,
        reset=True,
        description="first request, nothing cached (cold in every repeat)",
    ),
    Phase("warm", "A", "X", "full", description="the identical request again: a full prefix hit"),
    Phase("prefix-test-1", "A", "Y", "system", description="same system prompt, a new user message"),
    Phase(
        "prefix-test-2",
        "A",
        "X",
        "system",
        description="back to the first user message: a full hit on a multi-entry cache, the system prompt on one slot",
    ),
    Phase(
        "prefix-test-3",
        "A",
        "Z",
        "system",
        description="a third, new user message (asiai repeats prefix-test-1 here)",
    ),
    Phase("cold-prefix", "B", "X", "miss", cold=True, description="a different system prompt: a full miss"),
    Phase(
        "long-context",
        "A",
        "L",
        "system",
        long=True,
        description="one long request: prefill and decode at long context",
    ),
    Phase("long-prefix", "A", "L", "full", long=True, description="the same long request again: a hit at long context"),
    Phase(
        "restart-prefix",
        "A",
        "X",
        "restart",
        restart=True,
        description="the cold request again after an engine restart: does the prefix cache persist?",
    ),
)

PHASE_NAMES: tuple[str, ...] = tuple(p.name for p in PHASES)


@dataclass(frozen=True, slots=True)
class Profile:
    """Prompt sizes in tokens of the engine's own tokenizer, and output budgets.

    ``system_tokens`` and ``user_tokens`` size each system prompt and user message; ``long_tokens``
    sizes the whole long-context request (system prompt A plus the long corpus). ``smoke`` runs the
    whole protocol on 2 CPU cores in a few minutes and fits an 8K context with room for the answer.
    ``tiny`` is sized for servers that prefill about 10 tokens/s on 2 CPU cores (the MLX servers of
    engines-mlx.toml, docs/mlx-engines.md): the whole protocol in about three minutes per engine. Its
    280-token system prompt makes a shared prefix just over 256 tokens, so a server that caches in
    256-token blocks (oMLX) shows one cached block on the prefix tests instead of no hit at all.
    """

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
    "smoke": Profile("smoke", system_tokens=1000, user_tokens=250, long_tokens=4000, max_tokens=64, long_max_tokens=32),
    "tiny": Profile("tiny", system_tokens=280, user_tokens=60, long_tokens=1000, max_tokens=16, long_max_tokens=16),
}

DEFAULT_PROFILE = "full"

#: Relative tolerance of every prompt size against its profile target.
SIZE_TOLERANCE = 0.05


def phase(name: str) -> Phase:
    """Look a phase up by name."""
    for p in PHASES:
        if p.name == name:
            return p
    raise KeyError(f"unknown phase {name!r}; phases are {', '.join(PHASE_NAMES)}")


def phase_names_for(managed: bool) -> tuple[str, ...]:
    """The phases a case runs: ``restart-prefix`` needs an engine the plugin can restart."""
    return tuple(p.name for p in PHASES if managed or not p.restart)


def dependencies(name: str) -> tuple[str, ...]:
    """Every phase that must have run before ``name``: all earlier phases, in order."""
    names = PHASE_NAMES
    return names[: names.index(phase(name).name)]

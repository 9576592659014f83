"""Engine families: how to talk to each kind of server (version, capabilities, thinking, cold reset).

One module per family; :func:`family_for` maps an engines.toml ``kind`` to its family object.
"""

from __future__ import annotations

from .base import EngineFamily
from .llamacpp import LlamaCpp

FAMILIES: dict[str, EngineFamily] = {f.kind: f for f in (LlamaCpp(), EngineFamily())}


def family_for(kind: str | None) -> EngineFamily:
    """The family for ``kind``; the generic OpenAI-compatible family for anything unknown."""
    return FAMILIES.get(kind or "openai", FAMILIES["openai"])


__all__ = ["FAMILIES", "EngineFamily", "family_for"]

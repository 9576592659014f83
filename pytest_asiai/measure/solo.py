"""SOLO and duplicates: which processes on this machine are inference engines, by command words.

Names are used only here, to recognise *other* engines (the SOLO gate) and second copies of this one
(the duplicates gate); the measured engine itself is found by its port (``measure/locator.py``).
Patterns match whole leading command words (``engines/processes.py``), so ``cmake --target
llama-server`` or a pytest command line naming an engine is not an engine. The fallback table is
asiai's (docs/asiai-protocol.md §3.7); a family's own ``process_patterns`` win over it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import psutil

from pytest_asiai.engines import FAMILIES
from pytest_asiai.engines.processes import argv_of, command_words, matches

#: asiai's engine process patterns (docs/asiai-protocol.md §3.7) as leading command words, keyed by
#: normalised kind: the fallback for kinds whose family declares no process patterns of its own.
FALLBACK_PATTERNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "ollama": (("ollama", "serve"),),
    "llamacpp": (("llama-server",),),
    "lmstudio": (("LM Studio",),),
    "mlxlm": (("mlx_lm.server",), ("mlx_lm", "server")),
    "omlx": (("omlx", "serve"),),
    "vmlx": (("vmlx", "serve"),),
    "turboquant": (("llama-server-turboquant",),),
    "vllmmlx": (("vllm-mlx",),),
    "rapidmlx": (("rapid-mlx",),),
}

Patterns = tuple[tuple[str, ...], ...]


def normalise_kind(kind: str | None) -> str:
    """asiai's engine key normalisation: lowercase, without ``-`` and ``_``."""
    return (kind or "").lower().replace("-", "").replace("_", "")


def family_patterns(family: Any) -> Patterns:
    """A family's own process patterns (command words), else its executable names as one-word patterns."""
    patterns = tuple(tuple(p) for p in getattr(family, "process_patterns", ()) or ())
    return patterns or tuple((name,) for name in getattr(family, "process_names", ()) or ())


def patterns_for(kind: str | None, family: Any = None) -> Patterns:
    """This engine's patterns: its family's, else asiai's table for its kind."""
    return family_patterns(family) or FALLBACK_PATTERNS.get(normalise_kind(kind), ())


def known_patterns() -> dict[str, Patterns]:
    """Every engine we can recognise: asiai's table overlaid with each family's own patterns."""
    out = dict(FALLBACK_PATTERNS)
    for kind, family in FAMILIES.items():
        if patterns := family_patterns(family):
            out[normalise_kind(kind)] = patterns
    return out


def classify(argv: Sequence[str], name: str, patterns: Mapping[str, Patterns]) -> str | None:
    """The engine kind of a process (the longest matching pattern wins), or None.

    Patterns match whole leading command words (``engines.processes.command_words``), so
    ``cmake --target llama-server`` is not an engine and ``llama-server-turboquant`` is not llama.cpp.
    """
    best: tuple[int, str] | None = None
    for kind, pats in patterns.items():
        for pat in pats:
            if matches((pat,), argv, name) and (best is None or len(pat) > best[0]):
                best = (len(pat), kind)
    return best[1] if best else None


def _own_lineage() -> set[int]:
    """This test process and its ancestors: a pytest command line may name an engine."""
    try:
        me = psutil.Process(os.getpid())
        return {me.pid, *(p.pid for p in me.parents())}
    except psutil.Error:
        return {os.getpid()}


def process_snapshot(own_kind: str, own_pids: Sequence[int], patterns: Mapping[str, Patterns]) -> dict[str, Any]:
    """Other engines and duplicates of this one, from one psutil pass over the process table.

    ``own_kind`` is the normalised kind whose patterns mean "this engine"; the engine's own process
    tree (found from its port) and this test process are never counted.
    """
    skip = {*own_pids, *_own_lineage()}
    duplicates: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for proc in psutil.process_iter(["name"]):
        if proc.pid in skip:
            continue
        argv = argv_of(proc)
        kind = classify(argv, proc.info.get("name") or "", patterns)
        if kind is not None:
            entry = {"pid": proc.pid, "engine": kind, "command": " ".join(argv)[:200]}
            (duplicates if kind == own_kind else others).append(entry)
    return {"engine_pids": list(own_pids), "duplicates": duplicates, "others": others, "taken_at": time.time()}


def program_pattern(proc: psutil.Process) -> Patterns:
    """An unknown engine's own program name is its pattern (as asiai does with unknown names)."""
    words = command_words(argv_of(proc))
    if words:
        return ((words[0],),)
    try:
        return ((proc.name(),),)
    except psutil.Error:
        return ()

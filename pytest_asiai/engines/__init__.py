"""Engine families: how to talk to each kind of server (version, capabilities, thinking, cold reset).

One module per family; :func:`family_for` maps an engines.toml ``kind`` to its family object, and
:data:`DETECTION_ORDER` is the order in which :mod:`pytest_asiai.engines.detect` asks them "is this you?"
(most specific signature first; the generic family is never "detected", it is what is left).
"""

from __future__ import annotations

from pytest_asiai.engines.base import EngineFamily
from pytest_asiai.engines.llamacpp import LlamaCpp
from pytest_asiai.engines.llamacpp_python import LlamaCppPython
from pytest_asiai.engines.lmstudio import LMStudio
from pytest_asiai.engines.mlxlm import MlxLm
from pytest_asiai.engines.ollama import Ollama
from pytest_asiai.engines.omlx import OMlx
from pytest_asiai.engines.probe import Probe
from pytest_asiai.engines.rapidmlx import RapidMlx
from pytest_asiai.engines.vllm_mlx import VllmMlx
from pytest_asiai.engines.vmlx import VMlx

GENERIC = EngineFamily()

#: Most specific evidence first: an engine naming itself (``owned_by`` in ``/v1/models``) beats an
#: endpoint another engine may imitate (vMLX serves Ollama's ``/api/version`` and ``GET /``); then
#: Ollama's ``/api/version`` from its Go router, LM Studio's header, llama.cpp's /props,
#: llama-cpp-python's /openapi.json title, and mlx-lm (a bare http.server) last.
DETECTION_ORDER: tuple[EngineFamily, ...] = (
    OMlx(),
    RapidMlx(),
    VMlx(),
    VllmMlx(),
    Ollama(),
    LMStudio(),
    LlamaCpp(),
    LlamaCppPython(),
    MlxLm(),
)

FAMILIES: dict[str, EngineFamily] = {f.kind: f for f in (*DETECTION_ORDER, GENERIC)}

#: The eight engines of the seed panel (plus llama-cpp-python, the second real engine in CI).
SEED_PANEL = ("llamacpp", "mlxlm", "lmstudio", "rapidmlx", "vllm_mlx", "omlx", "vmlx", "ollama")


def family_for(kind: str | None) -> EngineFamily:
    """The family for ``kind``; the generic OpenAI-compatible family for anything unknown."""
    return FAMILIES.get(kind or "openai", GENERIC)


def identify(probe: Probe) -> tuple[EngineFamily, str | None]:
    """The first family whose signature matches, with its evidence; the generic family otherwise."""
    for family in DETECTION_ORDER:
        evidence = family.signature(probe)
        if evidence:
            return family, evidence
    return GENERIC, None


__all__ = [
    "DETECTION_ORDER",
    "FAMILIES",
    "GENERIC",
    "SEED_PANEL",
    "EngineFamily",
    "Probe",
    "family_for",
    "identify",
]

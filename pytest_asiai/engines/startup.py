"""What the plugin learns about an engine when it starts: family (detected when engines.toml has no
``kind``), version, and the capability probe. One probe is shared by all three, so describing an
engine costs a handful of metadata requests and no generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from pytest_asiai.engines import GENERIC, EngineFamily, family_for, identify
from pytest_asiai.engines.capabilities import capabilities
from pytest_asiai.engines.probe import Probe, auth_headers
from pytest_asiai.engines.processes import argv_of, engine_processes, launcher, matches, name_of


@dataclass(slots=True)
class StartInfo:
    """The engine as described at start (EngineHandle copies these fields)."""

    family: EngineFamily
    detected: bool
    evidence: str | None = None
    version: str | None = None
    version_source: str | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)


def version_from_process(family: EngineFamily, base_url: str) -> str | None:
    """Ask the program listening on the URL's port, if it is recognisably of this family."""
    procs = engine_processes(base_url)
    if not procs:
        return None
    argv = argv_of(procs[0])
    if not matches(family.process_patterns, argv, name_of(procs[0])):
        return None
    return family.version_from_process(launcher(argv))


def describe_engine(
    kind: str | None, base_url: str, *, api_key: str | None = None, timeout_s: float = 5.0
) -> StartInfo:
    """Family, version and capabilities of the engine at ``base_url``; detect the family if ``kind``
    is None (an unrecognised server stays generic, with ``detected`` true and no evidence)."""
    with httpx.Client(timeout=timeout_s, trust_env=False, headers=auth_headers(api_key)) as http:
        probe = Probe(http, base_url)
        if kind is None:
            family, evidence = identify(probe) if probe.reachable else (GENERIC, None)
        else:
            family, evidence = family_for(kind), None
        info = StartInfo(family, detected=kind is None, evidence=evidence)
        info.version = family.version_from(probe)
        info.version_source = "http" if info.version else None
        info.capabilities = capabilities(family, probe)
    if info.version is None and probe.reachable:
        info.version = version_from_process(family, base_url)
        info.version_source = "process" if info.version else None
    if kind is None:
        info.capabilities["detection"] = {"evidence": evidence, "recognised": evidence is not None}
    return info

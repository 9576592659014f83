"""The fixtures users request, all registered by the plugin: ``engine``, ``agentic``, ``burst``,
``endurance``, ``toolcall`` and the ``asiai_context`` they come from.

``asiai_case`` is parametrized by the plugin (session scope, so tests are grouped per case). Every
fixture here returns a part of the case's context (pytest_asiai/runtime/context.py), which the
session creates once per case: a user's test, a built-in suite and a gate all see the same objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_asiai.config.matrix import Case
from pytest_asiai.config.stash import session_of

if TYPE_CHECKING:
    from pytest_asiai.agentic.results import Agentic
    from pytest_asiai.burst.runner import Burst
    from pytest_asiai.endurance.suite import Endurance
    from pytest_asiai.engines.handle import EngineHandle
    from pytest_asiai.runtime.context import CaseContext
    from pytest_asiai.toolcall.lab import Lab


@pytest.fixture
def asiai_context(request: pytest.FixtureRequest, asiai_case: Case) -> CaseContext:
    """The case's context: its engine, thresholds and every suite's results (one per case and session)."""
    return session_of(request.config).context(asiai_case)


@pytest.fixture
def engine(asiai_context: CaseContext) -> EngineHandle:
    """The case's engine (started if managed): name, kind, base_url, model, mtp, version, capabilities."""
    asiai_context.engine.ensure_running()
    return asiai_context.engine


@pytest.fixture
def agentic(asiai_context: CaseContext) -> Agentic:
    """The case's measurements; ``agentic.phase(name)`` runs a phase and those before it, once."""
    return asiai_context.agentic


@pytest.fixture
def burst(asiai_context: CaseContext) -> Burst:
    """The case's bursts: ``burst.result(size)`` releases ``size`` calls at once (each size once per session)."""
    return asiai_context.burst


@pytest.fixture
def endurance(asiai_context: CaseContext) -> Endurance:
    """The case's endurance scenarios: ``endurance.scenario("straight")`` runs it (once per session)."""
    return asiai_context.endurance


@pytest.fixture
def toolcall(asiai_context: CaseContext, engine: EngineHandle) -> Lab:
    """The case's tool-call measurements (the engine started first); a replayed case holds none."""
    if asiai_context.case.replay is not None:
        pytest.skip(f"toolcall: replayed case {asiai_context.case.id} holds no tool-call conversation")
    return asiai_context.toolcall

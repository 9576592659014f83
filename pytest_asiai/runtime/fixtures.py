"""The fixtures users request: ``engine`` and ``agentic``, parametrized over the case matrix.

``asiai_case`` is parametrized by the plugin (session scope, so tests are grouped per case); these
fixtures turn the case into its engine handle and its lazily-measured protocol state.
"""

from __future__ import annotations

import pytest

from pytest_asiai.agentic.runner import Agentic
from pytest_asiai.config.matrix import Case
from pytest_asiai.config.stash import session_of
from pytest_asiai.engines.handle import EngineHandle


@pytest.fixture
def engine(request: pytest.FixtureRequest, asiai_case: Case) -> EngineHandle:
    """The case's engine (started if managed): name, kind, base_url, model, mtp, version, capabilities."""
    handle = session_of(request.config).handle(asiai_case)
    handle.ensure_running()
    return handle


@pytest.fixture
def agentic(request: pytest.FixtureRequest, asiai_case: Case) -> Agentic:
    """The case's measurements; ``agentic.phase(name)`` runs a phase and those before it, once."""
    return session_of(request.config).agentic(asiai_case)

"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpcore  # noqa: F401  (see below)
import pytest
from scripted_engine import ScriptedEngine

# httpx imports httpcore lazily and caches its exception classes on first use. pytester's in-process
# runs drop modules first imported inside them, so a second run would bring new httpcore classes that
# httpx no longer maps (a disconnect then escapes as httpcore.RemoteProtocolError). Importing httpcore
# here keeps one copy for the whole test session.


@pytest.fixture
def scripted_engine() -> Iterator[ScriptedEngine]:
    """A started scripted test engine with default behaviour, stopped after the test."""
    with ScriptedEngine() as engine:
        yield engine

"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpcore  # noqa: F401  (see below)
import pytest
from scripted_engine import ScriptedEngine

# httpx imports httpcore lazily and caches its exception classes on first use. pytester's in-process
# runs drop modules first imported inside them, so a second run would bring new httpcore classes that
# httpx no longer maps (a disconnect then escapes as httpcore.RemoteProtocolError). Importing httpcore
# here keeps one copy for the whole test session.

# The plugin adds its built-in suites to runs that name no test path (pytest_asiai/runtime/suites.py);
# the pytester projects of these tests choose their suites themselves (tests/test_builtin_suites.py
# clears this to test the default).
os.environ.setdefault("ASIAI_SUITES", "none")


@pytest.fixture
def scripted_engine() -> Iterator[ScriptedEngine]:
    """A started scripted test engine with default behaviour, stopped after the test."""
    with ScriptedEngine() as engine:
        yield engine

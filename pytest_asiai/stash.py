"""Typed keys for the plugin's state in ``config.stash``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .session import AsiaiSession

SESSION_KEY = pytest.StashKey["AsiaiSession"]()
COLLECTOR_KEY = pytest.StashKey["ReportCollector"]()


def session_of(config: pytest.Config) -> AsiaiSession:
    """The plugin's session state (created in pytest_configure)."""
    return config.stash[SESSION_KEY]

"""Typed keys for the plugin's state in ``config.stash``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_asiai.report.writer import ReportCollector
    from pytest_asiai.runtime.session import AsiaiSession

SESSION_KEY: pytest.StashKey[AsiaiSession] = pytest.StashKey()
COLLECTOR_KEY: pytest.StashKey[ReportCollector] = pytest.StashKey()


def session_of(config: pytest.Config) -> AsiaiSession:
    """The plugin's session state (created in pytest_configure)."""
    return config.stash[SESSION_KEY]

"""The xdist scheduler that keeps every engine host's tests on one worker, in collection order.

xdist's own ``loadgroup`` learns groups from ``@group`` suffixes its workers append to node ids;
pytest 9.2 made node ids immutable, so those suffixes silently vanish and one engine's phases are
scattered over workers (pytest-xdist issue #1386). This scheduler needs no suffix: the controller
already knows every case, so it maps a node id to its case's host group itself. Imported only when
xdist asks for a scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

from pytest_asiai.report.events import case_for_nodeid, plain_nodeid


def scope_for(nodeid: str, host_group_of_case: Mapping[str, str]) -> str:
    """The work unit of a test: its case's host group, or the test alone when it has no case."""
    case_id = case_for_nodeid(nodeid, host_group_of_case)
    if case_id is None:
        return plain_nodeid(nodeid)
    return f"asiai-host:{host_group_of_case[case_id]}"


class EngineGroupScheduling(LoadScopeScheduling):
    """``loadscope`` whose scope is the engine host: one engine's phases never run on two workers."""

    def __init__(self, config: pytest.Config, log: Producer | None, host_group_of_case: Mapping[str, str]) -> None:
        super().__init__(config, log)
        self.host_group_of_case = host_group_of_case

    def _split_scope(self, nodeid: str) -> str:
        return scope_for(nodeid, self.host_group_of_case)

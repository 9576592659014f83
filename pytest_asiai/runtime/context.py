"""One case's context: everything the session holds for a case, created once and found one way.

Every fixture (pytest_asiai/runtime/fixtures.py) and every suite object reaches a case's state
through ``session.context(case)``: its engine handle, its thresholds, its phases (the ``agentic``
object, live or replayed), its bursts, its endurance scenarios and its tool-call lab. Nothing is
kept in module-level dictionaries or in suite files, so under xdist each worker's session holds
exactly the cases it runs, and the session closes them all at its end.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from pytest_asiai.agentic.replay import ReplaySource, make_handle
from pytest_asiai.agentic.results import Agentic, PhaseResult
from pytest_asiai.agentic.runner import LiveSource
from pytest_asiai.burst.runner import Burst
from pytest_asiai.config.matrix import Case
from pytest_asiai.config.options import Settings
from pytest_asiai.endurance.suite import Endurance
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.gates.thresholds import CaseThresholds
from pytest_asiai.toolcall.lab import Lab
from pytest_asiai.wire.client import StreamingClient, client_for
from pytest_asiai.wire.requests import RequestBuilder

if TYPE_CHECKING:
    from pytest_asiai.runtime.session import AsiaiSession


class CaseContext:
    """One case's state in the session; each suite's object is made on first use, then kept."""

    def __init__(self, session: AsiaiSession, case: Case) -> None:
        self.session = session
        self.case = case
        self.settings: Settings = session.settings
        self.engine: EngineHandle = make_handle(case, session.manager, session.describe)
        """The engine handle (a replayed case's says what was recorded and never starts anything)."""
        self.thresholds = CaseThresholds(session.thresholds, case)
        self.requests = RequestBuilder.for_handle(self.engine)
        """The case's request builder: every suite's body, one precedence (pytest_asiai/wire/requests.py)."""
        self._client: StreamingClient | None = None
        self._client_url: str | None = None

    def emit(self, event: dict[str, Any]) -> None:
        """Queue an event for the case's next test report (see pytest_asiai/runtime/session.py)."""
        self.session.emit(self.case.id, event)

    def record_result(self, section: str, key: str, value: dict[str, Any]) -> None:
        """Report a suite's result under ``results[section][key]``."""
        self.session.record_result(self.case.id, section, key, value)

    def client(self) -> StreamingClient:
        """The case's client for its engine's current URL (a managed engine is started first, and a
        restart that moved it opens a new client)."""
        url = self.engine.ensure_running()
        if self._client is None or self._client_url != url:
            if self._client is not None:
                self._client.close()
            self._client, self._client_url = client_for(self.engine), url
        return self._client

    @cached_property
    def agentic(self) -> Agentic:
        """The case's phases: sent to the live engine (its samplers start now), or read from its recording.

        The one place that chooses the record source; nothing downstream asks which one it got."""
        if self.case.replay is not None:
            return Agentic(ReplaySource(self.engine, self.emit))
        source = LiveSource(
            self.engine,
            runs=self.settings.runs,
            profile=self.settings.profile_for(self.case.profile),
            planned=self.session.planned[self.case.id],
            emit=self.emit,
            samplers=self.session.samplers.start(self.case.id, self.engine),
        )
        return Agentic(source)

    @cached_property
    def burst(self) -> Burst:
        """The case's bursts (pytest_asiai/burst/runner.py)."""
        return Burst(self)

    @cached_property
    def endurance(self) -> Endurance:
        """The case's endurance scenarios (pytest_asiai/endurance/suite.py)."""
        return Endurance(self)

    @cached_property
    def toolcall(self) -> Lab:
        """The case's tool-call measurements (pytest_asiai/toolcall/lab.py)."""
        return Lab(self)

    def phase_results(self) -> dict[str, PhaseResult] | None:
        """The phases measured or replayed so far; None when the case never asked for one."""
        agentic: Agentic | None = self.__dict__.get("agentic")  # set by cached_property on first use
        return None if agentic is None else agentic.results

    def close(self) -> None:
        """Close the clients the case opened (its engine is stopped by the session's manager)."""
        agentic: Agentic | None = self.__dict__.get("agentic")
        if agentic is not None:
            agentic.close()
        if self._client is not None:
            self._client.close()
            self._client = None

"""Per-session plugin state: the cases, their engines, their measurements and the event outbox.

Measurements travel to the report as events attached to test reports, so they reach the
controller under xdist exactly as they do in a serial run. Each case keeps an outbox; the next
test report of that case carries whatever the case measured since the previous report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_asiai.agentic.replay import ReplayAgentic, make_handle
from pytest_asiai.agentic.runner import Agentic
from pytest_asiai.config.matrix import Case
from pytest_asiai.config.options import Settings
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.gates.thresholds import Thresholds, parse_overrides
from pytest_asiai.measure.samplers import ProbeRegistry
from pytest_asiai.report.spool import Spool


class AsiaiSession:
    """Everything the plugin knows during one pytest session (one per xdist worker)."""

    def __init__(self, settings: Settings, cases: Sequence[Case], load_error: str | None, log_dir: Path) -> None:
        self.settings = settings
        self.cases = list(cases)
        self.load_error = load_error
        self.manager = EngineManager(log_dir)
        self.handles: dict[str, EngineHandle] = {}
        self.agentics: dict[str, Agentic] = {}
        self.planned: dict[str, set[str]] = defaultdict(set)
        self.outbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.probes = ProbeRegistry(power_mode=settings.power)
        """psutil samplers, one per live case, started with its agentic object (before any request)."""
        self.spool: Spool | None = None
        """Write-ahead copy of every event (set by the plugin when a report is kept)."""
        self.thresholds = Thresholds(
            parse_overrides(settings.gates_ini, "ini asiai_gates"),
            parse_overrides(settings.gates_cli, "--asiai-gate"),
        )

    def emit(self, case_id: str, event: dict[str, Any]) -> None:
        if self.spool is not None:
            event = self.spool.stamp(case_id, event)
        self.outbox[case_id].append(event)

    def record_result(self, case_id: str, section: str, key: str, value: dict[str, Any]) -> None:
        """Report a suite's result (a gate, a burst, a tool-call run) under ``results[section][key]``."""
        self.emit(case_id, {"type": "result", "section": section, "key": key, "value": value})

    def drain(self, case_id: str) -> list[dict[str, Any]]:
        agentic = self.agentics.get(case_id)
        phases = {n: r.records for n, r in agentic.results.items()} if agentic is not None else None
        self.probes.publish(case_id, self.record_result, phases)
        events, self.outbox[case_id] = self.outbox[case_id], []
        return events

    def handle(self, case: Case) -> EngineHandle:
        if case.id not in self.handles:
            self.handles[case.id] = make_handle(case, self.manager, self._describe)
        return self.handles[case.id]

    def agentic(self, case: Case) -> Agentic:
        if case.id in self.agentics:
            return self.agentics[case.id]
        if case.replay is not None:
            self.agentics[case.id] = ReplayAgentic(self.handle(case), emit=lambda event: self.emit(case.id, event))
        else:
            self.probes.start(case.id, self.handle(case))
            self.agentics[case.id] = Agentic(
                self.handle(case),
                runs=self.settings.runs,
                profile=self.settings.profile_for(case.profile),
                planned=self.planned[case.id],
                emit=lambda event: self.emit(case.id, event),
            )
        return self.agentics[case.id]

    def _describe(self, handle: EngineHandle) -> None:
        self.emit(
            handle.case.id,
            {
                "type": "case",
                "case": handle.case.describe(),
                "engine": handle.to_dict(),
                "profile": self.settings.profile_for(handle.case.profile),
                "runs": self.settings.runs,
            },
        )

    def close(self) -> None:
        self.probes.stop_all()
        for agentic in self.agentics.values():
            agentic.close()
        self.manager.stop_all()

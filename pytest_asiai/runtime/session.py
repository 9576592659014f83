"""Per-session plugin state: the cases, their contexts (engine, thresholds, results) and the event outbox.

Measurements travel to the report as events attached to test reports, so they reach the
controller under xdist exactly as they do in a serial run. Each case keeps an outbox; the next
test report of that case carries whatever the case measured since the previous report. Each case's
state lives in its :class:`~pytest_asiai.runtime.context.CaseContext`, made on first use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_asiai.config.matrix import Case
from pytest_asiai.config.options import Settings
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.gates.thresholds import Thresholds, parse_overrides
from pytest_asiai.measure.samplers import SamplerRegistry
from pytest_asiai.report.spool import Spool
from pytest_asiai.runtime.context import CaseContext


class AsiaiSession:
    """Everything the plugin knows during one pytest session (one per xdist worker)."""

    def __init__(self, settings: Settings, cases: Sequence[Case], load_error: str | None, log_dir: Path) -> None:
        self.settings = settings
        self.cases = list(cases)
        self.load_error = load_error
        self.manager = EngineManager(log_dir)
        self.contexts: dict[str, CaseContext] = {}
        self.planned: dict[str, set[str]] = defaultdict(set)
        self.outbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.samplers = SamplerRegistry(power_mode=settings.power)
        """psutil samplers, one per live case, started with its ``agentic`` object (before any request)."""
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
        results = self.contexts[case_id].phase_results() if case_id in self.contexts else None
        phases = {n: r.records for n, r in results.items()} if results is not None else None
        self.samplers.publish(case_id, self.record_result, phases)
        events, self.outbox[case_id] = self.outbox[case_id], []
        return events

    def context(self, case: Case) -> CaseContext:
        """The case's context, created on first use and kept for the session."""
        if case.id not in self.contexts:
            self.contexts[case.id] = CaseContext(self, case)
        return self.contexts[case.id]

    def describe(self, handle: EngineHandle) -> None:
        """Report the case, its engine and its settings (when its engine is first used)."""
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
        self.samplers.stop_all()
        for context in self.contexts.values():
            context.close()
        self.manager.stop_all()

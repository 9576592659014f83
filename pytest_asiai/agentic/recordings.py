"""Recorded cases: the :class:`Recording` a replay reads, and this project's own JSON reports as recordings.

asiai's ``agentic-v1`` to ``v4`` files are read by pytest_asiai/agentic/asiai_format.py; both kinds
become :class:`Recording` objects that pytest_asiai/agentic/replay.py turns into replayed cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_asiai.agentic.results import PhaseRun
from pytest_asiai.measure.validity import thinking_off_requested
from pytest_asiai.report.schema import case_problem
from pytest_asiai.wire.serialize import record_from_dict

REPORT_FORMAT = "pytest-asiai/report-v1"


class ReplayError(Exception):
    """A recorded file that cannot be replayed; the message is one line naming the file."""


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded case: its identity, its requests per phase, and what else was recorded."""

    source: str
    format: str
    engine: str
    model: str
    model_id: str
    mtp: str
    kind: str | None = None
    phases: Mapping[str, Sequence[PhaseRun]] = field(default_factory=dict)
    unrecorded: frozenset[str] = frozenset()
    thinking_off: bool | None = None
    """None when the recording does not say which request fields were sent."""
    probes: Mapping[str, Mapping[str, Any] | str] = field(default_factory=dict)
    """``swap``, ``engine``, ``processes`` summaries, or why one is missing."""
    machine_id: str | None = None
    version: str | None = None
    base_url: str | None = None
    profile: str | None = None
    runs: int = 1
    request: Mapping[str, Any] = field(default_factory=dict)
    thinking: str | None = None

    @property
    def source_name(self) -> str:
        return Path(self.source).name


class Doc:
    """Typed access to a recorded document, with errors that name the file and the key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> ReplayError:
        return ReplayError(f"{self.source}: {where}: {problem}")

    def number(self, obj: Mapping[str, Any], key: str, where: str) -> float | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{where}.{key}", f"expected a number, got {value!r}")
        return float(value)

    def integer(self, obj: Mapping[str, Any], key: str, where: str) -> int | None:
        value = self.number(obj, key, where)
        return None if value is None else int(value)

    def runs(self, doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        runs = doc.get("runs")
        if not isinstance(runs, list) or not runs:
            raise self.fail("runs", "expected a non-empty list of recorded requests")
        for i, run in enumerate(runs):
            if not isinstance(run, dict):
                raise self.fail(f"runs[{i}]", "expected an object")
            if not isinstance(run.get("phase"), str) or not run["phase"]:
                raise self.fail(f"runs[{i}].phase", "missing or not a string")
        return runs


def obj(value: Any) -> Mapping[str, Any]:
    """A JSON object, or an empty one for anything else (absent keys read as unrecorded)."""
    return value if isinstance(value, dict) else {}


# ----------------------------------------------------------------------------- our own reports


def _report_run(name: str, run: Mapping[str, Any]) -> PhaseRun:
    return PhaseRun(
        name,
        int(run["repeat"]),
        int(run["max_tokens"]),
        record_from_dict(run),
        cold_method=run.get("cold_method"),
        sent=obj(run.get("sent")),
        prompt=obj(run.get("prompt")),
    )


def _report_phases(doc: Doc, phases: Any, where: str) -> dict[str, list[PhaseRun]]:
    if not isinstance(phases, dict):
        raise doc.fail(f"{where}.phases", "expected an object of phases")
    out: dict[str, list[PhaseRun]] = {}
    for name, phase in phases.items():
        runs = phase.get("runs") if isinstance(phase, dict) else None
        if not isinstance(runs, list):
            raise doc.fail(f"{where}.phases.{name}.runs", "expected a list")
        for j, run in enumerate(runs):
            at = f"{where}.phases.{name}.runs[{j}]"
            try:
                out.setdefault(name, []).append(_report_run(name, run))
            except (KeyError, TypeError, ValueError) as exc:
                raise doc.fail(at, f"not a request record ({type(exc).__name__}: {exc})") from None
    return out


def from_report(raw: Mapping[str, Any], source: str) -> list[Recording]:
    """Every case of a pytest-asiai JSON report that recorded its description."""
    doc = Doc(source)
    cases = raw.get("cases")
    if not isinstance(cases, list):
        raise doc.fail("cases", "expected a list")
    out = []
    for i, case in enumerate(cases):
        if not isinstance(case, dict):
            raise doc.fail(f"cases[{i}]", "expected an object")
        if (problem := case_problem(case)) is not None:  # a string or negative ttft_ms, ... (issue 14)
            raise ReplayError(f"{source}: cases[{i}].{problem}")
        desc = case.get("case")
        if not isinstance(desc, dict):
            continue  # the case never started: nothing was measured
        results, engine, request = obj(case.get("results")), obj(case.get("engine")), obj(desc.get("request"))
        out.append(
            Recording(
                source=source,
                format=REPORT_FORMAT,
                engine=str(desc.get("engine")),
                model=str(desc.get("model")),
                model_id=str(desc.get("model_id") or desc.get("model")),
                mtp=str(desc.get("mtp") or "off"),
                kind=desc.get("kind"),
                phases=_report_phases(doc, case.get("phases", {}), f"cases[{i}]"),
                thinking_off=thinking_off_requested(request, desc.get("thinking")),
                probes=dict(obj(results.get("probes"))),
                machine_id=case.get("machine_id") or desc.get("machine_id") or raw.get("machine_id"),
                version=engine.get("version"),
                base_url=engine.get("base_url") or desc.get("base_url"),
                profile=case.get("profile"),
                runs=int(case.get("runs") or 1),
                request=request,
                thinking=desc.get("thinking"),
            )
        )
    if not out:
        raise doc.fail("cases", "no recorded case (no case ever started in this report)")
    return out

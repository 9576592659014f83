"""Replay: recorded results become cases that the phase and gate tests judge without any engine.

``--asiai-replay PATH`` (a file or a directory of ``*.json``) reads asiai's ``agentic-v1`` to
``agentic-v4`` results (pytest_asiai/agentic/asiai_format.py) and this project's own JSON reports
(pytest_asiai/agentic/recordings.py). Each recorded case becomes a
:class:`~pytest_asiai.config.matrix.Case` whose ``replay`` field holds the :class:`Recording`. Its
``agentic`` object is the live one's class reading a :class:`ReplaySource` instead of a live engine,
so built-in gates and users' gates evaluate recorded measurements exactly as they evaluate live ones
and nothing downstream asks which source it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_asiai.agentic.asiai_format import ASIAI_FORMATS, from_asiai
from pytest_asiai.agentic.calibrate import Calibration
from pytest_asiai.agentic.prompts import Corpus
from pytest_asiai.agentic.protocol import DEFAULT_PROFILE, PROFILES
from pytest_asiai.agentic.recordings import REPORT_FORMAT, Recording, ReplayError, from_report
from pytest_asiai.agentic.results import Emit, Origin, PhaseResult
from pytest_asiai.config.matrix import Case
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.measure.samplers import RecordedSamplers, SamplerView
from pytest_asiai.wire.serialize import StrictJSONError, loads_strict

# ----------------------------------------------------------------------------- files


def replay_files(path: Path) -> list[Path]:
    """The JSON files a ``--asiai-replay`` argument names (a directory: its ``*.json``, sorted)."""
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if p.is_file())
        if not files:
            raise ReplayError(f"{path}: no *.json file to replay in this directory")
        return files
    if not path.exists():
        raise ReplayError(f"{path}: no such file or directory")
    return [path]


def read_json(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{path}: cannot read the file: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        doc = loads_strict(text)
    except StrictJSONError as exc:
        raise ReplayError(f"{path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ReplayError(f"{path}: not a recorded result: the top level is not a JSON object")
    return doc


def read_recordings(path: Path) -> list[Recording]:
    """Every recorded case in one file; foreign files are a one-line ReplayError."""
    doc = read_json(path)
    version, schema = doc.get("schema_version"), doc.get("schema")
    if version in ASIAI_FORMATS:
        return [from_asiai(doc, str(path))]
    if schema == REPORT_FORMAT:
        return from_report(doc, str(path))
    found = version or schema or "no schema_version or schema key"
    raise ReplayError(
        f"{path}: not a recorded agentic result ({found}); expected asiai {'/'.join(ASIAI_FORMATS)} "
        f"or a pytest-asiai report ({REPORT_FORMAT})"
    )


def load_replay(paths: Iterable[Path]) -> list[Case]:
    """Cases from every file given, in order; a case id seen twice gets its file's stem appended."""
    cases: list[Case] = []
    seen: set[str] = set()
    for arg in paths:
        for path in replay_files(arg):
            for rec in read_recordings(path):
                case = case_of(rec)
                if case.id in seen:
                    case = replace(case, model=f"{case.model}-{Path(rec.source).stem}")
                if case.id in seen:
                    raise ReplayError(f"{path}: case {case.id} is given twice")
                seen.add(case.id)
                cases.append(case)
    return cases


def case_of(rec: Recording) -> Case:
    """The case a recording is replayed as (no base_url, no managed command: nothing is contacted)."""
    return Case(
        engine=rec.engine,
        model=rec.model,
        mtp=rec.mtp,
        kind=rec.kind,
        model_id=rec.model_id,
        profile=rec.profile,
        request=dict(rec.request),
        thinking=rec.thinking,
        source=rec.source,
        replay={"recording": rec, "source": rec.source, "format": rec.format},
    )


def recording_of(case: Case) -> Recording:
    rec = (case.replay or {}).get("recording")
    if not isinstance(rec, Recording):
        raise TypeError(f"case {case.id} is not a replayed case")
    return rec


# ----------------------------------------------------------------------------- the replayed objects


class ReplayEngine(EngineHandle):
    """The ``engine`` fixture of a replayed case: what the recording says, and nothing to start."""

    def __init__(self, case: Case, manager: EngineManager, on_start: Callable[[EngineHandle], None]) -> None:
        super().__init__(case, manager, on_start)
        self.recording = recording_of(case)
        self.version = self.recording.version
        self.capabilities = {"replayed_from": self.recording.source}

    @property
    def base_url(self) -> str | None:
        return self.recording.base_url

    @property
    def pid(self) -> int | None:
        return None

    def ensure_running(self) -> str:
        """Nothing runs: the recorded URL (or where the recording came from) is all there is."""
        return self.recording.base_url or f"replay:{self.recording.source}"

    def restart(self) -> str:
        raise RuntimeError(f"case {self.case.id} is replayed from {self.recording.source}: there is no engine")


class ReplaySource:
    """The record source of a replayed case: the recorded phases, read; no request is ever sent."""

    def __init__(self, handle: EngineHandle, emit: Emit) -> None:
        rec = recording_of(handle.case)
        self.recording = rec
        self.handle = handle
        self.runs = rec.runs
        self.profile = PROFILES[rec.profile if rec.profile in PROFILES else DEFAULT_PROFILE]
        self.phase_names = tuple(rec.phases)
        self.planned = list(self.phase_names)
        self.results = {name: PhaseResult(name, list(runs)) for name, runs in rec.phases.items()}
        self.primers: list[dict[str, Any]] = []
        self.origin = Origin(rec.source_name, rec.unrecorded, rec.thinking_off)
        self.samplers: SamplerView | None = RecordedSamplers(rec.probes, rec.source_name)
        self.calibration: Calibration | None = None
        self.cold_method = "recorded"
        self.emit = emit
        self._announce()

    def phase(self, name: str) -> PhaseResult:
        """The recorded phase; a phase the recording lacks skips the test that asked for it."""
        if name not in self.results:
            pytest.skip(f"phase {name} not recorded in {self.origin.source_name}")
        return self.results[name]

    def corpus(self) -> Corpus:
        raise RuntimeError(f"case {self.handle.case.id} is replayed: its prompts were not recorded")

    def close(self) -> None:
        return None

    def _announce(self) -> None:
        """Put the recording in the report: the case, every recorded phase, samplers and provenance."""
        rec = self.recording
        desc = {**self.handle.case.describe(), "machine_id": rec.machine_id, "replayed_from": rec.source}
        self.emit(
            {"type": "case", "case": desc, "engine": self.handle.to_dict(), "profile": rec.profile, "runs": rec.runs}
        )
        for result in self.results.values():
            self.emit({"type": "phase", "phase": result.to_dict()})
        source = {"path": rec.source, "format": rec.format, "unrecorded": sorted(rec.unrecorded)}
        self.emit({"type": "result", "section": "replay", "key": "source", "value": source})
        for key, value in rec.probes.items():
            if isinstance(value, Mapping):
                self.emit({"type": "result", "section": "probes", "key": key, "value": dict(value)})


def make_handle(case: Case, manager: EngineManager, on_start: Callable[[EngineHandle], None]) -> EngineHandle:
    """The engine handle of a case: a :class:`ReplayEngine` for a replayed one."""
    if case.replay is not None:
        return ReplayEngine(case, manager, on_start)
    return EngineHandle(case, manager, on_start)

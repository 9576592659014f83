"""Replay: recorded results become cases that the phase and gate tests judge without any engine.

``--asiai-replay PATH`` (a file or a directory of ``*.json``) reads asiai's ``agentic-v1`` to
``agentic-v4`` results and this project's own JSON reports. Each recorded case becomes a
:class:`~pytest_asiai.config.matrix.Case` whose ``replay`` field holds the :class:`Recording`; its
``agentic`` object is a :class:`ReplayAgentic` with the live interface, so built-in gates and
users' gates evaluate recorded measurements exactly as they evaluate live ones.

What a recording does not hold stays unknown: a field missing from every run (asiai v1 has no
``text``, ``finish_reason`` or ``reasoning_chars``) is listed in ``unrecorded`` and the gates that
need it report "not measured". One derivation is made: asiai stores ``decode_tok_s`` but not the
time of the last token, so ``last_token_ms`` is set to ``ttft_ms + (completion_tokens − 1) /
decode_tok_s`` and our decode formula gives back exactly the recorded rate (asiai's decode span
ends at the end of the stream, ours at the last token: the recorded figure is kept as asiai
measured it). asiai v1 files carry no time at all: their requests' ``started_at`` is 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from pytest_asiai.agentic.protocol import DEFAULT_PROFILE, PROFILES
from pytest_asiai.agentic.runner import Agentic, Emit, PhaseResult, PhaseRun
from pytest_asiai.config.matrix import Case
from pytest_asiai.engines import FAMILIES
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.measure.machine import machine_id
from pytest_asiai.measure.power import recorded_power
from pytest_asiai.measure.samplers import RecordedProbes, memory_by_phase, normalise_kind, recorded_memory_peaks
from pytest_asiai.measure.validity import thinking_off_requested
from pytest_asiai.report.writer import case_problem
from pytest_asiai.wire.records import MAX_STORED_CONTENT, RequestRecord
from pytest_asiai.wire.serialize import StrictJSONError, loads_strict, record_from_dict

ASIAI_FORMATS = ("agentic-v1", "agentic-v2", "agentic-v3", "agentic-v4")
REPORT_FORMAT = "pytest-asiai/report-v1"
#: asiai drops RSS readings at or below this as spurious sub-process matches (digest §2.5).
ASIAI_RSS_FLOOR_MB = 500.0
_MTP = re.compile(r"(?:^|[-_+. ])mtp(?:$|[-_+. ])", re.IGNORECASE)


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


# ----------------------------------------------------------------------------- asiai files


class _Doc:
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


def _obj(value: Any) -> Mapping[str, Any]:
    """A JSON object, or an empty one for anything else (absent keys read as unrecorded)."""
    return value if isinstance(value, dict) else {}


def _engine_label(doc: Mapping[str, Any]) -> tuple[str, str]:
    """asiai v1 writes ``engine+model-tag`` in ``engine``; later versions the adapter name."""
    raw = str(doc.get("engine") or "unknown")
    label, _, tag = raw.partition("+")
    return label or "unknown", tag


def _kind(label: str) -> str | None:
    key = normalise_kind(label)
    return next((k for k in FAMILIES if normalise_kind(k) == key), None)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "model"


def _asiai_error(run: Mapping[str, Any]) -> tuple[str | None, str | None, int | None]:
    """asiai's ``error`` (``HTTP 500`` or an exception name) as our error, error kind and status."""
    error = run.get("error")
    if not error:
        return None, None, None
    text = str(error) + (f": {run['error_body']}" if run.get("error_body") else "")
    if m := re.match(r"HTTP (\d+)", str(error)):
        return text, "http", int(m.group(1))
    low = str(error).lower()
    if "timeout" in low:
        return text, "timeout", None
    if "urlerror" in low or "refused" in low:
        return text, "connect", None
    if any(k in low for k in ("disconnect", "incompleteread", "reset")):
        return text, "disconnect", None
    return text, "protocol", None


def asiai_record(doc: _Doc, run: Mapping[str, Any], where: str, started_at: float) -> RequestRecord:
    """One asiai run as a request record (unrecorded fields stay None)."""
    error, kind, status = _asiai_error(run)
    ttft = doc.number(run, "ttft_ms", where)
    n = doc.integer(run, "completion_tokens", where)
    decode = doc.number(run, "decode_tok_s", where)
    last = ttft + (n - 1) / decode * 1000.0 if ttft is not None and n is not None and n > 1 and decode else None
    raw_text = run.get("text")
    text = raw_text if isinstance(raw_text, str) else ""
    return RequestRecord(
        started_at=started_at,
        status=status,
        error=error,
        error_kind=kind,
        ttft_ms=ttft,
        last_token_ms=last,
        total_ms=doc.number(run, "wall_total_ms", where),
        prompt_tokens=doc.integer(run, "prompt_tokens", where),
        completion_tokens=n,
        cached_tokens=doc.integer(run, "cached_tokens", where),
        finish_reason=run.get("finish_reason") if isinstance(run.get("finish_reason"), str) else None,
        content=text[:MAX_STORED_CONTENT],
        content_chars=len(text),
        reasoning_chars=doc.integer(run, "reasoning_chars", where) or 0,
    )


def _asiai_phases(doc: _Doc, runs: list[Mapping[str, Any]], started_at: float) -> dict[str, list[PhaseRun]]:
    phases: dict[str, list[PhaseRun]] = {}
    for i, run in enumerate(runs):
        where = f"runs[{i}]"
        record = asiai_record(doc, run, where, started_at)
        repeat = doc.integer(run, "repeat", where) or 0
        max_tokens = doc.integer(run, "max_tokens_requested", where) or 0
        phases.setdefault(run["phase"], []).append(PhaseRun(run["phase"], repeat, max_tokens, record))
    return phases


def _asiai_swap(gates: Mapping[str, Any]) -> Mapping[str, Any] | str:
    block = gates.get("memory_pressure")
    if not isinstance(block, dict):
        return "swap not recorded (asiai records it from agentic-v2 on, with gates on)"
    if not block.get("samples_count"):
        return "swap never sampled: asiai's watcher samples every 15 s, not at start"
    return {
        "baseline_mb": block.get("baseline_swap_mb"),
        "peak_mb": None,
        "growth_mb": block.get("max_swap_delta_mb"),
        "swapouts_delta": block.get("max_swapouts_delta"),
        "samples": block.get("samples_count"),
        "interval_s": 15.0,
        "recorded_by": "asiai",
    }


def _asiai_engine(doc: Mapping[str, Any], runs: list[Mapping[str, Any]]) -> Mapping[str, Any] | str:
    footprint = doc.get("footprint")
    peak = footprint.get("engine_rss_peak_mb") if isinstance(footprint, dict) else None
    if peak is None:
        values = [r.get("engine_rss_mb") for r in runs]
        rss = [float(v) for v in values if isinstance(v, int | float) and v > ASIAI_RSS_FLOOR_MB]
        peak = max(rss) if rss else None
    if peak is None:
        return "engine RSS not recorded"
    by_phase = memory_by_phase(recorded_memory_peaks(runs))
    warm = footprint.get("engine_rss_warm_mb") if isinstance(footprint, dict) else None
    warm = warm if warm is not None else by_phase["rss_warm_mb"]
    return {"rss_peak_mb": peak, "rss_warm_mb": warm, "phases": by_phase["phases"], "recorded_by": "asiai"}


def _asiai_processes(gates: Mapping[str, Any]) -> Mapping[str, Any] | str:
    out: dict[str, Any] = {"engine_pids": None, "recorded_by": "asiai"}
    duplicates, others = gates.get("duplicate_processes"), gates.get("other_engines_resident")
    if isinstance(duplicates, list):
        # asiai lists every matching process, the engine included, once two or more match.
        out["duplicates"] = duplicates
    if isinstance(others, list):
        out["others"] = others
    return out if len(out) > 2 else "engine processes not recorded (asiai records them from agentic-v2 on)"


def _asiai_machine(doc: Mapping[str, Any], source: str) -> str:
    """asiai's ``hardware`` tag (v1), its v4 metadata as our machine id, else the file stem."""
    if isinstance(doc.get("hardware"), str):
        return str(doc["hardware"])
    if isinstance(doc.get("hw_chip"), str):
        ram = doc.get("ram_gb")
        machine = {
            "os": "Darwin",
            "arch": "arm64",
            "chip": doc["hw_chip"],
            "cores_logical": doc.get("cpu_cores"),
            "ram_bytes": int(ram * 2**30) if isinstance(ram, int | float) else None,
        }
        return machine_id(machine) or str(doc["hw_chip"])
    if isinstance(doc.get("host"), str):
        return f"host:{doc['host']}"
    return f"unknown ({Path(source).stem})"


def _unrecorded(runs: list[Mapping[str, Any]]) -> frozenset[str]:
    return frozenset(k for k in ("text", "finish_reason", "reasoning_chars") if not any(k in r for r in runs))


def from_asiai(raw: Mapping[str, Any], source: str) -> Recording:
    """An asiai ``agentic-v1``..``v4`` result (protocol digest §8)."""
    doc = _Doc(source)
    runs = doc.runs(raw)
    label, tag = _engine_label(raw)
    model_name = str(raw.get("model") or tag or "model")
    gates = _obj(raw.get("quality_gates"))
    extra = raw.get("extra_body")
    started = doc.number(raw, "started_at", "(top level)") or 0.0
    repeats = [doc.integer(r, "repeat", f"runs[{i}]") or 0 for i, r in enumerate(runs)]
    return Recording(
        source=source,
        format=str(raw["schema_version"]),
        engine=label,
        model=_slug(model_name),
        model_id=model_name,
        mtp="on" if _MTP.search(f"{raw.get('engine', '')} {model_name}") else "off",
        kind=_kind(label),
        phases=_asiai_phases(doc, runs, started),
        unrecorded=_unrecorded(runs),
        thinking_off=thinking_off_requested(extra) if isinstance(extra, dict) else None,
        probes={
            "swap": _asiai_swap(gates),
            "engine": _asiai_engine(raw, runs),
            "processes": _asiai_processes(gates),
            "power": recorded_power(runs),
        },
        machine_id=_asiai_machine(raw, source),
        version=str(raw["engine_version"]) if raw.get("engine_version") else None,
        base_url=str(raw["base_url"]) if raw.get("base_url") else None,
        runs=max(repeats) + 1,
        request=dict(extra) if isinstance(extra, dict) else {},
    )


# ----------------------------------------------------------------------------- our own reports


def _report_run(name: str, run: Mapping[str, Any]) -> PhaseRun:
    return PhaseRun(
        name,
        int(run["repeat"]),
        int(run["max_tokens"]),
        record_from_dict(run),
        cold_method=run.get("cold_method"),
        sent=_obj(run.get("sent")),
        prompt=_obj(run.get("prompt")),
    )


def _report_phases(doc: _Doc, phases: Any, where: str) -> dict[str, list[PhaseRun]]:
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
    doc = _Doc(source)
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
        results, engine, request = _obj(case.get("results")), _obj(case.get("engine")), _obj(desc.get("request"))
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
                probes=dict(_obj(results.get("probes"))),
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


class ReplayAgentic(Agentic):
    """The ``agentic`` object of a replayed case: recorded phases, the same interface, no requests."""

    def __init__(self, handle: EngineHandle, emit: Emit) -> None:
        rec = recording_of(handle.case)
        profile = rec.profile if rec.profile in PROFILES else DEFAULT_PROFILE
        super().__init__(handle, runs=rec.runs, profile=profile, planned=(), emit=emit)
        self.recording = rec
        self.phase_names = tuple(rec.phases)
        self.planned = list(self.phase_names)
        self.results = {name: PhaseResult(name, list(runs)) for name, runs in rec.phases.items()}
        self.probes = RecordedProbes(rec.probes, rec.source_name)
        self._announce()

    @property
    def unrecorded(self) -> frozenset[str]:
        return self.recording.unrecorded

    @property
    def thinking_off(self) -> bool | None:
        return self.recording.thinking_off

    @property
    def source_name(self) -> str:
        return self.recording.source_name

    def phase(self, name: str) -> PhaseResult:
        """The recorded phase; a phase the recording lacks skips the test that asked for it."""
        if name not in self.results:
            pytest.skip(f"phase {name} not recorded in {self.source_name}")
        return self.results[name]

    def _run_until(self, last: str) -> None:
        raise RuntimeError(f"case {self.case.id} is replayed: no request is sent")

    def close(self) -> None:
        return None

    @property
    def cold_method(self) -> str:
        return "recorded"

    def _announce(self) -> None:
        """Put the recording in the report: the case, every recorded phase, probes and provenance."""
        rec = self.recording
        desc = {**self.case.describe(), "machine_id": rec.machine_id, "replayed_from": rec.source}
        self._emit(
            {"type": "case", "case": desc, "engine": self.handle.to_dict(), "profile": rec.profile, "runs": rec.runs}
        )
        for result in self.results.values():
            self._emit({"type": "phase", "phase": result.to_dict()})
        source = {"path": rec.source, "format": rec.format, "unrecorded": sorted(rec.unrecorded)}
        self._emit({"type": "result", "section": "replay", "key": "source", "value": source})
        for key, value in rec.probes.items():
            if isinstance(value, Mapping):
                self._emit({"type": "result", "section": "probes", "key": key, "value": dict(value)})


def make_handle(case: Case, manager: EngineManager, on_start: Callable[[EngineHandle], None]) -> EngineHandle:
    """The engine handle of a case: a :class:`ReplayEngine` for a replayed one."""
    if case.replay is not None:
        return ReplayEngine(case, manager, on_start)
    return EngineHandle(case, manager, on_start)

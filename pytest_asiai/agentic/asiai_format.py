"""asiai's recorded agentic results (``agentic-v1`` to ``agentic-v4``) as :class:`Recording` objects.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_asiai.agentic.recordings import Doc, Recording, obj
from pytest_asiai.agentic.results import PhaseRun
from pytest_asiai.engines import FAMILIES
from pytest_asiai.measure.machine import machine_id
from pytest_asiai.measure.power import recorded_power
from pytest_asiai.measure.samplers import memory_by_phase, recorded_memory_peaks
from pytest_asiai.measure.solo import normalise_kind
from pytest_asiai.measure.validity import thinking_off_requested
from pytest_asiai.wire.records import MAX_STORED_CONTENT, RequestRecord

ASIAI_FORMATS = ("agentic-v1", "agentic-v2", "agentic-v3", "agentic-v4")
#: asiai drops RSS readings at or below this as spurious sub-process matches (docs/asiai-protocol.md §2.5).
ASIAI_RSS_FLOOR_MB = 500.0
_MTP = re.compile(r"(?:^|[-_+. ])mtp(?:$|[-_+. ])", re.IGNORECASE)


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


def asiai_record(doc: Doc, run: Mapping[str, Any], where: str, started_at: float) -> RequestRecord:
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


def _asiai_phases(doc: Doc, runs: list[Mapping[str, Any]], started_at: float) -> dict[str, list[PhaseRun]]:
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
    """An asiai ``agentic-v1``..``v4`` result (docs/asiai-protocol.md §8)."""
    doc = Doc(source)
    runs = doc.runs(raw)
    label, tag = _engine_label(raw)
    model_name = str(raw.get("model") or tag or "model")
    gates = obj(raw.get("quality_gates"))
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

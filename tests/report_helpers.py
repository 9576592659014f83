"""Helpers shared by the report, baseline, xdist and nothing-lost tests.

``plugin_args`` runs a pytester test three ways, as syrupy does: without xdist, with ``-n 0`` and
with ``-n 2``; the plugin must give the same results in each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_asiai.report.schema import validate_report

REPO = Path(__file__).resolve().parent.parent
SUITES = REPO / "suites"

XDIST_MODES = {"serial": [], "n0": ["-n", "0"], "n2": ["-n", "2"]}


@pytest.fixture(params=list(XDIST_MODES.values()), ids=list(XDIST_MODES))
def plugin_args(request: pytest.FixtureRequest) -> list[str]:
    """Extra pytest arguments: no xdist, ``-n 0``, ``-n 2``."""
    return list(request.param)


def engines_toml(*engines: tuple[str, str], model: str = "m", extra: str = "") -> str:
    """An engines.toml with one base_url engine per (name, base_url), profile smoke."""
    out = 'profile = "smoke"\n'
    for name, url in engines:
        out += (
            f'[[engines]]\nname = "{name}"\nkind = "llamacpp"\nbase_url = "{url}"\ndeadline_s = 20\n{extra}\n'
            f'[[engines.models]]\nname = "{model}"\n'
        )
    return out


def copy_suite(dest: Path, *names: str) -> None:
    for name in names:
        shutil.copy(SUITES / name, dest / name)


def load_valid(path: Path) -> dict[str, Any]:
    """Read a report and check it against the shipped schema."""
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    validate_report(report)
    return report


def outcomes_by_case(report: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """(test name, outcome) per case id, in report order."""
    return {c["id"]: [(t["name"], t["outcome"]) for t in c["tests"]] for c in report["cases"]}


# -- synthetic reports (fast, for the CLI and HTML tests) -----------------------------------------------

META = {
    "plugin_version": "0.1.0",
    "pytest_version": pytest.__version__,
    "python_version": "3.11.7",
    "started_at": 1_760_000_000.0,
    "command_line": ["-m", "agentic", "--asiai-json=r.json"],
    "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "branch": "main", "dirty": True},
    "machine": {
        "hostname": "mac-1",
        "os": "Darwin",
        "os_release": "24.1.0",
        "arch": "arm64",
        "cpu_model": "Apple M4 Pro",
        "cores_logical": 14,
        "ram_bytes": 64 * 2**30,
        "chip": "Apple M4 Pro",
        "power_mode": "automatic",
    },
    "machine_id": "Darwin-arm64-Apple M4 Pro-14c-64g",
}


def request_record(ttft_ms: float, decode_tok_s: float = 50.0, prompt: int = 1000, cached: int = 0, tokens: int = 32):
    from pytest_asiai.wire.records import RequestRecord

    span = (tokens - 1) / decode_tok_s * 1000.0
    chunks = tuple(ttft_ms + i * span / (tokens - 1) for i in range(tokens))
    return RequestRecord(
        started_at=1_760_000_000.0,
        status=200,
        headers_ms=2.0,
        ttft_ms=ttft_ms,
        ttfc_ms=ttft_ms,
        last_token_ms=chunks[-1],
        total_ms=chunks[-1] + 1.0,
        token_chunk_ms=chunks,
        prompt_tokens=prompt,
        completion_tokens=tokens,
        cached_tokens=cached,
        cached_source="usage.prompt_tokens_details.cached_tokens",
        finish_reason="length",
        content="word " * tokens,
    )


def phase_dict(name: str, records: list[Any]) -> dict[str, Any]:
    from pytest_asiai.measure.metrics import phase_stats
    from pytest_asiai.wire.serialize import record_to_dict

    runs = [{"phase": name, "repeat": i, "max_tokens": 64, **record_to_dict(r)} for i, r in enumerate(records)]
    return {"name": name, "runs": runs, "stats": phase_stats(records)}


PHASE_SHAPES = {  # name: (ttft ms, cached fraction)
    "cold": (5400.0, 0.0),
    "warm": (110.0, 0.99),
    "prefix-test-1": (150.0, 0.8),
    "cold-prefix": (5200.0, 0.0),
}


def synthetic_case(engine: str, version: str = "b11434", slow: float = 1.0, decode: float = 90.0) -> list[Any]:
    """(case_id, event) pairs describing one measured case."""
    case_id = f"{engine}-smollm2-135m-mtp_off"
    describe = {
        "id": case_id,
        "engine": engine,
        "kind": "llamacpp",
        "model": "smollm2-135m",
        "model_id": "smollm2",
        "mtp": "off",
        "base_url": None,
        "managed": True,
        "launch_args": ["llama-server", "--port", "{port}"],
        "api_key_env": None,
        "profile": "smoke",
        "request": {},
        "thinking": None,
        "source": "engines.toml",
    }
    engine_info = {
        "name": engine,
        "kind": "llamacpp",
        "base_url": "http://127.0.0.1:8080",
        "model": "smollm2",
        "mtp": "off",
        "version": version,
        "capabilities": {},
        "managed": True,
        "pid": 4242,
    }
    case_event = {"type": "case", "case": describe, "engine": engine_info, "profile": "smoke", "runs": 1}
    events: list[Any] = [(case_id, case_event)]
    for name, (ttft, frac) in PHASE_SHAPES.items():
        records = [request_record(ttft * slow, decode / slow, cached=int(1000 * frac))]
        events.append((case_id, {"type": "phase", "phase": phase_dict(name, records)}))
        test = {
            "type": "test",
            "nodeid": f"test_agentic.py::test_phase[{case_id}-{name}]",
            "name": f"test_phase[{case_id}-{name}]",
            "outcome": "passed",
            "message": None,
            "duration": 1.0,
            "markers": ["agentic"],
            "worker": None,
        }
        events.append((case_id, test))
    ok = slow < 10
    gate = {"value": 110.0 * slow, "threshold": 1500.0, "outcome": "pass" if ok else "fail", "reason": None}
    gate["tier"] = "ok" if ok else "eliminated"
    events.append((case_id, {"type": "result", "section": "gates", "key": "warm_ttft_ms", "value": gate}))
    return events


def synthetic_report(*cases: list[Any], burst: bool = False, exit_status: int = 0) -> dict[str, Any]:
    from pytest_asiai.report.fold import ReportModel

    model = ReportModel(META)
    for events in cases:
        for case_id, event in events:
            model.apply(case_id, event)
    if burst:
        first = next(iter(model.cases))
        calls = [{"index": i, "latency_ms": 900.0 + 37.0 * i, "ttft_ms": 40.0 + 9.0 * i, "ok": True} for i in range(16)]
        calls[3]["latency_ms"] = None  # a failed call: no latency
        value = {
            "size": 16,
            "calls": 16,
            "valid_pct": 93.75,
            "verdict": "parallel",
            "latency_ms": {"p50": 1178.0, "p95": 1427.0, "p99": 1449.0, "max": 1455.0},
            "passes": [{"pass": 0, "calls": calls}],
        }
        model.apply(first, {"type": "result", "section": "burst", "key": "16", "value": value})
        model.apply(first, {"type": "metric", "name": "warm_to_cold", "value": 0.02})
    report = model.build(finished=True, exit_status=exit_status)
    validate_report(report)
    return report


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path

"""Hostile runs through pytester (issue 14 items 1, 2, 7, 8): usage errors at start, reports that survive.

Each test failed on the code before its fix: a collision measured one engine twice, NaN from an
engine or a ``--asiai-gate ttft=nan`` left a report without phases, a filter matching nothing gave a
green run of skipped tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import scripted_engine as se
from scripted_engine import Behaviour

SUITES = Path(__file__).parent.parent / "suites"


def toml(*engines: tuple[str, str, str]) -> str:
    out = 'profile = "smoke"\n'
    for name, model, url in engines:
        out += (
            f'[[engines]]\nname = "{name}"\nkind = "llamacpp"\nbase_url = "{url}"\ndeadline_s = 20\n'
            f'[[engines.models]]\nname = "{model}"\n'
        )
    return out


def project(pytester: pytest.Pytester, text: str) -> pytest.Pytester:
    pytester.makefile(".toml", engines=text)
    pytester.makepyfile(test_agentic=(SUITES / "test_agentic.py").read_text(encoding="utf-8"))
    return pytester


def usage_error(result: pytest.RunResult) -> str:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    return lines[0]


# -- item 1 ----------------------------------------------------------------------------------------------


def test_colliding_case_ids_stop_the_run_before_any_request(pytester, scripted_engine):
    url = scripted_engine.base_url
    project(pytester, toml(("a-b", "c", url), ("a", "b-c", url)))
    line = usage_error(pytester.runpytest_subprocess("test_agentic.py"))
    assert "a-b-c-mtp_off" in line and "'a-b'" in line and "'a'" in line
    assert scripted_engine.requests == []


# -- item 7 ----------------------------------------------------------------------------------------------


def test_engine_filter_matching_nothing_is_a_usage_error(pytester):
    project(pytester, toml(("alpha", "m", "http://127.0.0.1:9/v1")))
    line = usage_error(pytester.runpytest_subprocess("test_agentic.py", "--asiai-engine", "zzz"))
    assert line == "ERROR: --asiai-engine 'zzz' matches no case (engines: alpha)"


# -- item 8 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gate", "problem"),
    [
        ("tfft=1", "did you mean 'ttft'"),
        ("ttft=nan", "not a finite number"),
        ("ttft=inf", "not a finite number"),
        ("ttft=-5", "never negative"),
    ],
)
def test_bad_gate_override_is_a_usage_error(pytester, gate, problem):
    project(pytester, toml(("alpha", "m", "http://127.0.0.1:9/v1")))
    line = usage_error(pytester.runpytest_subprocess("test_agentic.py", "--asiai-gate", gate))
    assert line.startswith(f"ERROR: --asiai-gate: {gate!r}: ") and problem in line


# -- item 2: a non-finite number from an engine is "not measured" ---------------------------------------


def test_nan_in_engine_timings_leaves_a_complete_report(pytester, scripted_engine, monkeypatch):
    real = se._timings

    def poisoned(*args: Any) -> dict[str, Any]:
        return {**real(*args), "predicted_per_second": float("nan"), "prompt_ms": float("inf")}

    monkeypatch.setattr(se, "_timings", poisoned)
    scripted_engine.behaviour = Behaviour(send_timings=True)
    project(pytester, toml(("eng", "m", scripted_engine.base_url)))
    result = pytester.runpytest("test_agentic.py", "--asiai-json", "r.json", "-k", "cold or warm", "-p", "no:randomly")
    report = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    (case,) = report["cases"]
    assert set(case["phases"]) >= {"cold", "warm"}, result.stdout.str()
    request = case["phases"]["cold"]["runs"][0]
    assert request["timings"]["predicted_per_second"] is None
    assert request["timings"]["prompt_ms"] is None
    assert request["unmeasurable"] == {"timings.predicted_per_second": "nan", "timings.prompt_ms": "inf"}
    assert request["ttft_ms"] is not None
    assert report["complete"] is True


def test_huge_usage_count_is_not_measured_and_the_report_survives(pytester, scripted_engine, monkeypatch):
    real = se._usage

    def huge(*args: Any) -> dict[str, Any]:
        return {**real(*args), "completion_tokens": 10**400}

    monkeypatch.setattr(se, "_usage", huge)
    project(pytester, toml(("eng", "m", scripted_engine.base_url)))
    result = pytester.runpytest("test_agentic.py", "--asiai-json", "r.json", "-k", "cold")
    report = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    (case,) = report["cases"]
    assert "cold" in case["phases"], result.stdout.str()
    request = case["phases"]["cold"]["runs"][0]
    assert request["completion_tokens"] is None
    assert request["prompt_tokens"] is not None


def test_negative_usage_count_is_not_measured():
    from pytest_asiai.wire.records import as_count

    assert [as_count(v) for v in (-3, -3.0, 10**400, 2.0**60, 7, 7.0, True)] == [None, None, None, None, 7, 7, None]


# -- item 6: unwritable outputs are usage errors; a full disk mid-run keeps the events log -----------------


@pytest.mark.parametrize(
    ("option", "target", "problem"),
    [
        ("--asiai-json", "blocker/r.json", "is a file, not a directory"),
        ("--asiai-json", "adir", "is a directory"),
        ("--asiai-html", "blocker/r.html", "is a file, not a directory"),
        ("--asiai-html", "adir", "is a directory"),
    ],
)
def test_unwritable_output_is_a_usage_error_at_start(pytester, option, target, problem):
    project(pytester, toml(("alpha", "m", "http://127.0.0.1:9/v1")))
    (pytester.path / "blocker").write_text("x", encoding="utf-8")
    (pytester.path / "adir").mkdir()
    line = usage_error(pytester.runpytest_subprocess("test_agentic.py", option, target))
    assert line.startswith(f"ERROR: {option}: ") and problem in line


def test_unwritable_baseline_to_update_is_a_usage_error(pytester):
    project(pytester, toml(("alpha", "m", "http://127.0.0.1:9/v1")))
    (pytester.path / "blocker").write_text("x", encoding="utf-8")
    args = ("test_agentic.py", "--asiai-baseline", "blocker/b.json", "--asiai-update-baseline")
    line = usage_error(pytester.runpytest_subprocess(*args))
    assert line.startswith("ERROR: --asiai-baseline: ") and "is a file, not a directory" in line


def test_full_disk_mid_run_keeps_the_events_log_and_says_so(pytester, scripted_engine, monkeypatch):
    import errno

    from pytest_asiai.report import writer as report_module

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(report_module, "atomic_write", full)
    project(pytester, toml(("eng", "m", scripted_engine.base_url)))
    result = pytester.runpytest("test_agentic.py", "--asiai-json", "r.json", "-k", "cold")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    assert "No space left on device" in out and "r.json.events.jsonl" in out
    events = (pytester.path / "r.json.events.jsonl").read_text(encoding="utf-8")
    assert '"type":"phase"' in events


def test_full_disk_at_the_html_and_baseline_writes_is_a_note(pytester, scripted_engine, monkeypatch):
    import errno

    from pytest_asiai.report import writer as report_module

    real = report_module.atomic_write

    def full_except_json(path: Path, text: str) -> None:
        if path.suffix == ".json" and path.name.startswith("r."):
            return real(path, text)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(report_module, "atomic_write", full_except_json)
    monkeypatch.setattr("pytest_asiai.report.html.atomic_write", full_except_json)
    monkeypatch.setattr("pytest_asiai.report.baseline.atomic_write", full_except_json)
    project(pytester, toml(("eng", "m", scripted_engine.base_url)))
    args = ("--asiai-json", "r.json", "--asiai-html", "r.html", "--asiai-baseline", "b.json", "--asiai-update-baseline")
    result = pytester.runpytest("test_agentic.py", "-k", "cold", *args)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out and result.ret == pytest.ExitCode.OK, out
    assert "cannot write r.html: No space left on device" in out
    assert "cannot write b.json: No space left on device" in out
    assert json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))["complete"] is True


# -- lesser: a whitespace-only answer is no answer -------------------------------------------------------------


def test_whitespace_only_answer_fails_the_phase(pytester, scripted_engine, monkeypatch):
    monkeypatch.setattr(se, "_pieces", lambda b, n: [" \n"] * n)
    project(pytester, toml(("eng", "m", scripted_engine.base_url)))
    result = pytester.runpytest("test_agentic.py", "-k", "cold and not prefix")
    result.assert_outcomes(failed=1, deselected=8)
    result.stdout.fnmatch_lines(["*only whitespace*"])

"""The plugin end to end through pytester, against the scripted test engine on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai.agentic.protocol import phase_names_for

SUITE = (Path(__file__).parent.parent / "suites" / "test_agentic.py").read_text(encoding="utf-8")
#: The phases of a case given by base_url (restart-prefix needs a managed engine).
PHASES = phase_names_for(managed=False)
N = len(PHASES)


def engines_toml(base_url: str, name: str = "scripted", model: str = "m") -> str:
    return (
        f'profile = "smoke"\n[[engines]]\nname = "{name}"\nkind = "llamacpp"\nbase_url = "{base_url}"\n'
        f'deadline_s = 20\n[[engines.models]]\nname = "{model}"\n'
    )


@pytest.fixture
def project(pytester: pytest.Pytester, scripted_engine: ScriptedEngine) -> pytest.Pytester:
    """A user's project: the agentic suite and an engines.toml pointing at the scripted engine."""
    pytester.makefile(".toml", engines=engines_toml(scripted_engine.base_url))
    pytester.makepyfile(test_agentic=SUITE)
    return pytester


def load_report(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_help_lists_the_asiai_group(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*pytest-asiai*", "*--asiai-engines=PATH*", "*--asiai-json=PATH*"])


def test_bad_engines_toml_is_a_one_line_usage_error(pytester):
    pytester.makefile(".toml", engines='[[engines]]\nname = "x"\nbase_url = "http://127.0.0.1:1"\n')
    pytester.makepyfile(test_agentic=SUITE)
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [f"ERROR: {pytester.path / 'engines.toml'}: engines[0]: 'models' is a required property"]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_ids_read_like_the_seed_table(project):
    result = project.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [f"test_agentic.py::test_phase[scripted-m-mtp_off-{name}]" for name in PHASES]
        + ["*1 deselected*"]  # restart-prefix: this engine is not managed
    )
    assert "restart-prefix" not in result.stdout.str()


def test_agentic_run_writes_cold_and_warm_records(project, scripted_engine):
    scripted_engine.behaviour = Behaviour(prefill_ms_per_token=0.05, send_timings=True)
    report_path = project.path / "out" / "report.json"
    result = project.runpytest("-m", "agentic", f"--asiai-json={report_path}")
    result.assert_outcomes(passed=N, deselected=1)
    report = load_report(report_path)
    assert report["schema"] == "pytest-asiai/report-v1" and report["complete"] is True
    (case,) = report["cases"]
    assert case["id"] == "scripted-m-mtp_off"
    assert case["engine"]["version"] == "b11434"
    cold, warm = case["phases"]["cold"]["runs"][0], case["phases"]["warm"]["runs"][0]
    assert cold["cached_tokens"] == 0 and cold["ok"]
    assert warm["cached_tokens"] == warm["prompt_tokens"] - 1
    assert warm["cached_source"] == "usage.prompt_tokens_details.cached_tokens"
    assert warm["ttft_ms"] < cold["ttft_ms"]
    assert warm["timings"]["cache_n"] == warm["cached_tokens"]
    assert [t["outcome"] for t in case["tests"]] == ["passed"] * N
    assert list(case["phases"]) == list(PHASES)
    assert (project.path / "out" / "report.json.events.jsonl").exists()


def test_selecting_warm_still_measures_cold_first(project, scripted_engine):
    result = project.runpytest("-m", "agentic", "-k", "warm", "--asiai-json=r.json")
    result.assert_outcomes(passed=1)
    assert len(scripted_engine.requests) == 2
    phases = load_report(project.path / "r.json")["cases"][0]["phases"]
    assert list(phases) == ["cold", "warm"]


def test_cold_is_salted_per_session_and_warm_repeats_it(project, scripted_engine):
    project.runpytest("-m", "agentic").assert_outcomes(passed=N, deselected=1)
    project.runpytest("-m", "agentic").assert_outcomes(passed=N, deselected=1)
    requests = scripted_engine.requests
    first_cold, first_warm, second_cold = requests[0], requests[1], requests[N]
    assert first_cold["messages"] == first_warm["messages"]
    assert first_cold["messages"][0] != second_cold["messages"][0]


def test_user_test_reuses_measurements(project, scripted_engine):
    project.makepyfile(
        test_mine="""
        def test_warm_hits_the_cache(agentic):
            assert agentic.phase("warm").cached_tokens > 0
            assert agentic.phase("cold").ttft_ms is not None
    """
    )
    result = project.runpytest("-m", "agentic or not agentic", "-p", "no:randomly")
    result.assert_outcomes(passed=N + 1, deselected=1)
    assert len(scripted_engine.requests) == N


def test_engine_fixture_describes_the_case(project):
    project.makepyfile(
        test_engine="""
        def test_engine(engine):
            assert (engine.name, engine.kind, engine.model, engine.mtp) == ("scripted", "llamacpp", "m", "off")
            assert engine.version == "b11434" and engine.base_url.startswith("http://127.0.0.1:")
    """
    )
    project.runpytest("test_engine.py").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (Behaviour(http_status=500), "http: HTTP 500"),
        (Behaviour(error_in_stream_after_tokens=2), "stream_error: scripted stream error"),
        (Behaviour(disconnect_after_tokens=3), "disconnect"),
    ],
    ids=["http-500", "error-in-200-stream", "disconnect"],
)
def test_failed_requests_fail_the_phase_and_stay_in_the_report(project, scripted_engine, behaviour, message):
    scripted_engine.behaviour = behaviour
    result = project.runpytest("-m", "agentic", "--asiai-json=r.json")
    result.assert_outcomes(failed=N, deselected=1)
    result.stdout.fnmatch_lines([f"*cold repeat 0: {message}*"])
    runs = load_report(project.path / "r.json")["cases"][0]["phases"]["cold"]["runs"]
    assert runs[0]["ok"] is False and runs[0]["error_kind"] == message.split(":")[0]


def test_unreachable_engine_fails_with_connect_error(pytester):
    pytester.makefile(".toml", engines=engines_toml("http://127.0.0.1:9"))
    pytester.makepyfile(test_agentic=SUITE)
    result = pytester.runpytest("-m", "agentic")
    result.assert_outcomes(failed=N, deselected=1)
    result.stdout.fnmatch_lines(["*cold repeat 0: connect*"])


def test_runs_repeat_the_protocol(project, scripted_engine):
    project.runpytest("-m", "agentic", "--asiai-runs=3", "--asiai-json=r.json").assert_outcomes(passed=N, deselected=1)
    phases = load_report(project.path / "r.json")["cases"][0]["phases"]
    assert [r["repeat"] for r in phases["cold"]["runs"]] == [0, 1, 2]
    assert phases["cold"]["stats"]["ttft_ms"]["n"] == 3
    # Every repeat's cold is cold: only the chat template's first token can be shared.
    assert all(r["cached_tokens"] <= 1 for r in phases["cold"]["runs"])
    assert all(r["cached_tokens"] == r["prompt_tokens"] - 1 for r in phases["warm"]["runs"])
    assert len(scripted_engine.requests) == 3 * N

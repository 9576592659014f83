"""Replay: recorded results (asiai agentic-v1..v4, our own reports) become cases judged without engines.

The pytester runs are the golden end-to-end tests: ``pytest -m agentic --asiai-replay`` on asiai's
four recorded M5 results gives the gate outcomes docs/asiai-protocol.md predicts, a user-written gate
fails on a replayed case and lands in the JSON report next to the built-in gates, and a live
report replays to the same verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from real_engine import SUITES, copy_suites
from scripted_engine import Behaviour

from pytest_asiai.agentic.recordings import ReplayError
from pytest_asiai.agentic.replay import ReplayEngine, ReplaySource, load_replay, read_recordings
from pytest_asiai.agentic.results import Agentic
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.gates.inputs import gather, prefix_names, run_phase_names
from pytest_asiai.gates.phases import (
    gate_duplicates,
    gate_early_stop,
    gate_memory,
    gate_solo,
    gate_swap,
    gate_thinking,
    gate_valid,
    resolver,
)
from pytest_asiai.gates.reuse import gate_reuse
from pytest_asiai.gates.thresholds import Thresholds
from pytest_asiai.measure.metrics import decode_tok_s

DATA = Path(__file__).parent / "data" / "asiai-agentic-v1"
IDS = {
    "m5-llamacpp-27b-mtp.json": "llamacpp-qwen3.6-27b-mtp-gguf-mtp_on",
    "m5-llamacpp-35b-mtp.json": "llamacpp-qwen3.6-35b-a3b-mtp-gguf-mtp_on",
    "m5-mlxlm-27b-mtp.json": "mlx-lm-qwen3.6-27b-mlx-4bit-mtp-mtp_on",
    "m5-mlxlm-35b-mtp.json": "mlx-lm-qwen3.6-35b-a3b-mlx-mtp-4bit-mtp_on",
}
NOT_MEASURED = {"valid", "swap", "solo", "duplicates", "thinking", "memory"}
#: Gate outcomes per replayed case: what a careful reading of docs/asiai-protocol.md predicts.
EXPECTED = {
    IDS["m5-llamacpp-27b-mtp.json"]: {"ttft": "pass", "reuse": "fail", "early_stop": "pass"},
    IDS["m5-llamacpp-35b-mtp.json"]: {"ttft": "pass", "reuse": "fail", "early_stop": "pass"},
    IDS["m5-mlxlm-27b-mtp.json"]: {"ttft": "pass", "reuse": "pass", "early_stop": "fail"},
    IDS["m5-mlxlm-35b-mtp.json"]: {"ttft": "pass", "reuse": "pass", "early_stop": "fail"},
}


def report_of(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def cases_by_id(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["cases"]}


# ----------------------------------------------------------------------------- reading files


def test_v1_recordings_become_cases():
    cases = load_replay([DATA])
    assert [c.id for c in cases] == [IDS[name] for name in sorted(IDS)]
    llama = cases[0]
    assert (llama.engine, llama.kind, llama.mtp, llama.model_id) == (
        "llamacpp",
        "llamacpp",
        "on",
        "Qwen3.6-27B-MTP-GGUF",
    )
    assert llama.base_url is None and llama.managed is None and llama.host_group == "replay:llamacpp"
    rec = llama.replay["recording"]
    assert rec.format == "agentic-v1" and rec.machine_id == "m5-max-128gb"
    assert rec.unrecorded == {"text", "finish_reason", "reasoning_chars"}
    assert rec.thinking_off is None  # v1 does not say which request fields were sent
    assert list(rec.phases) == [
        "cold", "warm", "prefix-test-1", "prefix-test-2", "prefix-test-3", "cold-prefix", "long-context", "long-prefix",
    ]  # fmt: skip


def test_recorded_runs_keep_their_values_and_decode_rate():
    (rec,) = read_recordings(DATA / "m5-mlxlm-27b-mtp.json")
    cold = rec.phases["cold"][0]
    assert (cold.max_tokens, cold.repeat) == (400, 0)
    r = cold.record
    assert (r.ttft_ms, r.total_ms, r.prompt_tokens, r.cached_tokens, r.completion_tokens) == (11106, 11380, 7528, 0, 9)
    assert decode_tok_s(r) == pytest.approx(29.226404498491664)
    pt1 = rec.phases["prefix-test-1"][0].record
    assert pt1.ttft_ms is None and pt1.last_token_ms is None and decode_tok_s(pt1) is None
    assert pt1.finish_reason is None and pt1.status is None and pt1.ok


def test_same_case_twice_gets_the_file_stem(tmp_path):
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text((DATA / "m5-llamacpp-27b-mtp.json").read_text())
    ids = [c.id for c in load_replay([tmp_path])]
    assert ids == ["llamacpp-qwen3.6-27b-mtp-gguf-mtp_on", "llamacpp-qwen3.6-27b-mtp-gguf-b-mtp_on"]


V4 = {
    "schema_version": "agentic-v4",
    "engine": "llamacpp",
    "model": "Qwen3.6-35B-A3B",
    "base_url": "http://127.0.0.1:8080",
    "started_at": 1780000000,
    "engine_version": "9430",
    "extra_body": {"chat_template_kwargs": {"enable_thinking": False}},
    "hw_chip": "Apple M5 Max",
    "ram_gb": 128,
    "cpu_cores": 18,
    "quality_gates": {
        "memory_pressure": {
            "baseline_swap_mb": 10.0, "max_swap_delta_mb": 0.0, "max_swapouts_delta": 0, "samples_count": 4,
        },
        "duplicate_processes": [{"pid": 1, "command": "llama-server -m a"}, {"pid": 2, "command": "llama-server -m b"}],
        "other_engines_resident": [],
    },
    "footprint": {"engine_rss_peak_mb": 29500.5, "engine_rss_warm_mb": 29000.0},
    "runs": [
        {"phase": "cold", "repeat": 0, "ttft_ms": 900, "wall_total_ms": 5000, "completion_tokens": 400,
         "prompt_tokens": 7528, "cached_tokens": 0, "decode_tok_s": 100.0, "max_tokens_requested": 400,
         "finish_reason": "length", "text": " ".join(f"w{i}" for i in range(50)), "reasoning_chars": 0},
        {"phase": "warm", "repeat": 0, "ttft_ms": 60, "wall_total_ms": 4000, "completion_tokens": 12,
         "prompt_tokens": 7528, "cached_tokens": 7527, "decode_tok_s": 100.0, "max_tokens_requested": 400,
         "finish_reason": "stop", "text": "Short, finished answer.", "reasoning_chars": 0},
        {"phase": "prefix-test-1", "repeat": 0, "ttft_ms": None, "wall_total_ms": 20, "completion_tokens": 0,
         "prompt_tokens": None, "cached_tokens": None, "decode_tok_s": None, "max_tokens_requested": 400,
         "error": "HTTP 500", "error_body": "boom", "text": "", "reasoning_chars": 0},
        {"phase": "prefix-test-1", "repeat": 1, "ttft_ms": 70, "wall_total_ms": 4000, "completion_tokens": 400,
         "prompt_tokens": 7530, "cached_tokens": 6026, "decode_tok_s": 99.0, "max_tokens_requested": 400,
         "finish_reason": "length", "text": "<think>plan</think> " + " ".join(f"v{i}" for i in range(40)),
         "reasoning_chars": 0},
    ],
}  # fmt: skip


def test_v4_recordings_carry_probes_thinking_and_errors(tmp_path):
    path = tmp_path / "v4.json"
    path.write_text(json.dumps(V4))
    (case,) = load_replay([path])
    rec = case.replay["recording"]
    assert rec.unrecorded == frozenset() and rec.thinking_off is True and rec.runs == 2
    assert rec.machine_id == "Darwin-arm64-Apple M5 Max-18c-128g" and rec.version == "9430"
    failed = rec.phases["prefix-test-1"][0].record
    assert (failed.ok, failed.error_kind, failed.status, failed.error) == (False, "http", 500, "HTTP 500: boom")
    agentic = Agentic(ReplaySource(ReplayEngine(case, EngineManager(tmp_path), lambda h: None), emit=lambda e: None))
    resolve = resolver(Thresholds({}, {}), case)
    inputs = gather(agentic, run_phase_names(agentic), agentic.samplers)
    assert gate_valid(inputs, resolve).value == 75.0  # the failed request counts against validity
    thinking = gate_thinking(inputs, resolve)
    assert thinking.outcome == "fail" and "prefix-test-1#1 has inline <think>" in thinking.reason
    assert gate_early_stop(inputs, resolve).value == 0  # warm stopped by choice after 12 tokens
    assert gate_swap(inputs, resolve).outcome == "pass"
    assert gate_solo(inputs, resolve).outcome == "pass"
    assert gate_duplicates(inputs, resolve).outcome == "fail"
    memory = gate_memory(inputs, resolve)
    assert (memory.outcome, memory.value) == ("no threshold", 29500.5)
    names = prefix_names(agentic)
    reuse = gate_reuse(gather(agentic, ["cold", *names], agentic.samplers), resolve, names)
    assert reuse.outcome == "not measured"  # prefix-test-1 had a failed request: the phase is not usable


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{nope", "not JSON: Expecting property name enclosed in double quotes at line 1"),
        ("[1, 2]", "not a recorded result: the top level is not a JSON object"),
        ('{"schema_version": "burst-v2", "runs": []}', "not a recorded agentic result (burst-v2)"),
        ('{"schema_version": "agentic-v2"}', "runs: expected a non-empty list of recorded requests"),
        ('{"schema_version": "agentic-v1", "runs": [{"phase": "cold", "ttft_ms": "fast"}]}',
         "runs[0].ttft_ms: expected a number, got 'fast'"),
        ('{"schema": "pytest-asiai/report-v1", "cases": []}', "cases: no recorded case"),
    ],
)  # fmt: skip
def test_unreadable_or_foreign_files_are_one_line_errors(tmp_path, content, problem):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ReplayError) as info:
        load_replay([path])
    message = str(info.value)
    assert message.startswith(f"{path}: {problem}") and "\n" not in message


def test_missing_paths_and_empty_directories(tmp_path):
    with pytest.raises(ReplayError, match="no such file or directory"):
        load_replay([tmp_path / "nope.json"])
    with pytest.raises(ReplayError, match=r"no \*\.json file to replay"):
        load_replay([tmp_path])


# ----------------------------------------------------------------------------- end to end (pytester)


def add_suites(pytester: pytest.Pytester) -> None:
    """The phase and gate suites; the gate suite under another module name, because this test
    directory has its own ``test_gates`` module and pytester runs in this process."""
    copy_suites(pytester.path, "test_agentic.py")
    pytester.makepyfile(test_gate_suite=(SUITES / "test_gates.py").read_text(encoding="utf-8"))


@pytest.fixture
def suites(pytester: pytest.Pytester) -> pytest.Pytester:
    add_suites(pytester)
    return pytester


def test_golden_replay_of_asiai_m5_results(suites):
    result = suites.runpytest("-m", "agentic", f"--asiai-replay={DATA}", "--asiai-json=r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = report_of(suites.path / "r.json")
    cases = cases_by_id(report)
    assert set(cases) == set(EXPECTED)
    for case_id, expected in EXPECTED.items():
        outcomes = {name: g["outcome"] for name, g in cases[case_id]["results"]["gates"].items()}
        assert outcomes == {**expected, **dict.fromkeys(NOT_MEASURED, "not measured")}, case_id
        assert cases[case_id]["tier"] == "eliminated"
        assert cases[case_id]["case"]["machine_id"] == "m5-max-128gb"
        assert len(cases[case_id]["phases"]) == 8
    llama = cases[IDS["m5-llamacpp-27b-mtp.json"]]["results"]["gates"]["reuse"]
    assert llama["value"] == 0.0 and "cached fraction 0.000 ≤ 0" in llama["reason"]
    assert llama["details"]["per_phase"]["prefix-test-1"]["cached_tokens"] == [0]
    cut = cases[IDS["m5-mlxlm-27b-mtp.json"]]["results"]["gates"]["early_stop"]
    assert cut["value"] == 8 and cut["tier"] == "eliminated"
    tests = {t["name"]: t for c in report["cases"] for t in c["tests"]}
    reuse_test = tests[f"test_gate[{IDS['m5-llamacpp-27b-mtp.json']}-reuse]"]
    assert reuse_test["outcome"] == "failed" and "reuse: reported cached fraction 0.000" in reuse_test["message"]
    valid_test = tests[f"test_gate[{IDS['m5-llamacpp-27b-mtp.json']}-valid]"]
    assert (
        valid_test["outcome"] == "skipped"
        and "answer text not recorded in m5-llamacpp-27b-mtp.json" in (valid_test["message"])
    )
    result.stdout.fnmatch_lines(
        ["*asiai results*", "machine m5-max-128gb", "*Tier 4 — eliminated*", "*mlx-lm-qwen3.6-27b*early_stop 8*"]
    )
    # Phase tests report the recorded measurements: mlx-lm 27B's prefix-test-1 and -3 returned one
    # token without a first-token time, so they fail; no recording has restart-prefix.
    phase_outcomes = {name: t["outcome"] for name, t in tests.items() if name.startswith("test_phase[")}
    failed = {name for name, outcome in phase_outcomes.items() if outcome == "failed"}
    mlx = IDS["m5-mlxlm-27b-mtp.json"]
    assert failed == {f"test_phase[{mlx}-prefix-test-1]", f"test_phase[{mlx}-prefix-test-3]"}
    skipped = {name for name, outcome in phase_outcomes.items() if outcome == "skipped"}
    assert skipped <= {f"test_phase[{case_id}-restart-prefix]" for case_id in EXPECTED}  # never recorded
    recorded = cases[mlx]["phases"].keys()
    assert {name for name in phase_outcomes if name.startswith(f"test_phase[{mlx}-")} >= {
        f"test_phase[{mlx}-{p}]" for p in recorded
    }
    assert tests[f"test_phase[{mlx}-cold]"]["outcome"] == "passed"


USER_GATE = """
import pytest

def test_decode_floor(agentic):
    decode = agentic.phase("warm").decode_tok_s
    agentic.record_metric("warm_decode_tok_s", decode)
    assert decode >= 20, f"warm decode {decode:.1f} tok/s is below 20"

@pytest.mark.parametrize("budget_ms", [100, 200])
def test_warm_ttft_budget(agentic, budget_ms):
    assert agentic.phase("warm").ttft_ms <= budget_ms
"""


def test_user_gate_fails_on_a_replayed_case_and_lands_in_the_report(suites):
    suites.makepyfile(test_mine=USER_GATE)
    files = ",".join(str(DATA / n) for n in ("m5-llamacpp-27b-mtp.json", "m5-llamacpp-35b-mtp.json"))
    args = [f"--asiai-replay={p}" for p in files.split(",")]
    result = suites.runpytest("test_mine.py", "test_gate_suite.py", "-k", "mine or ttft", *args, "--asiai-json=r.json")
    result.assert_outcomes(passed=6, failed=2)
    cases = cases_by_id(report_of(suites.path / "r.json"))
    slow = cases[IDS["m5-llamacpp-27b-mtp.json"]]
    gate = slow["results"]["gates"]["test_decode_floor"]
    assert (gate["source"], gate["outcome"], gate["tier"]) == ("user", "fail", "eliminated")
    assert gate["metrics"]["warm_decode_tok_s"] == pytest.approx(17.2188, abs=1e-3)
    assert "warm decode 17.2 tok/s is below 20" in gate["reason"]
    assert slow["metrics"]["warm_decode_tok_s"] == gate["metrics"]["warm_decode_tok_s"]
    assert slow["results"]["gates"]["ttft"]["source"] == "built-in"  # next to the built-in gates
    assert {t["name"]: t["outcome"] for t in slow["tests"]}[f"test_decode_floor[{slow['id']}]"] == "failed"
    budgets = {k: v["outcome"] for k, v in slow["results"]["gates"].items() if k.startswith("test_warm_ttft")}
    assert budgets == {"test_warm_ttft_budget[100]": "fail", "test_warm_ttft_budget[200]": "pass"}
    assert slow["tier"] == "eliminated"
    fast = cases[IDS["m5-llamacpp-35b-mtp.json"]]
    assert fast["results"]["gates"]["test_decode_floor"]["outcome"] == "pass"
    assert fast["tier"] == "winner"
    result.stdout.fnmatch_lines(["*llamacpp-qwen3.6-27b*test_decode_floor*test_warm_ttft_budget[[]100[]]*"])


def test_bad_replay_file_is_a_one_line_usage_error(suites):
    (suites.path / "burst.json").write_text('{"schema_version": "burst-v2"}')
    result = suites.runpytest("--asiai-replay=burst.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: burst.json: not a recorded agentic result (burst-v2)")


def test_a_live_report_replays_to_the_same_verdicts(suites, scripted_engine):
    scripted_engine.behaviour = Behaviour(prefill_ms_per_token=0.02)
    toml = (
        f'profile = "smoke"\n[[engines]]\nname = "scripted"\nkind = "llamacpp"\n'
        f'base_url = "{scripted_engine.base_url}"\ndeadline_s = 20\n'
        '[[engines.models]]\nname = "m"\nthinking = "off"\n'
    )
    suites.makefile(".toml", engines=toml)
    suites.runpytest("-m", "agentic", "--asiai-json=live.json", "--asiai-gate=memory=100000")
    live = report_of(suites.path / "live.json")["cases"][0]
    requests = len(scripted_engine.requests)
    suites.runpytest(
        "-m", "gate", "--asiai-replay=live.json", "--asiai-json=replayed.json", "--asiai-gate=memory=100000"
    )
    assert len(scripted_engine.requests) == requests  # nothing was sent
    replayed = report_of(suites.path / "replayed.json")["cases"][0]
    assert replayed["id"] == live["id"]
    outcome = lambda c: {k: (g["outcome"], g["value"]) for k, g in c["results"]["gates"].items()}  # noqa: E731
    assert outcome(replayed) == outcome(live)
    assert outcome(live)["reuse"][0] == "pass" and outcome(live)["valid"] == ("pass", 100.0)
    assert outcome(live)["memory"][0] == "pass" and outcome(live)["thinking"] == ("pass", 0)
    assert replayed["phases"].keys() == live["phases"].keys()

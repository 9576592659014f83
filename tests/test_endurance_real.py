"""The endurance suite end to end on the real llama-server + SmolLM2-135M, smoke profile.

llama.cpp's Qwen2.5 chat template (same ChatML tokens as SmolLM2's, plus a tools block) makes the
server honour ``tools``. The 135M model derails early: that is the honest result. What this test
pins is that the suite runs every scenario to the end on a real engine, measures every turn, and that
each gate's verdict (and its test's outcome) agrees with the measurements in the report.
"""

from __future__ import annotations

import json

from real_engine import cache_dir, copy_suites, engines_toml

from pytest_asiai.endurance.gates import GATES
from pytest_asiai.endurance.suite import ENDURANCE_PROFILES

SMOKE = ENDURANCE_PROFILES["smoke"]
TEST_OUTCOME = {"pass": "passed", "fail": "failed", "not measured": "skipped"}


def test_endurance_on_real_llama_server(pytester):
    template = cache_dir() / "templates" / "Qwen-Qwen2.5-7B-Instruct.jinja"
    assert template.exists(), f"{template} is missing: run ./scripts/setup-engine first"
    pytester.makefile(".toml", engines=engines_toml(extra_args=("--chat-template-file", str(template))))
    copy_suites(pytester.path, "test_endurance.py")
    report_path = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("-m", "endurance", f"--asiai-json={report_path}", "-p", "no:cacheprovider")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    (case,) = report["cases"]
    runs = case["results"]["endurance"]
    assert set(runs) == {"straight", "interrupt", "malformed"}, result.stdout.str()

    straight = runs["straight"]
    assert straight["stop_reason"] is None
    turns = straight["turns"]
    assert len(turns) == SMOKE.turns and all(t["request"]["ok"] for t in turns)
    assert len(straight["curve"]["total_ms"]) == SMOKE.turns
    prompts = straight["curve"]["context_tokens"]
    assert prompts == sorted(prompts) and prompts[-1] + SMOKE.max_tokens <= 8192
    # /tokenize calibrates the first prompt; the engine's own counts keep the later ones on the plan.
    assert abs(prompts[0] - SMOKE.start_tokens) <= 0.15 * SMOKE.start_tokens
    assert abs(prompts[-1] - SMOKE.end_tokens) <= 0.15 * SMOKE.end_tokens
    assert straight["cache"]["cached_source"] == "usage.prompt_tokens_details.cached_tokens"
    assert straight["cache"]["prefix_reuse_median"] >= 0.9  # llama.cpp reuses the whole previous prompt

    info = runs["interrupt"]["interruption"]
    assert info["turn"] == SMOKE.interrupt_turn and info["cancel"]["status"] == 200
    assert info["cancel"]["mid_stream"] is True and info["engine_recovered"] is True
    assert info["resume_cached_ratio"] >= 0.9  # the cancelled request's prompt stayed in the slot

    events = runs["malformed"]["recovery"]["events"]
    assert SMOKE.malformed_turn in [e["turn"] for e in events]

    # Every gate's verdict agrees with its measurement and with its test's outcome.
    gates = case["results"]["gates"]
    outcomes = {t["name"].split("-")[-1].rstrip("]"): t["outcome"] for t in case["tests"] if "gate" in t["name"]}
    for name, spec in GATES.items():
        gate = gates[name]
        assert outcomes[name] == TEST_OUTCOME[gate["outcome"]], (name, gate)
        if name == "endurance_clean_pct":
            assert gate["value"] == straight["summary"]["clean_pct"]
            assert (gate["outcome"] == "pass") == (gate["value"] >= spec.default)
    any_failed = any(g["outcome"] == "fail" for g in gates.values())
    assert result.ret == (1 if any_failed else 0)

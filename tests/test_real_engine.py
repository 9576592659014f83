"""End to end on the real llama-server + SmolLM2, started and stopped by the plugin."""

from __future__ import annotations

import json

import psutil
from real_engine import copy_suites, engines_toml


def test_agentic_on_real_llama_server(pytester):
    pytester.makefile(".toml", engines=engines_toml())
    copy_suites(pytester.path, "test_agentic.py")
    report_path = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("-m", "agentic", f"--asiai-json={report_path}", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*asiai results*", "*llamacpp-smollm2-135m-mtp_off*"])
    report = json.loads(report_path.read_text())
    (case,) = report["cases"]
    assert case["engine"]["version"] == "b11434"
    assert case["engine"]["managed"] is True
    cold = case["phases"]["cold"]["runs"][0]
    warm = case["phases"]["warm"]["runs"][0]
    assert cold["ok"] and warm["ok"]
    assert warm["cached_source"] == "usage.prompt_tokens_details.cached_tokens"
    assert warm["cached_tokens"] >= 0.9 * warm["prompt_tokens"]
    assert cold["cached_tokens"] < 0.05 * cold["prompt_tokens"]
    assert warm["ttft_ms"] < cold["ttft_ms"] / 3
    assert warm["timings"]["cache_n"] == warm["cached_tokens"]
    assert warm["completion_tokens"] == warm["max_tokens"] or warm["finish_reason"] == "stop"
    # The engine was stopped at the end of the session.
    pid = case["engine"]["pid"]
    assert pid is None or not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

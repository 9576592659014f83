"""End to end on the real llama-server + SmolLM2, started, restarted and stopped by the plugin.

One run of the whole agentic protocol in the smoke profile with ``--asiai-runs 3`` (about two
minutes on 2 quiet cores): every phase test passes and every phase meets the cache state it was
designed for, on the real engine's own token counts and timings. Timing checks are ratios with
wide margins (a cached prefix is 5-10x faster here, the checks ask for 2-3x).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import psutil
import pytest
from real_engine import copy_suites, engines_toml

from pytest_asiai.agentic.protocol import PHASE_NAMES, PROFILES

SMOKE = PROFILES["smoke"]
RUNS = 3
#: About two minutes on 2 quiet cores; a machine busy with other engines can take ten times longer.
TIMEOUT_S = 3600


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Run the agentic suite once for the module (in a subprocess, as a user would); return its case."""
    path = tmp_path_factory.mktemp("real")
    (path / "engines.toml").write_text(engines_toml(), encoding="utf-8")
    copy_suites(path, "test_agentic.py")
    report_path = path / "report.json"
    args = [sys.executable, "-m", "pytest", "-m", "agentic", "-p", "no:cacheprovider", "-q"]
    args += [f"--asiai-json={report_path}", f"--asiai-runs={RUNS}"]
    proc = subprocess.Popen(args, cwd=path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # pytest stops the engine it manages on the way out
        out, _ = proc.communicate(timeout=120)
        pytest.fail(f"the agentic run took over {TIMEOUT_S} s (a loaded machine?):\n{out[-4000:]}")
    assert proc.returncode == 0, out[-8000:]
    assert f"{len(PHASE_NAMES)} passed" in out, out[-3000:]
    (case,) = json.loads(report_path.read_text())["cases"]
    return case


def runs(case, name):
    phase = case["phases"][name]
    assert [r["repeat"] for r in phase["runs"]] == list(range(RUNS)), name
    assert all(r["ok"] for r in phase["runs"]), phase["runs"]
    return phase["runs"]


def test_every_phase_ran_on_the_managed_engine(report):
    assert list(report["phases"]) == list(PHASE_NAMES)
    assert [t["outcome"] for t in report["tests"]] == ["passed"] * len(PHASE_NAMES)
    assert report["engine"]["version"] == "b11434" and report["engine"]["managed"] is True
    calibration = report["results"]["protocol"]["calibration"]
    assert calibration["method"] == "tokenize"
    assert (calibration["context"], calibration["context_source"]) == (8192, "/props default_generation_settings.n_ctx")
    # The engine was stopped at the end of the session.
    pid = report["engine"]["pid"]
    assert pid is None or not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_every_repeat_is_truly_cold(report):
    for cold, warm in zip(runs(report, "cold"), runs(report, "warm"), strict=True):
        assert cold["cached_tokens"] == 0 and cold["timings"]["prompt_n"] == cold["prompt_tokens"]
        assert cold["cold_method"].startswith("salt+request") and cold["sent"]["cache_prompt"] is False
        assert warm["ttft_ms"] < cold["ttft_ms"] / 3
        assert warm["cached_source"] == "usage.prompt_tokens_details.cached_tokens"
        assert warm["cached_tokens"] == warm["prompt_tokens"] - 1 == warm["timings"]["cache_n"]
    assert len({r["prompt"]["salt"] for r in runs(report, "cold")}) == RUNS
    assert runs(report, "cold")[0]["cold_method"] == "salt+request+restart"  # a freshly launched engine
    stats = report["phases"]["cold"]["stats"]["ttft_ms"]
    assert stats["n"] == RUNS and stats["cv"] is not None


def test_prefix_tests_hit_the_system_prompt(report):
    colds = runs(report, "cold")
    for name in ("prefix-test-1", "prefix-test-2", "prefix-test-3"):
        for run, cold in zip(runs(report, name), colds, strict=True):
            assert run["cached_tokens"] > 0.6 * run["prompt_tokens"], name
            assert run["ttft_ms"] < cold["ttft_ms"] / 2, name


def test_cold_prefix_is_a_full_miss(report):
    for run, pt3 in zip(runs(report, "cold-prefix"), runs(report, "prefix-test-3"), strict=True):
        assert run["cached_tokens"] <= 0.02 * run["prompt_tokens"]
        assert run["ttft_ms"] > 1.5 * pt3["ttft_ms"]  # ~5x new tokens; 1.5x leaves room for a busy machine


def test_long_phases_are_sized_and_hit_at_long_context(report):
    for long, again in zip(runs(report, "long-context"), runs(report, "long-prefix"), strict=True):
        assert long["prompt_tokens"] == pytest.approx(SMOKE.long_tokens, rel=0.05)
        assert again["cached_tokens"] == again["prompt_tokens"] - 1
        assert again["ttft_ms"] < long["ttft_ms"] / 3
    for cold in runs(report, "cold"):
        assert cold["prompt_tokens"] == pytest.approx(SMOKE.system_tokens + SMOKE.user_tokens, rel=0.05)


def test_restart_prefix_shows_llama_cpp_keeps_no_cache_across_restarts(report):
    for restart, cold in zip(runs(report, "restart-prefix"), runs(report, "cold"), strict=True):
        assert restart["prompt"] == cold["prompt"]  # the identical request
        assert restart["cached_tokens"] == 0
        assert restart["ttft_ms"] > cold["ttft_ms"] / 2


def test_client_decode_rate_agrees_with_the_engines_own(report):
    """Same interval, two clocks: the client's rate is llama.cpp's ``predicted_per_second`` to a few percent
    (the spread is arrival jitter over spans of one to three seconds; benchmarks/client_vs_engine.py)."""
    for name, phase in report["phases"].items():
        for run in phase["runs"]:
            client, engine = run["metrics"]["decode_tok_s"], run["timings"]["predicted_per_second"]
            assert client == pytest.approx(engine, rel=0.03), (name, run["repeat"], run["finish_reason"])

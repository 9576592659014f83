"""Every gate on the real llama-server + SmolLM2 (one pytest run, two managed cases).

``llamacpp`` runs with ``--parallel 1``: every prefix test lands on the one slot holding the system
prompt, so the reuse gate passes from the reported cached fraction. ``llamacpp-nocache`` forces
``cache_prompt: false`` on every request (engines.toml ``request``): nothing is reused, and the gate
fails on a reported fraction of 0. Both ask thinking off, and a memory threshold is given, so every
gate has an input and passes or fails for a stated reason. The long and restart phases are
deselected to keep the run short (six requests per case); the gates judge the phases of the run.
"""

from __future__ import annotations

import json

import psutil
from real_engine import copy_suites, engines_toml

GATES = {"valid", "ttft", "reuse", "swap", "early_stop", "solo", "duplicates", "thinking", "memory"}


def test_every_gate_on_the_real_engine(pytester):
    thinking_off = 'thinking = "off"'
    cached = engines_toml(name="llamacpp", parallel=1, model_block=thinking_off)
    uncached = engines_toml(
        name="llamacpp-nocache", request="request = { cache_prompt = false }", model_block=thinking_off
    )
    pytester.makefile(".toml", engines=cached + uncached.split("\n", 1)[1])
    copy_suites(pytester.path, "test_agentic.py", "test_gates.py")
    report_path = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "-m", "agentic", "-k", "not long and not restart", "--asiai-gate=memory=4096", f"--asiai-json={report_path}",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*asiai results*", "machine *", "*llamacpp-smollm2-135m-mtp_off*"])
    cases = {c["id"]: c for c in json.loads(report_path.read_text())["cases"]}
    for case in cases.values():
        gates = case["results"]["gates"]
        assert set(gates) == GATES
        for name, gate in gates.items():
            assert gate["outcome"] in ("pass", "fail"), (case["id"], name, gate["outcome"], gate["reason"])
            assert gate["reason"] and gate["threshold_source"], (case["id"], name)
        memory = gates["memory"]
        assert 50 < memory["value"] < 4096 and case["engine"]["pid"] in memory["details"]["pids"]
        assert case["results"]["probes"]["swap"]["samples"] >= 2
        assert gates["thinking"]["outcome"] == "pass"  # SmolLM2 never reasons
        assert gates["valid"]["details"]["requests"] == 6  # cold, warm, prefix-test-1..3, cold-prefix
    reuse = cases["llamacpp-smollm2-135m-mtp_off"]["results"]["gates"]["reuse"]
    assert reuse["outcome"] == "pass" and reuse["details"]["verdict_source"] == "reported", reuse["reason"]
    assert reuse["value"] > 0.5 and reuse["details"]["ttft_ratio"] < 1.0
    nocache = cases["llamacpp-nocache-smollm2-135m-mtp_off"]["results"]["gates"]["reuse"]
    assert nocache["outcome"] == "fail" and nocache["value"] == 0.0, nocache["reason"]
    assert "reported cached fraction 0.000 ≤ 0" in nocache["reason"]
    # Both engines were stopped at the end of the session.
    for case in cases.values():
        pid = case["engine"]["pid"]
        assert pid is None or not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

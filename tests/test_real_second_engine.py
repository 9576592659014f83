"""The second real engine: llama-cpp-python 0.3.36's server, which reports differently from llama-server.

It streams no usage chunk (``include_usage`` is ignored), so prompt, completion and cached tokens are
all unreported; it still reuses the prompt prefix, which only the TTFT ratio can show. engines.toml
leaves ``kind`` out: detection names the family at engine start and the report records it.
``./scripts/test`` runs ``./scripts/setup-llamacpp-python`` first; a missing venv fails with that
instruction instead of being skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from real_engine import cache_dir, copy_suites, model_path

from pytest_asiai.agentic.protocol import PHASE_NAMES

#: asiai's TTFT proxy (docs/asiai-protocol.md §3.1): a prefix TTFT below cold/5 means "reused".
TTFT_REUSE_RATIO = 5


def llamacpp_python() -> Path:
    """The dedicated venv's Python, made by scripts/setup-llamacpp-python."""
    python = cache_dir() / "venvs" / "llama-cpp-python" / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run ./scripts/setup-llamacpp-python first")
    return python


def second_engine_toml(*, kind: str | None = None, ctx: int = 8192) -> str:
    """An engines.toml with one managed llama-cpp-python case (profile smoke), kind left to detection."""
    command = [
        str(llamacpp_python()), "-m", "llama_cpp.server", "--model", "{model_path}", "--model_alias", "{model_id}",
        "--host", "{host}", "--port", "{port}", "--n_ctx", str(ctx), "--n_threads", "2",
        "--interrupt_requests", "False",
    ]  # fmt: skip
    kind_line = f'kind = "{kind}"\n' if kind else ""
    return (
        f'profile = "smoke"\n[[engines]]\nname = "llamacpp-python"\n{kind_line}deadline_s = 600\n'
        f"[engines.managed]\ncommand = {json.dumps(command)}\nstartup_timeout_s = 120\n"
        f'[[engines.models]]\nname = "smollm2-135m"\npath = "{model_path()}"\n'
    )


def test_smoke_protocol_on_llama_cpp_python(pytester):
    pytester.makefile(".toml", engines=second_engine_toml())
    copy_suites(pytester.path, "test_agentic.py", "test_gates.py")
    report_path = pytester.path / "report.json"
    select = "test_phase or (test_gate and reuse)"
    result = pytester.runpytest_subprocess(
        "-m", "agentic", "-k", select, f"--asiai-json={report_path}", "-p", "no:cacheprovider"
    )
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=len(PHASE_NAMES) + 1)  # the whole smoke protocol, then the reuse gate
    (case,) = json.loads(report_path.read_text())["cases"]
    engine = case["engine"]
    assert (engine["kind"], engine["detected"], engine["version"]) == ("llamacpp_python", True, "0.3.36")
    caps = engine["capabilities"]
    assert caps["health"] == "/v1/models" and caps["slots"] is False and caps["metrics"] is False
    assert list(case["phases"]) == list(PHASE_NAMES)
    first = {name: phase["runs"][0] for name, phase in case["phases"].items()}
    for run in first.values():  # nothing reported is recorded as null, never as 0
        assert run["ok"], run
        assert run["cached_tokens"] is None and run["cached_source"] is None
        assert run["completion_tokens"] is None and run["prompt_tokens"] is None
        assert run["timings"] is None and run["chunks"] > 1
    cold = first["cold"]["ttft_ms"]
    # Reuse is real but unreported: only the TTFT ratio shows it, and the reuse gate says so.
    assert first["warm"]["ttft_ms"] * TTFT_REUSE_RATIO < cold, (cold, first["warm"]["ttft_ms"])
    for name in ("prefix-test-1", "prefix-test-2", "prefix-test-3"):  # the new user message is prefilled
        assert first[name]["ttft_ms"] * 2 < cold, (name, cold, first[name]["ttft_ms"])
    assert first["cold-prefix"]["ttft_ms"] > 2 * first["prefix-test-3"]["ttft_ms"], "a new system prompt is a miss"
    assert first["long-prefix"]["ttft_ms"] * 3 < first["long-context"]["ttft_ms"], "the long request hits"
    assert first["restart-prefix"]["ttft_ms"] > cold / 2, "no cache survives a restart"
    reuse = case["results"]["gates"]["reuse"]
    assert reuse["outcome"] == "pass" and reuse["unit"] == "ratio", reuse["reason"]
    assert reuse["details"]["verdict_source"] == "ttft_ratio" and reuse["details"]["fraction"] is None
    assert reuse["details"]["effective_but_unreported"] is True

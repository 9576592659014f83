"""The thinking ablation (three cells over the stress load) and the thinking probes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai.config.matrix import Case
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.toolcall import ablation
from pytest_asiai.wire.client import StreamingClient

SUITE = (Path(__file__).parent.parent / "suites" / "test_toolcall.py").read_text(encoding="utf-8")
WRITE = {"name": "write_file", "arguments": json.dumps({"path": "a.py", "content": "x"})}


def handle(base_url: str = "http://127.0.0.1:9", **case) -> EngineHandle:
    spec = Case(engine="e", model="m", mtp="off", kind="llamacpp", model_id="m", base_url=base_url, **case)
    return EngineHandle(spec, EngineManager(Path("/nonexistent")), lambda h: None)


@pytest.fixture
def client(scripted_engine: ScriptedEngine):
    with StreamingClient(scripted_engine.base_url) as c:
        yield c


def kwargs_of(body) -> dict:
    return body.get("chat_template_kwargs") or {}


# ------------------------------------------------------------------------------------------ cells


def test_each_cell_sends_its_switches_over_the_case_fields():
    h = handle(request={"chat_template_kwargs": {"custom": 1, "enable_thinking": True}, "top_k": 20})
    off, keep, drop = (ablation.cell(n).fields(h) for n in ablation.CELL_NAMES)
    assert off == {"temperature": 0.0, "top_k": 20, "chat_template_kwargs": {"custom": 1, "enable_thinking": False}}
    assert keep["chat_template_kwargs"] == {"custom": 1, "enable_thinking": True, "preserve_thinking": True}
    assert drop["chat_template_kwargs"] == {"custom": 1, "enable_thinking": True, "preserve_thinking": False}
    with pytest.raises(KeyError, match="unknown thinking cell 'x'"):
        ablation.cell("x")


def test_reasoning_is_replayed_in_the_history_of_thinking_cells(scripted_engine, client):
    scripted_engine.behaviour = Behaviour(tool_calls=[WRITE], reasoning_tokens=4)
    h = handle(scripted_engine.base_url)
    for name in ablation.CELL_NAMES:
        scripted_engine.requests.clear()
        turns = ablation.run_cell(client, h, ablation.cell(name), max_tokens=64, turns=3)
        assert len(turns) == 3
        last = scripted_engine.requests[-1]
        replies = [m for m in last["messages"] if m["role"] == "assistant" and m.get("tool_calls")][-2:]
        thinking = name != "enable-off"
        assert kwargs_of(last)["enable_thinking"] is thinking
        assert ("preserve_thinking" in kwargs_of(last)) is thinking
        assert all(("reasoning_content" in m) is thinking for m in replies), name
        assert all(t.record.reasoning_chars > 0 for t in turns) is thinking  # the engine honours thinking off


def fails_once_reasoning_accumulates(body):
    """The seed panel's engine: thinking on without preserve breaks once reasoning is in the history."""
    kwargs = kwargs_of(body)
    carried = any("reasoning_content" in m for m in body["messages"])
    if kwargs.get("enable_thinking") and kwargs.get("preserve_thinking") is False and carried:
        return Behaviour(http_status=500)
    return None


def test_http_errors_by_turn_and_the_cell_summary(scripted_engine, client):
    scripted_engine.behaviour = Behaviour(tool_calls=[WRITE], reasoning_tokens=5)
    scripted_engine.behaviour_for = fails_once_reasoning_accumulates
    h = handle(scripted_engine.base_url)
    cells = {}
    for name in ablation.CELL_NAMES:
        setting = ablation.cell(name)
        cells[name] = ablation.cell_summary(setting, ablation.run_cell(client, h, setting, max_tokens=64, turns=4))
    off, keep, drop = (cells[n] for n in ablation.CELL_NAMES)
    assert drop["http_error_turns"] == [1, 2, 3] and drop["failed_turns"] == [1, 2, 3]
    assert drop["pct_clean"] == 25.0  # turn 0 is clean (nothing replayed yet), then HTTP 500: the seed's 1 of 9
    assert keep["http_error_turns"] == [] and off["http_error_turns"] == []
    assert off["reasoning_chars_total"] == 0 and keep["reasoning_chars_total"] > 0
    assert keep["reasoning_chars_mean"] == keep["reasoning_chars_total"] / 4
    assert keep["ctx_growth"] > 0 and off["ctx_growth"] > 0  # (the scripted tokenizer ignores replayed reasoning)
    assert keep["ctx_growth"] == keep["ctx_tokens_last_turn"] - keep["ctx_tokens_first_turn"]
    assert drop["total_ms_mean"] is not None and drop["completion_tokens_mean"] == keep["completion_tokens_mean"]
    assert (keep["cell"], keep["load"], keep["preserve_thinking"], keep["reasoning_in_history"]) == (
        "enable-on-preserve-on",
        "stress",
        True,
        True,
    )
    assert len(keep["per_turn"]) == 4 and keep["per_turn"][0]["reasoning_chars"] > 0


def test_a_cell_whose_every_request_failed_has_no_volume(scripted_engine, client):
    scripted_engine.behaviour = Behaviour(http_status=500)
    setting = ablation.cell("enable-off")
    summary = ablation.cell_summary(
        setting, ablation.run_cell(client, handle(scripted_engine.base_url), setting, max_tokens=8, turns=2)
    )
    assert summary["failed_turns"] == [0, 1] and summary["turns_scored"] == 0
    assert summary["reasoning_chars_total"] is None and summary["total_ms_mean"] is None
    assert summary["ctx_growth"] is None and summary["empty_object_bug"] is None


# ----------------------------------------------------------------------------------------- probes


def run_probe(engine: ScriptedEngine, client, name: str, **behaviour):
    engine.behaviour = Behaviour(**behaviour)
    return ablation.probe(client, handle(engine.base_url), name, max_tokens=16)


def test_thinking_off_honoured(scripted_engine, client):
    result = run_probe(scripted_engine, client, "thinking_off_honoured", reasoning_tokens=4)
    assert result.passed is True and result.reason == "no reasoning with thinking off"
    body = scripted_engine.requests[-1]
    assert kwargs_of(body) == {"enable_thinking": False} and "tools" not in body
    assert body["messages"] == [{"role": "user", "content": ablation.PROBE_PROMPT}]


def test_thinking_off_ignored(scripted_engine, client):
    result = run_probe(scripted_engine, client, "thinking_off_honoured", reasoning_tokens=4, honour_thinking_off=False)
    assert result.passed is False and "thinking off was ignored" in result.reason
    assert result.to_dict()["reasoning_chars"] == result.record.reasoning_chars > 0


def test_inline_thinking_with_thinking_off_is_not_honoured(scripted_engine, client):
    result = run_probe(scripted_engine, client, "thinking_off_honoured", content_text="<think> hmm </think> Answer.")
    assert result.passed is False and result.reason == "thinking off was ignored: inline <think> content in the answer"


def test_no_think_leak(scripted_engine, client):
    clean = run_probe(scripted_engine, client, "no_think_leak", reasoning_tokens=4)
    assert clean.passed is True and kwargs_of(scripted_engine.requests[-1]) == {"enable_thinking": True}
    leaked = run_probe(scripted_engine, client, "no_think_leak", content_text="</think> The answer.")
    assert leaked.passed is False and leaked.to_dict()["think_tag_in_content"] is True


def test_a_failed_probe_request_is_no_verdict(scripted_engine, client):
    result = run_probe(scripted_engine, client, "no_think_leak", error_in_stream_after_tokens=1)
    assert result.passed is None and result.reason == "request failed: stream_error: scripted stream error"
    with pytest.raises(KeyError, match="unknown probe"):
        ablation.probe(client, handle(scripted_engine.base_url), "nope", max_tokens=1)


# -------------------------------------------------------------------------------- through the suite


def test_ablation_gate_and_probes_in_the_report(pytester, scripted_engine):
    scripted_engine.behaviour = Behaviour(tool_calls=[WRITE], reasoning_tokens=3)
    scripted_engine.behaviour_for = fails_once_reasoning_accumulates
    engine = f'name = "scripted"\nkind = "llamacpp"\nbase_url = "{scripted_engine.base_url}"\ndeadline_s = 20\n'
    pytester.makefile(".toml", engines=f'profile = "smoke"\n[[engines]]\n{engine}[[engines.models]]\nname = "m"\n')
    pytester.makepyfile(test_agent_quality=SUITE)
    result = pytester.runpytest("-k", "ablation or probe", "--asiai-json=r.json")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        ["*thinking_ablation_errors[[]enable-on-preserve-off[]]: failed requests: 2 requests > 0*"]
    )
    results = json.loads((pytester.path / "r.json").read_text())["cases"][0]["results"]
    cells = results["toolcall"]["thinking_ablation"]["cells"]
    assert list(cells) == list(ablation.CELL_NAMES) and results["toolcall"]["thinking_ablation"]["load"] == "stress"
    assert cells["enable-on-preserve-off"]["http_error_turns"] == [1, 2]
    assert results["gates"]["thinking_ablation_errors[enable-on-preserve-off]"]["details"]["failed_turns"] == [1, 2]
    probes = results["toolcall"]["thinking_probes"]
    assert probes["thinking_off_honoured"]["passed"] is True and probes["no_think_leak"]["passed"] is True

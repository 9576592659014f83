"""Instruction following: the section verifier and the research-brief runner."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai.toolcall import instruct
from pytest_asiai.toolcall.core import Conversation
from pytest_asiai.wire.client import StreamingClient
from pytest_asiai.wire.records import RequestRecord, ToolCall

SUITE = (Path(__file__).parent.parent / "suites" / "test_toolcall.py").read_text(encoding="utf-8")
TASK = instruct.RESEARCH_BRIEF
SENTENCE = "The loader reads JSON without validation, so a typo in a key silently falls back to defaults."


def brief(*names: str, body: str = SENTENCE, style: str = "## {}") -> str:
    return "\n\n".join(f"{style.format(n)}\n{body}" for n in names)


def delivered(text: str) -> list[str]:
    return [c.name for c in instruct.check_sections(text, TASK.sections) if c.delivered]


# --------------------------------------------------------------------------------------- verifier


def test_every_section_delivered():
    text = "Here is the brief.\n\n" + brief(*TASK.sections)
    checks = instruct.check_sections(text, TASK.sections)
    assert [c.delivered for c in checks] == [True] * 5
    assert checks[0].words == len(SENTENCE.split())


def test_a_missing_section_is_not_delivered():
    checks = instruct.check_sections(brief("Summary", "Findings", "Risks", "Next steps"), TASK.sections)
    recommendation = checks[3]
    assert recommendation.name == "Recommendation" and not recommendation.present and not recommendation.delivered


def test_a_heading_without_substance_is_not_delivered():
    text = brief("Summary", "Findings", "Risks", "Next steps") + "\n\n## Recommendation\nUse it.\n"
    check = instruct.check_section(text, "Recommendation", TASK.sections)
    assert check.present and check.words == 2 and not check.delivered


def test_a_degenerate_section_is_not_delivered():
    loop = "the config the config " * 10
    check = instruct.check_section(
        brief(*TASK.sections[:4]) + f"\n\n## Next steps\n{loop}", "Next steps", TASK.sections
    )
    assert check.present and check.words == 40 and check.degenerate == "ngram_repetition" and not check.delivered


@pytest.mark.parametrize("style", ["# {}", "**{}**", "**{}:**", "{}:", "2. {}", "### {}"])
def test_heading_styles(style):
    assert delivered(brief(*TASK.sections, style=style)) == list(TASK.sections)


def test_inline_label_and_case_insensitive_names():
    text = "\n".join(f"{n.upper()}: {SENTENCE}" for n in TASK.sections)
    assert delivered(text) == list(TASK.sections)


def test_a_name_inside_prose_is_not_a_heading():
    text = f"A short summary of the risks: {SENTENCE}\nRisks are discussed in the findings below."
    assert not any(c.present for c in instruct.check_sections(text, TASK.sections))


def test_a_section_ends_at_the_next_heading():
    text = f"## Summary\nok.\n## Other\n{SENTENCE}\n## Findings\n{SENTENCE}"
    assert instruct.check_section(text, "Summary", TASK.sections).words == 1


def test_the_best_occurrence_counts():
    text = f"## Risks\n(see below)\n\n{brief(*TASK.sections)}"
    assert instruct.check_section(text, "Risks", TASK.sections).delivered


# ----------------------------------------------------------------------------------------- runner


class FakeClient:
    """Replies from a list of records (the HTTP path is tested elsewhere); keeps every body."""

    def __init__(self, *records: RequestRecord) -> None:
        self.replies: Iterator[RequestRecord] = iter(records)
        self.bodies: list[Mapping[str, Any]] = []

    def chat(self, body: Mapping[str, Any]) -> RequestRecord:
        self.bodies.append(json.loads(json.dumps(body)))
        return next(self.replies)


def reply(content: str = "", *calls: tuple[str, dict[str, Any]], status: int = 200, **fields: Any) -> RequestRecord:
    tool_calls = tuple(ToolCall(i, f"c{i}", n, json.dumps(a)) for i, (n, a) in enumerate(calls))
    finish = "tool_calls" if calls else "stop"
    return RequestRecord(
        0.0,
        status=status,
        content=content,
        content_chars=len(content),
        tool_calls=tool_calls,
        finish_reason=finish,
        **fields,
    )


def run(client: FakeClient, rounds: int = 8) -> instruct.BriefResult:
    conv = instruct.open_brief(client, model="m", task=TASK, fields={"temperature": 0.0})
    return instruct.run_brief(conv, TASK, max_tokens=64, rounds=rounds, thinking=True)


def test_tool_rounds_then_the_brief():
    client = FakeClient(
        reply("", ("search_code", {"pattern": "load_settings"}), ("search_code", {"pattern": "APP_TIMEOUT"})),
        reply(brief(*TASK.sections), ("write_file", {"path": "NOTES.md", "content": "risk"})),
        reply("Saved."),
    )
    result = run(client)
    out = result.to_dict()
    assert out["sections_delivered"] == 5 and out["pct_sections"] == 100.0 and out["requests"] == 3
    assert out["tool_calls"] == ["search_code", "search_code", "write_file"] and out["secondary_done"]
    results = [m["content"] for m in client.bodies[1]["messages"] if m["role"] == "tool"]
    assert results == list(TASK.search_results[:2])
    assert client.bodies[2]["messages"][-1] == {"role": "tool", "tool_call_id": "c0", "content": "wrote NOTES.md"}
    assert [t["function"]["name"] for t in client.bodies[0]["tools"]] == ["search_code", "write_file"]
    assert client.bodies[0]["messages"][0] == {"role": "system", "content": TASK.system}


def test_stopping_at_the_secondary_step_delivers_nothing():
    """The seed panel's thinking-off failure: the tool work is done, the brief never written."""
    client = FakeClient(
        reply("", ("search_code", {"pattern": "settings"})),
        reply("", ("write_file", {"path": "NOTES.md", "content": brief(*TASK.sections)})),
        reply("Done: the most important risk is saved in NOTES.md."),
    )
    out = run(client).to_dict()
    assert out["sections_delivered"] == 0 and out["pct_sections"] == 0.0 and out["secondary_done"]
    assert all(not s["present"] for s in out["sections"].values())
    assert "Summary" not in out["deliverable_head"]  # a brief written to a file is not delivered


def test_searches_past_the_canned_results_find_nothing_and_bad_calls_get_their_error():
    calls = [("search_code", {"pattern": str(i)}) for i in range(4)] + [("write_file", {"path": "x"})]
    client = FakeClient(reply("", *calls), reply("no brief"))
    run(client)
    results = [m["content"] for m in client.bodies[1]["messages"] if m["role"] == "tool"]
    assert results[:4] == [*TASK.search_results, "no further matches"]
    assert results[4].startswith("error: invalid arguments: $: 'content' is a required property")


def test_the_round_budget_ends_the_task():
    client = FakeClient(*[reply("", ("search_code", {"pattern": "x"})) for _ in range(3)])
    out = run(client, rounds=2).to_dict()
    assert out["requests"] == 2 and out["sections_delivered"] == 0


def test_a_failed_request_is_not_an_empty_deliverable():
    client = FakeClient(
        reply("", ("search_code", {"pattern": "x"})),
        RequestRecord(0.0, status=500, error="HTTP 500: boom", error_kind="http"),
    )
    out = run(client).to_dict()
    assert out["sections_delivered"] is None and out["pct_sections"] is None
    assert out["errors"] == [{"turn": 1, "status": 500, "kind": "http", "error": "HTTP 500: boom"}]


# ---------------------------------------------------------------------- on the scripted test engine


@pytest.mark.parametrize("thinking", [False, True])
def test_the_thinking_switch_reaches_the_engine(scripted_engine: ScriptedEngine, thinking):
    scripted_engine.behaviour = Behaviour(reasoning_tokens=3, content_text="no sections here")
    with StreamingClient(scripted_engine.base_url) as client:
        fields = {"chat_template_kwargs": {"enable_thinking": thinking}}
        conv: Conversation = instruct.open_brief(client, model="m", task=TASK, fields=fields)
        out = instruct.run_brief(conv, TASK, max_tokens=16, rounds=3, thinking=thinking).to_dict()
    assert scripted_engine.requests[0]["chat_template_kwargs"] == {"enable_thinking": thinking}
    assert (out["reasoning_chars"] > 0) is thinking and out["enable_thinking"] is thinking
    assert out["requests"] == 1 and out["sections_delivered"] == 0 and out["deliverable_head"].startswith("no sections")


def test_instruct_gate_reports_sections(pytester, scripted_engine):
    scripted_engine.behaviour = Behaviour(content_text="Summary: only one line.", completion_tokens=4)
    engine = f'name = "scripted"\nkind = "llamacpp"\nbase_url = "{scripted_engine.base_url}"\ndeadline_s = 20\n'
    pytester.makefile(".toml", engines=f'profile = "smoke"\n[[engines]]\n{engine}[[engines.models]]\nname = "m"\n')
    pytester.makepyfile(test_agent_quality=SUITE)
    result = pytester.runpytest("-k", "instruct", "--asiai-json=r.json", "--asiai-gate=instruct_sections=0")
    result.assert_outcomes(passed=2)
    results = json.loads((pytester.path / "r.json").read_text())["cases"][0]["results"]
    runs = results["toolcall"]["instruct"]["runs"]
    assert set(runs) == {"thinking_off", "thinking_on"} and results["toolcall"]["instruct"]["task"] == "research-brief"
    assert runs["thinking_off"]["sections"]["Summary"] == {
        "present": True,
        "words": 3,
        "degenerate": None,
        "delivered": False,
    }
    gate = results["gates"]["instruct_sections[thinking_on]"]
    assert (gate["value"], gate["threshold"], gate["threshold_source"]) == (0.0, 0.0, "command line")
    assert [r["chat_template_kwargs"]["enable_thinking"] for r in scripted_engine.requests] == [False, True]

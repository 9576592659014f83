"""Tool-call scoring, the multi-turn conversation runner, recovery and the tool-call gates.

Every scoring rule is checked on calls streamed by the scripted test engine and reassembled by the
real client, so a rule that breaks (or a reassembly that breaks it) fails here.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai.gates.thresholds import Threshold
from pytest_asiai.gates.verdict import Gate, GateResult, judge_value
from pytest_asiai.toolcall.core import Conversation, budget_for, merge_fields, run_scenario
from pytest_asiai.toolcall.gates import GATES
from pytest_asiai.toolcall.recovery import run_recovery
from pytest_asiai.toolcall.scoring import empty_paths, parse_arguments, schema_violations, score_call
from pytest_asiai.toolcall.summary import summarize
from pytest_asiai.toolcall.tools import BASIC, FEWSHOT, RECOVERY, STRESS, TOOL_SCHEMAS, TOOLS, Scenario, Turn
from pytest_asiai.wire.client import StreamingClient
from pytest_asiai.wire.records import RequestRecord, ToolCall

SUITE = (Path(__file__).parent.parent / "suites" / "test_toolcall.py").read_text(encoding="utf-8")
EDIT_OK = {"path": "a.py", "edits": [{"search": "x = 1", "replace": "x = 2"}]}


def call(name: str, args: object) -> dict[str, str]:
    """A scripted tool call; ``args`` as a dict (serialized) or as the raw argument text."""
    return {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}


@pytest.fixture
def client(scripted_engine: ScriptedEngine):
    with StreamingClient(scripted_engine.base_url) as c:
        yield c


def stream_calls(engine: ScriptedEngine, client: StreamingClient, *calls: dict[str, str], **behaviour) -> RequestRecord:
    """One streamed request with tools, answered by the scripted calls."""
    engine.behaviour = Behaviour(tool_calls=list(calls), **behaviour)
    body = {"model": "m", "messages": [{"role": "user", "content": "go"}], "tools": list(TOOLS), "max_tokens": 64}
    record = client.chat(body)
    assert record.ok, record.error
    return record


def scored(engine, client, expected: str, *calls, **behaviour):
    record = stream_calls(engine, client, *calls, **behaviour)
    return score_call(record.tool_calls[0] if record.tool_calls else None, record.finish_reason, expected)


# ------------------------------------------------------------------------------- scoring rules


def test_a_valid_call_is_clean(scripted_engine, client):
    score = scored(scripted_engine, client, "edit_file", call("edit_file", EDIT_OK))
    assert score.clean and score.emitted and score.json_valid and score.non_truncated
    assert score.correct_tool and score.schema_conform and not score.empty_object_bug
    assert score.args_chars == len(json.dumps(EDIT_OK)) and score.tool == "edit_file"


def test_no_call_is_not_emitted(scripted_engine, client):
    scripted_engine.behaviour = Behaviour(content_text="I would rather explain")
    record = client.chat({"model": "m", "messages": [{"role": "user", "content": "go"}], "max_tokens": 4})
    score = score_call(None, record.finish_reason, "search_code")
    assert not score.emitted and not score.clean and score.args_chars is None
    assert score.to_dict()["tool"] is None


def test_a_truncated_call_is_not_clean_even_when_its_json_parses(scripted_engine, client):
    score = scored(scripted_engine, client, "edit_file", call("edit_file", EDIT_OK), finish_reason="length")
    assert score.json_valid and score.schema_conform
    assert not score.non_truncated and not score.clean


def test_the_wrong_tool_is_not_clean(scripted_engine, client):
    score = scored(scripted_engine, client, "edit_file", call("write_file", {"path": "a", "content": "b"}))
    assert score.schema_conform  # valid for the tool it called
    assert not score.correct_tool and not score.clean


def test_a_schema_violation_is_found_by_jsonschema(scripted_engine, client):
    args = {"pattern": "x", "max_results": "ten", "globs": ["*.py", 3]}
    score = scored(scripted_engine, client, "search_code", call("search_code", args))
    assert score.json_valid and not score.schema_conform and not score.clean
    assert any(e.startswith("$.max_results:") for e in score.schema_errors)
    assert any(e.startswith("$.globs[1]:") for e in score.schema_errors)


def test_a_missing_required_key_violates_the_schema_without_being_the_empty_object_bug(scripted_engine, client):
    score = scored(scripted_engine, client, "edit_file", call("edit_file", {"path": "a.py"}))
    assert not score.schema_conform and not score.empty_object_bug
    assert score.schema_errors == ("$: 'edits' is a required property",)


@pytest.mark.parametrize(
    ("args", "paths"),
    [
        ({"path": "a.py", "edits": {}}, ("$.edits",)),  # the seed panel's collapse
        ({"path": "a.py", "edits": []}, ("$.edits",)),
        ({"path": "a.py", "edits": "[]"}, ("$.edits",)),
        ({"path": "a.py", "edits": None}, ("$.edits",)),
        ({"path": "a.py", "edits": [{}]}, ("$.edits[0]",)),
        ({}, ("$",)),
    ],
    ids=["object", "list", "string", "null", "empty-item", "all-args"],
)
def test_empty_edits_are_the_empty_object_bug(scripted_engine, client, args, paths):
    score = scored(scripted_engine, client, "edit_file", call("edit_file", args))
    assert score.json_valid and score.empty_object_bug and score.empty_paths == paths
    assert not score.clean


def test_the_empty_object_bug_is_dirty_even_where_the_schema_allows_it():
    loose = {"edit_file": {**TOOL_SCHEMAS["edit_file"], "properties": {"path": {}, "edits": {"type": "array"}}}}
    score = score_call(ToolCall(0, None, "edit_file", '{"path": "a", "edits": []}'), None, "edit_file", schemas=loose)
    assert score.schema_conform and score.empty_object_bug and not score.clean


def test_optional_empty_containers_are_not_the_bug():
    args = {"pattern": "x", "globs": []}
    assert empty_paths(args, TOOL_SCHEMAS["search_code"]) == ()
    assert empty_paths({}, TOOL_SCHEMAS["run_tests"]) == ()  # no required fields: {} is a valid call
    assert score_call(ToolCall(0, None, "run_tests", "{}"), "tool_calls", "run_tests").clean


@pytest.mark.parametrize(
    ("raw", "reason"),
    [('{"path": "a.py", "edits": [', "JSONDecodeError"), ("", "empty_arguments"), ("[1, 2]", "non_object_args:list")],
    ids=["cut", "empty", "array"],
)
def test_malformed_arguments_are_not_json_valid(scripted_engine, client, raw, reason):
    score = scored(scripted_engine, client, "edit_file", call("edit_file", raw))
    assert not score.json_valid and score.parse_error.startswith(reason)
    assert not score.schema_conform and not score.empty_object_bug and not score.clean


def test_arguments_split_across_many_chunks_are_reassembled(scripted_engine, client):
    args = {"path": "q.py", "edits": [{"search": 'say "hi" \\ é', "replace": "日本 \n ```"}] * 3}
    record = stream_calls(scripted_engine, client, call("edit_file", args), tool_args_piece=1)
    assert record.chunks > len(json.dumps(args))  # one fragment per character, plus the name
    assert json.loads(record.tool_calls[0].arguments) == args
    assert score_call(record.tool_calls[0], record.finish_reason, "edit_file").clean


def test_parallel_calls_score_the_first_one(scripted_engine, client):
    record = stream_calls(
        scripted_engine, client, call("search_code", {"pattern": "x"}), call("edit_file", {"path": "a", "edits": {}})
    )
    assert [c.name for c in record.tool_calls] == ["search_code", "edit_file"]
    assert score_call(record.tool_calls[0], record.finish_reason, "search_code").clean


def test_an_unknown_tool_has_no_schema_to_conform_to():
    score = score_call(ToolCall(0, None, "rm_rf", '{"path": "/"}'), "tool_calls", "write_file")
    assert score.json_valid and not score.schema_conform and score.schema_errors == ("$: unknown tool 'rm_rf'",)


def test_several_tools_may_be_expected():
    score = score_call(
        ToolCall(0, None, "write_file", '{"path": "a", "content": ""}'), None, ("edit_file", "write_file")
    )
    assert score.clean and score.expected_tool == "edit_file|write_file"


def test_booleans_are_not_integers():
    assert schema_violations({"pattern": "x", "max_results": True}, TOOL_SCHEMAS["search_code"])
    assert parse_arguments('{"a": 1}') == ({"a": 1}, None)


# ----------------------------------------------------------------------------------- conversation


def by_expected_tool(engine: ScriptedEngine, scenario: Scenario, args: dict[str, object] | None = None):
    """Answer each turn with a valid call of the tool that turn expects (its user message decides)."""
    valid = {
        "write_file": {"path": "a.py", "content": "x = 1\n"},
        "edit_file": EDIT_OK,
        "search_code": {"pattern": "x"},
        "run_tests": {"verbose": True},
        **(args or {}),
    }
    by_user = {t.user: t.expected_tool for t in scenario.turns}

    def behaviour(body):
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        tool = by_user.get(users[-1]) if users else None
        return Behaviour(tool_calls=[call(tool, valid[tool])]) if tool else None

    engine.behaviour_for = behaviour


def conversation(client, scenario=BASIC, **kwargs) -> Conversation:
    return Conversation(client, model="m", system=scenario.system, history=scenario.history, **kwargs)


def test_every_call_is_answered_and_the_context_grows(scripted_engine, client):
    by_expected_tool(scripted_engine, BASIC)
    turns = run_scenario(conversation(client), BASIC, max_tokens=64, turns=3)
    assert [t.clean for t in turns] == [True, True, True]
    first, second, third = scripted_engine.requests
    assert first["messages"][: 1 + len(FEWSHOT)] == [{"role": "system", "content": BASIC.system}, *FEWSHOT]
    assert first["tools"] == list(TOOLS) and first["max_tokens"] == 64
    assistant, result = second["messages"][-3:-1]
    assert assistant["tool_calls"][0]["function"]["name"] == "search_code"
    assert result == {
        "role": "tool",
        "tool_call_id": assistant["tool_calls"][0]["id"],
        "content": BASIC.turns[0].result,
    }
    assert second["messages"][-1] == {"role": "user", "content": BASIC.turns[1].user}
    prompts = [t.record.prompt_tokens for t in turns]
    assert prompts == sorted(prompts) and prompts[0] < prompts[-1]
    assert len(third["messages"]) == len(first["messages"]) + 6


def test_an_unusable_call_is_answered_with_its_error(scripted_engine, client):
    scripted_engine.behaviour = Behaviour(tool_calls=[call("edit_file", {"path": "a.py", "edits": {}})])
    conv = conversation(client)
    run_scenario(conv, BASIC, max_tokens=64, turns=1)
    assert conv.messages[-1]["role"] == "tool"
    assert conv.messages[-1]["content"].startswith("error: invalid arguments: $.edits: {} is not of type 'array'")


def test_a_call_that_is_not_json_is_replayed_as_text(scripted_engine, client):
    """llama.cpp refuses a history holding unparseable arguments: keep the model's text instead."""
    raw = '{"path": "a.py", "edits": [{"search": "x'
    scripted_engine.behaviour = Behaviour(tool_calls=[call("edit_file", raw), call("search_code", {"pattern": "x"})])
    conv = conversation(client)
    run_scenario(conv, BASIC, max_tokens=64, turns=2)
    reply, result, rejected = scripted_engine.requests[1]["messages"][-4:-1]
    assert reply["content"] == "<tool_call>" + json.dumps({"name": "edit_file", "arguments": raw}) + "</tool_call>"
    assert [c["function"]["name"] for c in reply["tool_calls"]] == ["search_code"]
    assert result == {"role": "tool", "tool_call_id": reply["tool_calls"][0]["id"], "content": BASIC.turns[0].result}
    assert rejected["role"] == "user" and rejected["content"].startswith("error: the arguments are not a JSON object")


def test_a_valid_call_of_another_tool_gets_a_neutral_result(scripted_engine, client):
    scripted_engine.behaviour = Behaviour(tool_calls=[call("run_tests", {})])
    conv = conversation(client)
    run_scenario(conv, BASIC, max_tokens=64, turns=1)
    assert conv.messages[-1]["content"] == "run_tests: done (no output)"


def test_parallel_calls_each_get_a_result(scripted_engine, client):
    scripted_engine.behaviour = Behaviour(tool_calls=[call("search_code", {"pattern": "a"}), call("run_tests", {})])
    conv = conversation(client)
    (turn,) = run_scenario(conv, BASIC, max_tokens=64, turns=1)
    assert turn.clean and turn.score.tool == "search_code"  # the first call is the one scored
    ids = [c["id"] for c in conv.messages[-3]["tool_calls"]]
    assert [(m["tool_call_id"], m["content"]) for m in conv.messages[-2:]] == [
        (ids[0], BASIC.turns[0].result),
        (ids[1], "run_tests: done (no output)"),
    ]


def test_reasoning_goes_into_the_history_only_when_asked(scripted_engine, client):
    scripted_engine.behaviour = Behaviour(tool_calls=[call("search_code", {"pattern": "x"})], reasoning_tokens=3)
    kept, dropped = conversation(client, keep_reasoning=True), conversation(client)
    for conv in (kept, dropped):
        run_scenario(conv, BASIC, max_tokens=64, turns=1)
    assert kept.messages[-2]["reasoning_content"] == kept.records[0].reasoning != ""
    assert "reasoning_content" not in dropped.messages[-2]


def test_fields_are_merged_and_the_conversation_owns_its_keys(scripted_engine, client):
    fields = {"temperature": 0.0, "max_tokens": 9999, "messages": [], "chat_template_kwargs": {"a": 1}}
    conv = conversation(client, fields=fields)
    conv.send("hello", max_tokens=8)
    body = scripted_engine.requests[0]
    assert body["max_tokens"] == 8 and body["messages"][-1]["content"] == "hello" and body["temperature"] == 0.0
    assert merge_fields({"k": {"a": 1, "b": 2}, "x": 1}, {"k": {"b": 3}}, {"y": 2}) == {
        "k": {"a": 1, "b": 3},
        "x": 1,
        "y": 2,
    }


def test_pending_calls_must_be_answered_one_by_one(scripted_engine, client):
    scripted_engine.behaviour = Behaviour(tool_calls=[call("search_code", {"pattern": "x"})])
    conv = conversation(client)
    conv.send("go", max_tokens=8)
    with pytest.raises(RuntimeError, match="1 tool call"):
        conv.send("next", max_tokens=8)
    with pytest.raises(ValueError, match="1 pending"):
        conv.answer(["a", "b"])
    conv.answer(["found"])
    assert conv.send(None, max_tokens=8).ok


def fail_request(engine: ScriptedEngine, when, behaviour: Behaviour) -> None:
    """Answer with ``behaviour`` the requests for which ``when(body)`` holds; the script otherwise."""
    script = engine.behaviour_for
    engine.behaviour_for = lambda body: behaviour if when(body) else script(body) if script else None


def test_a_failed_request_is_not_scored_and_counts_as_not_clean(scripted_engine, client):
    by_expected_tool(scripted_engine, BASIC)
    fail_request(scripted_engine, lambda body: len(scripted_engine.requests) == 1, Behaviour(http_status=500))
    turns = run_scenario(conversation(client), BASIC, max_tokens=64, turns=3)
    assert [t.score is None for t in turns] == [False, True, False]
    summary = summarize(turns)
    assert summary["turns"] == 3 and summary["turns_scored"] == 2 and summary["clean_turns"] == 2
    assert summary["pct_clean"] == 66.7 and summary["pct_emitted"] == 100.0
    assert summary["errors"] == [{"turn": 1, "status": 500, "kind": "http", "error": "HTTP 500: scripted status 500"}]
    assert summary["per_turn"][1]["score"] is None and summary["per_turn"][1]["clean"] is False


def test_summary_counts_the_empty_object_bug_on_edit_turns(scripted_engine, client):
    by_expected_tool(scripted_engine, STRESS, {"edit_file": {"path": "a.py", "edits": {}}})
    summary = summarize(run_scenario(conversation(client, STRESS), STRESS, max_tokens=64))
    assert summary["turns"] == 9 and summary["edit_turns"] == [1, 4, 5]
    assert summary["empty_object_bug"] == 3 and summary["edit_turns_empty_object_bug"] == 3
    assert summary["edit_turns_pct_clean"] == 0.0 and summary["pct_clean"] == 66.7
    assert summary["pct_correct_tool"] == 100.0 and summary["pct_schema_conform"] == 66.7
    assert summary["ctx_tokens_last_turn"] > summary["ctx_tokens_first_turn"]
    turn = summary["per_turn"][1]
    assert turn["edit"] and turn["score"]["empty_paths"] == ["$.edits"] and turn["calls"] == ["edit_file"]


def test_nothing_scored_is_none_not_zero():
    summary = summarize([])
    assert summary["pct_clean"] is None and summary["empty_object_bug"] is None
    assert summary["edit_turns_pct_clean"] is None and summary["ctx_tokens_first_turn"] is None


def test_scenarios_probe_edits_within_the_smoke_budget():
    smoke = budget_for("smoke").turns
    assert any(t.edit for t in BASIC.turns[:smoke]) and any(t.edit for t in STRESS.turns[:smoke])
    assert budget_for("no-such-profile") == budget_for("full")
    assert all(t.expected_tool in TOOL_SCHEMAS for s in (BASIC, STRESS) for t in s.turns)


# ---------------------------------------------------------------------------------------- recovery


RUN_LIMITS = call("run_tests", {"filter": "limits"})
CONTEXT_CALLS = {
    RECOVERY.context[0].user: call("search_code", {"pattern": "def load_settings"}),
    RECOVERY.context[1].user: call("write_file", {"path": "src/app/limits.py", "content": "x = 1"}),
}


def after_fix_prompt(body) -> bool:
    return any(m["role"] == "user" and RECOVERY.fix_prompt in m["content"] for m in body["messages"])


def recovery_script(engine: ScriptedEngine, fix: dict[str, str] | None, *, after_fix: int = 0):
    """Context turns call their tools and the trigger runs the tests; after "Fix it." the model sends
    ``fix`` (from observed request ``after_fix`` on), else repeats the failing run_tests call."""
    observed = []

    def behaviour(body):
        if not after_fix_prompt(body):
            last_user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
            return Behaviour(tool_calls=[CONTEXT_CALLS.get(last_user, RUN_LIMITS)])
        observed.append(body)
        return Behaviour(tool_calls=[fix if fix is not None and len(observed) > after_fix else RUN_LIMITS])

    engine.behaviour_for = behaviour
    return observed


def test_recovery_on_the_first_observed_turn(scripted_engine, client):
    edit = {"path": "tests/test_limits.py", "edits": [{"search": "app.limit ", "replace": "app.limits "}]}
    recovery_script(scripted_engine, call("edit_file", edit))
    result = run_recovery(conversation(client, RECOVERY), RECOVERY, max_tokens=64)
    assert result.recovered is True and result.turns_to_recover == 1 and not result.repeated_failing_call
    trigger_call, failure, fix = scripted_engine.requests[3]["messages"][-3:]
    assert failure == {"role": "tool", "tool_call_id": trigger_call["tool_calls"][0]["id"], "content": RECOVERY.failure}
    assert fix == {"role": "user", "content": "Fix it."}
    out = result.to_dict()
    assert [t["stage"] for t in out["per_turn"]] == ["context", "context", "trigger", "observe"]
    assert out["trigger_call"] == "run_tests" and out["finish_reasons"] == ["tool_calls"]


def test_recovery_within_n_turns_keeps_answering_the_failure(scripted_engine, client):
    fix = call("write_file", {"path": "tests/test_limits.py", "content": "from app.limits import Limits\n"})
    observed = recovery_script(scripted_engine, fix, after_fix=1)
    result = run_recovery(conversation(client, RECOVERY), RECOVERY, max_tokens=64)
    assert result.recovered is True and result.turns_to_recover == 2
    assert result.repeated_failing_call  # the first observed turn re-ran the same failing call
    rerun, still_failing = observed[1]["messages"][-2:]
    assert still_failing == {"role": "tool", "tool_call_id": rerun["tool_calls"][0]["id"], "content": RECOVERY.failure}


def test_no_recovery_within_the_observed_turns(scripted_engine, client):
    recovery_script(scripted_engine, None)
    result = run_recovery(conversation(client, RECOVERY), RECOVERY, max_tokens=64, observe=2)
    assert result.recovered is False and result.turns_to_recover is None and len(result.observed) == 2
    assert result.to_dict()["observe"] == 2
    assert result.repeated_failing_call and not result.looped


def test_a_failed_request_leaves_recovery_unmeasured(scripted_engine, client):
    recovery_script(scripted_engine, None)
    fail_request(scripted_engine, after_fix_prompt, Behaviour(http_status=503))
    result = run_recovery(conversation(client, RECOVERY), RECOVERY, max_tokens=64)
    assert result.recovered is None and len(result.observed) == 1
    assert result.to_dict()["errors"][0]["status"] == 503


def test_a_model_that_talks_in_circles_has_looped(scripted_engine, client):
    recovery_script(scripted_engine, None)
    fail_request(scripted_engine, after_fix_prompt, Behaviour(content_text="I will fix it now.", completion_tokens=40))
    result = run_recovery(conversation(client, RECOVERY), RECOVERY, max_tokens=64, observe=2)
    assert result.recovered is False and result.looped
    assert scripted_engine.requests[-1]["messages"][-1]["content"] == "Use the tools to fix the failing test run."


# -------------------------------------------------------------------------------------- the client


def test_a_conversation_survives_the_server_dropping_a_kept_alive_connection():
    """llama-server closes a kept-alive connection right after a response that outlasted its 5 s
    keep-alive timeout, so the next turn meets a dead connection: it is resent once, on a new one."""
    body = b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(body)
    server = socket.create_server(("127.0.0.1", 0))
    answered = []

    def serve():
        with server.accept()[0] as first:
            first.recv(65536)
            first.sendall(head + body)
            answered.append(1)
            first.recv(65536)  # the next turn arrives on the kept-alive connection: drop it unanswered
        with server.accept()[0] as second:
            second.recv(65536)
            second.sendall(head + body)
            answered.append(2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with StreamingClient(f"http://127.0.0.1:{server.getsockname()[1]}") as c:
        records = [c.chat({"messages": []}), c.chat({"messages": []})]
    thread.join(5)
    server.close()
    assert [(r.ok, r.content) for r in records] == [(True, "hi"), (True, "hi")], records[1].error
    assert answered == [1, 2]


# ------------------------------------------------------------------------------------------- gates


def judge(gate: Gate, key: str, value: float | None, threshold: float | bool | None, source: str, **how) -> GateResult:
    """The shared verdict on a tool-call gate, its threshold resolved as the session resolves it."""
    return judge_value(gate, value, Threshold.resolved(threshold, gate.default, source), key=key, **how)


def test_judge_compares_on_the_gate_side():
    clean, empty = GATES["toolcall_clean"], GATES["toolcall_empty_object"]
    assert judge(clean, "k", 90.0, 90.0, "default").outcome == "pass"
    failed = judge(clean, "k", 87.5, 90.0, "default")
    assert failed.outcome == "fail" and failed.reason == "clean tool-call turns: 87.5 % < 90 (default)"
    assert judge(empty, "k", 0, 0.0, "default").outcome == "pass"
    assert judge(empty, "k", 3, 0.0, "default").outcome == "fail"
    assert judge(empty, "k", 3, 5.0, "command line").outcome == "pass"


def test_judge_never_passes_what_was_not_measured():
    spec = GATES["toolcall_empty_object"]
    assert judge(spec, "k", None, 0.0, "default").outcome == "not measured"
    failed = judge(spec, "k", None, 0.0, "default", failures=["turn 0: http: HTTP 500"])
    assert failed.outcome == "fail" and "turn 0: http: HTTP 500" in failed.reason
    assert judge(spec, "k", 2, False, "command line").outcome == "disabled"
    assert judge(spec, "k", 2, True, "ini").threshold == 0.0  # true keeps the default
    assert judge(spec, "k", 2, None, "default").outcome == "no threshold"


# --------------------------------------------------------------------------------- the suite file


def engines_toml(base_url: str, gates: str = "") -> str:
    return (
        f'profile = "smoke"\n{gates}\n[[engines]]\nname = "scripted"\nkind = "llamacpp"\nbase_url = "{base_url}"\n'
        f'deadline_s = 20\n[[engines.models]]\nname = "m"\n'
    )


@pytest.fixture
def project(pytester: pytest.Pytester, scripted_engine: ScriptedEngine) -> pytest.Pytester:
    pytester.makefile(".toml", engines=engines_toml(scripted_engine.base_url))
    pytester.makepyfile(test_agent_quality=SUITE)
    return pytester


def test_suite_runs_scores_and_gates(project, scripted_engine):
    by_expected_tool(scripted_engine, BASIC)
    basic = scripted_engine.behaviour_for
    by_expected_tool(scripted_engine, STRESS, {"edit_file": {"path": "a.py", "edits": {}}})
    stress = scripted_engine.behaviour_for
    scripted_engine.behaviour_for = lambda body: basic(body) or stress(body)
    result = project.runpytest("-m", "toolcall", "-k", "toolcall_", "--asiai-json=r.json")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*toolcall_clean[[]stress[]]: clean tool-call turns: 66.7 % < 90 (default)*",
            "*toolcall_empty_object[[]stress[]]: empty-object bugs: 1 calls > 0 (default)*",
        ]
    )
    report = json.loads((project.path / "r.json").read_text())
    (case,) = report["cases"]
    basic, stress = case["results"]["toolcall"]["basic"], case["results"]["toolcall"]["stress"]
    assert basic["pct_clean"] == 100.0 and len(basic["per_turn"]) == 3 and basic["max_tokens"] == 128
    assert stress["per_turn"][1]["score"]["empty_object_bug"] is True
    gates = case["results"]["gates"]
    assert gates["toolcall_clean[basic]"]["outcome"] == "pass" and gates["toolcall_clean[basic]"]["value"] == 100.0
    assert gates["toolcall_empty_object[stress]"]["value"] == 1
    recovery = case["results"]["toolcall"]["recovery"]
    assert recovery["recovered"] is False and recovery["observe"] == 1 and len(recovery["per_turn"]) == 4
    assert len(scripted_engine.requests) == 6 + 4  # basic and stress once each, recovery 2 + 1 + 1 (smoke)


def test_thresholds_are_overridable_and_false_disables(project, scripted_engine):
    scripted_engine.behaviour = Behaviour(tool_calls=[call("search_code", {"pattern": "x"})])
    result = project.runpytest(
        "-rs",
        "-k",
        "toolcall_clean or toolcall_empty",
        "--asiai-gate=toolcall_clean=30",
        "--asiai-gate=toolcall_empty_object=false",
    )
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(
        ["*toolcall_empty_object*disabled (toolcall_empty_object=false from the command line)*"]
    )


def test_a_broken_engine_fails_every_gate_and_passes_none(project, scripted_engine):
    scripted_engine.behaviour = Behaviour(http_status=500)
    result = project.runpytest("-m", "toolcall", "--asiai-json=r.json")
    result.assert_outcomes(failed=12)
    result.stdout.fnmatch_lines(["*toolcall_empty_object*empty-object bugs not measured: turn 0: http: HTTP 500*"])
    report = json.loads((project.path / "r.json").read_text())
    results = report["cases"][0]["results"]
    assert results["toolcall"]["basic"]["pct_clean"] == 0.0 and results["toolcall"]["basic"]["turns_scored"] == 0
    assert results["gates"]["toolcall_empty_object[basic]"]["value"] is None
    assert results["toolcall"]["recovery"]["recovered"] is None


def test_suite_without_turns_is_not_measured(project, scripted_engine, monkeypatch):
    from pytest_asiai.toolcall import core as toolcall

    none = toolcall.Budget(turns=0, max_tokens=8, observe=1, brief_rounds=1, brief_max_tokens=8, probe_max_tokens=8)
    monkeypatch.setitem(toolcall.BUDGETS, "smoke", none)
    result = project.runpytest("-rs", "-k", "toolcall_clean")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*toolcall_clean[[]basic[]] not measured: no clean tool-call turns were measured*"])
    assert scripted_engine.requests == []


def test_turn_dataclass_round_trip():
    turn = Turn("u", "edit_file", "r")
    assert turn.edit and not Turn("u", "run_tests", "r").edit

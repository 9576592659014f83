"""The endurance runner and suite against the scripted test engine: every fault is detected at its turn.

Why: the scripted engine answers each turn as the test scripts it (a perfect agent, a derailment at a
given turn, a malformed call, a clobbering write, a dropped cache after a cancel), so each
measurement can be checked for the exact turn at which the event happens.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hostile_server import DROP, LAST_CHUNK, OK_HEAD, HostileServer, Step, chunked, sse_response
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai.endurance.gates import GATES, judge
from pytest_asiai.endurance.suite import (
    ENDURANCE_PROFILES,
    cancel_stream,
    measure,
    scenario_spec,
)
from pytest_asiai.endurance.trajectory import TrajectoryRunner, broken, score
from pytest_asiai.gates.thresholds import Threshold
from pytest_asiai.gates.verdict import FAIL, NOT_MEASURED, PASS
from pytest_asiai.wire.client import StreamingClient
from pytest_asiai.wire.records import ToolCall


def judged(name, result, threshold):
    """An endurance gate's verdict, its threshold resolved as the session resolves it."""
    return judge(name, result, Threshold.resolved(threshold, GATES[name].default, "default"))

SMOKE = ENDURANCE_PROFILES["smoke"]
SUITE = (Path(__file__).parent.parent / "suites" / "test_endurance.py").read_text(encoding="utf-8")

Script = Callable[[int, TrajectoryRunner], Behaviour | None]


@pytest.fixture
def client(scripted_engine: ScriptedEngine) -> Iterator[StreamingClient]:
    with StreamingClient(scripted_engine.base_url) as c:
        yield c


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as c:
        yield c


def call(name: str, args: dict | str) -> Behaviour:
    arguments = args if isinstance(args, str) else json.dumps(args)
    return Behaviour(tool_calls=[{"name": name, "arguments": arguments}])


def good(runner: TrajectoryRunner) -> Behaviour:
    """The perfect agent: the reference call of the step being asked."""
    name, args = runner.reference_call()
    return call(name, args)


def run(
    engine: ScriptedEngine,
    client: StreamingClient,
    http: httpx.Client,
    scenario: str = "straight",
    script: Script | None = None,
) -> dict:
    """Run a smoke scenario; ``script(turn, runner)`` answers a turn (None: the perfect agent)."""
    runner = TrajectoryRunner(
        scenario_spec(scenario, SMOKE),
        SMOKE,
        chat=client.chat,
        cancel=lambda body: cancel_stream(client, body, SMOKE.cancel_after_chunks),
        model="m",
        salt="test",
    )

    def behaviour_for(body: dict) -> Behaviour:
        turn = len(runner.turns) + 1
        behaviour = (script(turn, runner) if script is not None else None) or good(runner)
        if scenario == "interrupt":  # chunks 1 ms apart, so the cancel after the first one is mid-stream
            behaviour.decode_ms_per_token = 1.0
        return behaviour

    engine.behaviour_for = behaviour_for
    return measure(runner)


def curve(result: dict, name: str) -> list:
    return result["curve"][name]


# ------------------------------------------------------------------------------------- straight


def test_a_perfect_agent_is_clean_on_every_turn(scripted_engine, client, http):
    result = run(scripted_engine, client, http)
    summary = result["summary"]
    assert result["stop_reason"] is None and summary["turns"] == 10
    assert summary["clean_pct"] == 100.0 and summary["ok_pct"] == 100.0
    assert summary["first_failure_turn"] is None and summary["derailment_turn"] is None
    assert [t["step"]["kind"] for t in result["turns"]] == [
        "search", "read", "edit", "test", "search", "probe", "read", "edit", "test", "probe",
    ]  # fmt: skip
    persistence = result["persistence"]
    assert (persistence["probes"], persistence["probes_passed"], persistence["lost_edits"]) == (2, 2, 0)
    assert [p["edited_at"] for p in persistence["probe_details"]] == [3, 8]
    # The scripted cache keeps each turn's whole prompt: every turn reuses all of the previous one.
    prompts, cached = curve(result, "context_tokens"), curve(result, "cached_tokens")
    assert cached[0] == 0 and cached[1:] == prompts[:-1]
    assert curve(result, "prefix_reuse")[1:] == [1.0] * 9
    assert result["cache"]["prefix_reuse_median"] == 1.0
    assert len(result["windows"]) == 5 and result["windows"][0]["turns"] == [1, 2]


def test_context_grows_on_the_token_plan(scripted_engine, client, http):
    result = run(scripted_engine, client, http)
    prompts, targets = curve(result, "context_tokens"), curve(result, "context_target_tokens")
    assert targets[0] == SMOKE.start_tokens and targets[-1] == SMOKE.end_tokens
    assert prompts == sorted(prompts)
    # Calibrated after two turns, the prompt follows the plan within 5 %.
    assert all(abs(p - t) <= 0.05 * t for p, t in zip(prompts[2:], targets[2:], strict=True))
    assert result["chars_per_token_final"] != result["chars_per_token_initial"]


def test_derailment_is_detected_at_its_turn(scripted_engine, client, http):
    def derail_at_5(turn, runner):
        return call("run_tests", {"filter": "nothing"}) if turn >= 5 else None

    summary = run(scripted_engine, client, http, script=derail_at_5)["summary"]
    assert summary["first_invalid_turn"] == 5
    assert summary["first_failure_turn"] == 5
    assert summary["derailment_turn"] == 5  # turn 9 (a test step) is clean but not on task: filter "nothing"
    assert summary["clean_pct"] == 50.0 and summary["ok_pct"] == 40.0


def test_a_single_slip_is_a_failure_but_not_a_derailment(scripted_engine, client, http):
    summary = run(scripted_engine, client, http, script=lambda t, r: call("run_tests", {}) if t == 3 else None)[
        "summary"
    ]
    assert (summary["first_failure_turn"], summary["derailment_turn"], summary["clean_pct"]) == (3, None, 90.0)


# ------------------------------------------------------------------------------------ malformed


def test_a_malformed_call_and_its_repair_are_found_at_their_turns(scripted_engine, client, http):
    def malformed(turn, runner):
        return call("edit_file", '{"path": "src/x.py", "edits": [{"sea') if turn in (3, 4) else None

    result = run(scripted_engine, client, http, script=malformed)
    turns = result["turns"]
    assert [t["retry"] for t in turns[2:6]] == [False, True, True, False]
    assert turns[2]["step"] == turns[3]["step"] == turns[4]["step"]  # retried without a new instruction
    events = result["recovery"]["events"]
    assert [(e["turn"], e["recovered"], e["recovery_turn"], e["turns_to_recover"]) for e in events] == [
        (3, False, None, 2),
        (4, True, 5, 1),
    ]
    assert result["recovery"]["recovery_pct"] == 50.0
    # The broken call is replayed as the text the model produced, followed by the parse error.
    body = scripted_engine.requests[3]
    assert '{"path": "src/x.py", "edits": [{"sea' in body["messages"][-2]["content"]
    assert "not valid JSON" in body["messages"][-1]["content"]
    assert turns[2]["repo"]["digest"] == turns[1]["repo"]["digest"]  # nothing was executed


def test_the_injected_fault_is_repaired_by_the_next_call(scripted_engine, client, http):
    result = run(scripted_engine, client, http, scenario="malformed")
    turns = result["turns"]
    assert result["malformed_turn"] == 3 and turns[2]["events"] == ["injected_malformed"]
    assert turns[2]["score"]["clean"] is True and turns[2]["on_task"] is False  # the model's own call was fine
    (event,) = result["recovery"]["events"]
    assert (event["turn"], event["injected"], event["recovered"], event["recovery_turn"]) == (3, True, True, 4)
    assert turns[3]["retry"] and turns[3]["on_task"]
    history = scripted_engine.requests[3]["messages"]
    replayed = history[-2]["content"]
    assert replayed.startswith("<tool_call>") and "edit_file" in replayed
    assert result["persistence"]["lost_edits"] == 0


def test_a_call_breaking_the_schema_is_broken_too(scripted_engine, client, http):
    result = run(
        scripted_engine, client, http, script=lambda t, r: call("edit_file", {"path": "a"}) if t == 3 else None
    )
    third = result["turns"][2]
    assert third["score"]["json_valid"] and not third["score"]["schema_conform"]
    assert "edits" in third["env"]["message"]
    assert result["recovery"]["events"][0]["recovery_turn"] == 4
    assert scripted_engine.requests[3]["messages"][-1]["role"] == "tool"  # answered as a tool result


# ---------------------------------------------------------------------------------- persistence


def test_a_clobbered_edit_is_lost_at_the_turn_it_happens(scripted_engine, client, http):
    original: dict[str, str] = {}

    def clobber(turn, runner):
        if turn == 1:
            original.update(runner.repo.files)
        if turn == 5:  # the search step after the edit of turn 3: rewrite that file as it was
            path = runner.turns[2]["step"]["path"]
            return call("write_file", {"path": path, "content": original[path]})
        return None

    result = run(scripted_engine, client, http, script=clobber)
    persistence = result["persistence"]
    assert persistence["first_lost_turn"] == 5 and persistence["lost_edits"] == 1
    assert persistence["lost"][0]["turn"] == 3
    assert [t["repo"]["facts_held"] for t in result["turns"][:6]] == [0, 0, 1, 1, 0, 1]
    # The probe at turn 6 refers to the file as it is now (the perfect agent reads it): it passes,
    # and its own fact replaces the lost one.
    assert persistence["probe_failures"] == []


def test_a_stale_reference_fails_the_probe_at_its_turn(scripted_engine, client, http):
    def stale(turn, runner):
        if runner.step.kind != "probe" or turn != 6:
            return None
        constant = runner.repo.constant(runner.step.constant)
        old = constant.line(constant.initial)  # the line before the model's own edit of turn 3
        return call("edit_file", {"path": constant.path, "edits": [{"search": old, "replace": old + "  # x"}]})

    result = run(scripted_engine, client, http, script=stale)
    persistence = result["persistence"]
    assert persistence["probe_failures"] == [6] and persistence["stale_edit_turns"] == [6]
    assert persistence["probe_pct"] == 50.0
    assert result["turns"][5]["probe"]["stale"] is True


# ------------------------------------------------------------------------------------ interrupt


def test_a_cancelled_stream_is_resumed_with_its_cache(scripted_engine, client, http):
    result = run(scripted_engine, client, http, scenario="interrupt")
    info = result["interruption"]
    assert info["turn"] == 4 and info["cancel"]["mid_stream"] and info["cancel"]["chunks_seen"] == 1
    assert info["engine_recovered"] is True
    assert info["resume_cached_tokens"] == info["resume_prompt_tokens"] - 1
    assert result["turns"][3]["events"] == ["resumed_after_cancel"]
    assert len(scripted_engine.requests) == 7  # 6 turns and the cancelled request
    assert scripted_engine.requests[3]["messages"] == scripted_engine.requests[4]["messages"]


def test_a_cache_dropped_after_the_cancel_is_detected(scripted_engine, client, http):
    seen: Counter[int] = Counter()

    def drop(turn, runner):
        seen[turn] += 1
        if turn == 4 and seen[turn] == 2:  # the resume request
            scripted_engine.reset_cache()
        return None

    result = run(scripted_engine, client, http, scenario="interrupt", script=drop)
    info = result["interruption"]
    assert info["engine_recovered"] is True and info["resume_cached_tokens"] == 0
    assert info["resume_cached_ratio"] == 0.0 and info["cached_ratio_before"] > 0.5
    assert judged("endurance_resume_cached_ratio", result, 0.5).outcome == FAIL
    assert curve(result, "cached_ratio")[4] > 0.5  # the next turn reuses the rebuilt cache


def test_an_engine_failing_after_the_cancel_stops_the_trajectory(scripted_engine, client, http):
    seen: Counter[int] = Counter()

    def fail_resume(turn, runner):
        seen[turn] += 1
        return Behaviour(http_status=500) if turn == 4 and seen[turn] == 2 else None

    result = run(scripted_engine, client, http, scenario="interrupt", script=fail_resume)
    assert result["stop_reason"] == "turn 4: http: HTTP 500: scripted status 500"
    assert result["interruption"]["engine_recovered"] is False
    assert len(result["turns"]) == 4 and result["turns"][3]["ok"] is False
    resume = judged("endurance_resume_ok", result, True)
    outcome, reason = resume.outcome, resume.reason
    assert outcome == FAIL and "HTTP 500" in reason


STREAM = (
    b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
    b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
    b"data: [DONE]\n\n"
)


def test_a_stale_keep_alive_connection_is_retried_once():
    """The client resends a request lost on a dropped kept-alive connection (pytest_asiai/wire/client.py)
    and the turn reports it: the resend lives in the client only, not in the trajectory."""

    def script(n: int) -> list[Step]:
        return [DROP] if n == 1 else sse_response(STREAM)  # the second request dies unanswered

    with HostileServer(script, keep_alive=True) as server, StreamingClient(server.base_url) as client:
        runner = TrajectoryRunner(scenario_spec("straight", SMOKE), SMOKE, chat=client.chat, model="m")
        runner.run()
    first, second = (t["request"] for t in runner.turns[:2])
    assert (first["transport_retries"], second["transport_retries"]) == (0, 1)
    assert second["ok"] and second["status"] == 200 and len(server.requests) == len(runner.turns) + 1


def test_cancel_resends_a_request_lost_on_a_stale_connection():
    chunk = json.dumps({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "x"}}]}}]})
    stream: list[Step] = [OK_HEAD]
    for _ in range(3):
        stream += [chunked(f"data: {chunk}\n\n".encode()), 0.05]
    stream += [chunked(b"data: [DONE]\n\n"), LAST_CHUNK]

    def script(n: int) -> list[Step]:
        return sse_response(STREAM) if n == 0 else [DROP] if n == 1 else stream

    with HostileServer(script, keep_alive=True) as server, StreamingClient(server.base_url) as client:
        assert client.chat({"messages": []}).ok  # leaves a kept-alive connection that the server then drops
        out = cancel_stream(client, {"messages": []}, after_chunks=2)
    attempts = len(server.requests) - 1
    assert attempts == 2 and out["transport_retries"] == 1
    assert (out["status"], out["chunks_seen"], out["mid_stream"], out["done"]) == (200, 2, True, False)


# ---------------------------------------------------------------------------------- scoring/gates


@pytest.mark.parametrize(
    ("arguments", "finish", "flags"),
    [
        ('{"path": "a"}', "tool_calls", (True, True, True, False)),
        ('{"path": "a"}', "length", (False, True, True, False)),
        ('{"path": 3}', "tool_calls", (False, True, False, True)),
        ('{"path": "a"', "tool_calls", (False, False, False, True)),
        ("", "tool_calls", (False, False, False, True)),
    ],
)
def test_read_file_is_scored_by_the_tool_call_suite_with_its_schema(arguments, finish, flags):
    call_score = score(ToolCall(0, "c", "read_file", arguments), finish, "read_file")
    assert (call_score.clean, call_score.json_valid, call_score.schema_conform, broken(call_score)) == flags


def test_no_call_or_an_unknown_tool_is_broken():
    assert broken(score(None, "stop", "read_file"))
    unknown = score(ToolCall(0, None, "tool_response", "{}"), "tool_calls", "read_file")
    assert unknown.json_valid and broken(unknown) and "unknown tool" in unknown.schema_errors[0]


def fake_result(**summary) -> dict:
    base = {"turns": [{}], "stop_reason": None, "summary": {"turns": 10, "first_failure_turn": 3}, "interruption": None}
    base["summary"].update(summary)
    return base


@pytest.mark.parametrize(
    ("name", "result", "threshold", "outcome"),
    [
        ("endurance_clean_pct", fake_result(clean_pct=85.0), 80.0, PASS),
        ("endurance_clean_pct", fake_result(clean_pct=79.9), 80.0, FAIL),
        ("endurance_clean_pct", fake_result(clean_pct=10.0), False, "disabled"),
        ("endurance_derail_turn", fake_result(derailment_turn=None), 60.0, PASS),
        ("endurance_derail_turn", fake_result(derailment_turn=7), 60.0, FAIL),
        ("endurance_derail_turn", fake_result(derailment_turn=7), 5.0, PASS),
        ("endurance_lost_edits", {**fake_result(), "persistence": {"lost_edits": 1}}, 0.0, FAIL),
        ("endurance_lost_edits", {**fake_result(), "persistence": {"lost_edits": 0}}, 0.0, PASS),
        ("endurance_prefix_reuse", {**fake_result(), "cache": {"prefix_reuse_median": None}}, 0.5, NOT_MEASURED),
        ("endurance_recovery_pct", {**fake_result(), "recovery": {"recovery_pct": None}}, 50.0, NOT_MEASURED),
        ("endurance_resume_ok", fake_result(), True, NOT_MEASURED),
        ("endurance_clean_pct", {"turns": [], "stop_reason": "turn 1: connect"}, 80.0, NOT_MEASURED),
    ],
)
def test_gate_verdicts(name, result, threshold, outcome):
    assert judged(name, result, threshold).outcome == outcome


def test_profiles_match_the_seed_panel_and_stretch():
    full = ENDURANCE_PROFILES["full"]
    assert (full.turns, full.start_tokens, full.end_tokens) == (80, 10_000, 50_000)
    assert SMOKE.end_tokens + SMOKE.max_tokens < 8192  # SmolLM2's context with --ctx-size 8192
    short = full.with_turns(12)
    assert (short.turns, short.short_turns, short.interrupt_turn, short.malformed_turn) == (12, 12, 12, 12)
    assert full.with_turns(200).short_turns == full.short_turns
    with pytest.raises(KeyError, match="scenarios are straight, interrupt, malformed"):
        scenario_spec("sideways", full)


def test_every_gate_has_a_documented_default():
    assert {g: spec.default for g, spec in GATES.items()} == {
        "endurance_clean_pct": 80.0,
        "endurance_derail_turn": 60.0,
        "endurance_persistence_pct": 100.0,
        "endurance_lost_edits": 0.0,
        "endurance_prefix_reuse": 0.5,
        "endurance_recovery_pct": 50.0,
        "endurance_resume_ok": True,
        "endurance_resume_cached_ratio": 0.5,
    }


# ------------------------------------------------------------------------------- the suite (pytester)


def engines_toml(base_url: str) -> str:
    return (
        f'profile = "smoke"\n[[engines]]\nname = "scripted"\nkind = "llamacpp"\nbase_url = "{base_url}"\n'
        'deadline_s = 20\n[[engines.models]]\nname = "m"\n'
    )


@pytest.fixture
def project(pytester: pytest.Pytester, scripted_engine: ScriptedEngine) -> pytest.Pytester:
    """A user's project with the endurance suite; the engine always calls ``run_tests {"filter": ""}``."""
    pytester.makefile(".toml", engines=engines_toml(scripted_engine.base_url))
    pytester.makepyfile(test_endurance_suite=SUITE)  # not test_endurance: this module has that name
    scripted_engine.behaviour = call("run_tests", {"filter": ""})
    scripted_engine.behaviour.decode_ms_per_token = 1.0  # the interrupt scenario cancels mid-stream
    return pytester


def test_the_suite_reports_every_scenario_and_gate(project):
    result = project.runpytest("-m", "endurance", "--asiai-json=r.json", "-p", "no:randomly")
    result.assert_outcomes(passed=7, failed=4)
    result.stdout.fnmatch_lines(["*endurance_clean_pct: straight scenario: clean calls*20 % < 80*"])
    report = json.loads((project.path / "r.json").read_text(encoding="utf-8"))
    (case,) = report["cases"]
    straight = case["results"]["endurance"]["straight"]
    # Only the two test steps (turns 4 and 9) ask for run_tests: they are the clean turns.
    assert straight["curve"]["clean"] == [False, False, False, True, False, False, False, False, True, False]
    assert straight["summary"]["derailment_turn"] == 10 and straight["summary"]["first_failure_turn"] == 1
    assert set(case["results"]["endurance"]) == {"straight", "interrupt", "malformed"}
    gates = case["results"]["gates"]
    outcomes = {name: gates[name]["outcome"] for name in GATES}
    assert outcomes == {
        "endurance_clean_pct": "fail",
        "endurance_derail_turn": "fail",
        "endurance_persistence_pct": "fail",
        "endurance_lost_edits": "pass",
        "endurance_prefix_reuse": "pass",
        "endurance_recovery_pct": "fail",
        "endurance_resume_ok": "pass",
        "endurance_resume_cached_ratio": "pass",
    }
    assert (
        gates["endurance_clean_pct"]["value"] == 20.0 and gates["endurance_clean_pct"]["threshold_source"] == "default"
    )


def test_thresholds_and_turns_are_overridable(project, scripted_engine):
    result = project.runpytest(
        "-k", "straight or clean_pct", "--asiai-gate=endurance_clean_pct=20", "--asiai-endurance-turns=4", "-q"
    )
    result.assert_outcomes(passed=2)
    assert len(scripted_engine.requests) == 4


def test_a_failing_engine_fails_the_scenarios_with_its_message(project, scripted_engine):
    scripted_engine.behaviour = Behaviour(http_status=503)
    result = project.runpytest("-m", "endurance", "-k", "test_endurance[")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*straight: turn 1: http: HTTP 503*"])


def test_bad_turns_option_is_a_usage_error(project):
    result = project.runpytest("--asiai-endurance-turns=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "at least 1" in result.stderr.str()

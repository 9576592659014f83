"""An engine that answers nothing (issue 14): the record is never ``ok``, and the agent suites still
score the turn as a turn without a call instead of dropping it as a failed request.

The real case: llama-server b11434 with a template that closes ``<think>`` when thinking is off makes
SmolLM2-135M end generation on its first token in 2 of the 3 turns of the thinking ablation's
``enable-off`` cell (tests/test_toolcall_real.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from scripted_engine import ScriptedEngine

from pytest_asiai.config.matrix import Case
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.toolcall import ablation
from pytest_asiai.wire.client import StreamingClient

EMPTY = (
    'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": null}]}\n\n'
    'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
    "data: [DONE]\n\n"
)


def empty_engine(engine: ScriptedEngine) -> None:
    engine.set_route("POST", "/v1/chat/completions", 200, EMPTY, {"Content-Type": "text/event-stream"})


def test_an_empty_answer_is_not_ok_but_is_an_answer(scripted_engine: ScriptedEngine) -> None:
    empty_engine(scripted_engine)
    with StreamingClient(scripted_engine.base_url) as client:
        record = client.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
    assert (record.ok, record.answered, record.error_kind) == (False, True, "empty")


def test_ablation_scores_empty_turns_as_no_call_and_keeps_talking(scripted_engine: ScriptedEngine) -> None:
    empty_engine(scripted_engine)
    case = Case(engine="e", model="m", mtp="off", kind="llamacpp", model_id="m", base_url=scripted_engine.base_url)
    handle = EngineHandle(case, EngineManager(Path("/nonexistent")), lambda h: None)
    setting = ablation.cell("enable-off")
    bodies: list[dict] = []
    with StreamingClient(scripted_engine.base_url) as client:

        class Recording:
            def chat(self, body):
                bodies.append(json.loads(json.dumps(body)))
                return client.chat(body)

        turns = ablation.run_cell(Recording(), handle, setting, max_tokens=16, turns=3)
    summary = ablation.cell_summary(setting, turns)
    assert summary["failed_turns"] == [] and summary["empty_turns"] == [0, 1, 2]
    assert summary["turns_scored"] == 3 and summary["pct_emitted"] == 0.0 and summary["pct_clean"] == 0.0
    # Each empty reply stays in the history as an empty assistant message, as the engine gave it.
    last = bodies[-1]
    assert [m["content"] for m in last["messages"] if m["role"] == "assistant"][-2:] == ["", ""]

"""The streaming client against a real loopback server: every SSE oddity and failure mode."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from scripted_engine import Behaviour, ScriptedEngine, scripted_words

from pytest_asiai.wire.client import StreamingClient, Timeouts, chat_url
from pytest_asiai.wire.http import encode_body as _encode_body
from pytest_asiai.wire.http import request_headers as _headers
from pytest_asiai.wire.records import CACHED_SOURCES, MAX_STORED_CONTENT, RequestRecord

Run = Callable[..., RequestRecord]

BODY: dict[str, Any] = {
    "model": "scripted-model",
    "messages": [{"role": "user", "content": "tell me about the river"}],
    "max_tokens": 16,
}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def run_sync(base_url: str, body: dict[str, Any] = BODY, **kwargs: Any) -> RequestRecord:
    with StreamingClient(base_url, **kwargs) as client:
        return client.chat(body)


@pytest.fixture
def run() -> Run:
    return run_sync


@pytest.fixture
def engine(scripted_engine: ScriptedEngine) -> ScriptedEngine:
    return scripted_engine


def script(engine: ScriptedEngine, **fields: Any) -> None:
    engine.behaviour = Behaviour(**fields)


def words(n: int) -> str:
    return "".join(w + " " for w in scripted_words(n))


def sse_route(engine: ScriptedEngine, text: str | bytes, status: int = 200) -> None:
    engine.set_route("POST", "/v1/chat/completions", status, text, {"Content-Type": "text/event-stream"})


def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------- happy path


def test_plain_stream(engine: ScriptedEngine, run: Run) -> None:
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.status == 200
    assert record.content == words(16)
    assert record.content_chars == len(words(16))
    assert record.completion_tokens == 16 == record.chunks
    assert record.prompt_tokens == engine.count_prompt_tokens(BODY["messages"])
    assert record.finish_reason == "length"
    assert record.reasoning_tokens is None
    assert record.malformed_lines == 0
    assert record.tool_calls == ()


def test_timestamps_are_ordered_and_follow_the_scripted_pacing(engine: ScriptedEngine, run: Run) -> None:
    script(engine, prefill_ms_per_token=3.0, decode_ms_per_token=4.0, prefix_cache=False)
    record = run(engine.base_url)
    prompt_n = engine.count_prompt_tokens(BODY["messages"])
    assert record.headers_ms is not None and record.ttft_ms is not None
    assert record.last_token_ms is not None and record.total_ms is not None
    assert record.ttfc_ms == record.ttft_ms
    assert 0 < record.headers_ms < record.ttft_ms <= record.last_token_ms <= record.total_ms
    # Headers may be late on a loaded machine; the prefill delay is measured from the send.
    assert record.ttft_ms >= prompt_n * 3.0 * 0.9
    assert record.last_token_ms - record.ttft_ms >= 15 * 4.0 * 0.9
    assert record.token_chunk_ms == tuple(sorted(record.token_chunk_ms))
    assert record.token_chunk_ms[0] == record.ttft_ms and record.token_chunk_ms[-1] == record.last_token_ms
    assert abs(record.started_at - time.time()) < 60


def test_body_is_copied_and_forced_to_stream_with_usage(engine: ScriptedEngine, run: Run) -> None:
    body = {**BODY, "stream": False, "stream_options": {"continuous_usage_stats": True}, "temperature": 0}
    run(engine.base_url, body)
    sent = engine.requests[-1]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"continuous_usage_stats": True, "include_usage": True}
    assert sent["temperature"] == 0
    assert body["stream"] is False and body["stream_options"] == {"continuous_usage_stats": True}


def test_base_url_with_v1_path(engine: ScriptedEngine, run: Run) -> None:
    assert run(engine.base_url + "/v1/").ok


def test_chat_url_and_headers() -> None:
    assert chat_url("http://h:1234") == "http://h:1234/v1/chat/completions"
    assert chat_url("http://h:1234/v1") == "http://h:1234/v1/chat/completions"
    assert chat_url("http://h/proxy/v1/") == "http://h/proxy/v1/chat/completions"
    assert chat_url("http://h/proxy") == "http://h/proxy/v1/chat/completions"
    assert _headers(None) == {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
    assert _headers("sk-1")["Authorization"] == "Bearer sk-1"
    assert json.loads(_encode_body({"stream_options": None})) == {
        "stream": True,
        "stream_options": {"include_usage": True},
    }


# ----------------------------------------------------------------------------------- SSE framing


@pytest.mark.parametrize(
    "framing",
    [
        {"sse_comments": True},
        {"no_space_after_colon": True},
        {"drip_bytes": 1},
        {"drip_bytes": 3, "sse_comments": True, "no_space_after_colon": True},
    ],
    ids=["comments", "no-space", "drip-1-byte", "drip-3-all"],
)
def test_framing_oddities_give_the_same_answer(engine: ScriptedEngine, run: Run, framing: dict[str, Any]) -> None:
    script(engine, **framing)
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.content == words(16)  # includes café, 日本, → ...: split mid-character when dripped
    assert record.completion_tokens == 16 == record.chunks
    assert record.malformed_lines == 0


def test_done_without_trailing_blank_line_at_eof(engine: ScriptedEngine, run: Run) -> None:
    sse_route(engine, f"data: {chunk({'content': 'hi'}, 'stop')}\n\ndata: [DONE]")
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.content == "hi" and record.finish_reason == "stop"
    assert record.total_ms is not None


def test_server_without_blank_lines_between_events(engine: ScriptedEngine, run: Run) -> None:
    events = [chunk({"content": "a"}), chunk({"content": "b"}, "stop"), "[DONE]"]
    sse_route(engine, "".join(f"data: {e}\n" for e in events) + "\n")
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.content == "ab" and record.chunks == 2 and record.malformed_lines == 0


def test_role_only_and_empty_chunks_are_not_tokens(engine: ScriptedEngine, run: Run) -> None:
    events = [
        chunk({"role": "assistant"}),
        chunk({"content": ""}),
        chunk({"content": "x"}),
        chunk({}, "stop"),
        "[DONE]",
    ]
    sse_route(engine, "".join(f"data: {e}\n\n" for e in events))
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.chunks == 1 and record.content == "x"


def test_no_usage_chunk_leaves_counts_unmeasured(engine: ScriptedEngine, run: Run) -> None:
    script(engine, send_usage=False)
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.chunks == 16
    for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "cached_source"):
        assert getattr(record, name) is None, name


def test_content_is_bounded_but_counted(engine: ScriptedEngine, run: Run) -> None:
    script(engine, tokens_per_chunk=50)
    record = run(engine.base_url, {**BODY, "max_tokens": 1500})
    assert record.ok, record.error
    assert len(record.content) == MAX_STORED_CONTENT
    assert record.content_chars == len(words(1500)) > MAX_STORED_CONTENT
    assert record.content == words(1500)[:MAX_STORED_CONTENT]


# ------------------------------------------------------------------------- reasoning, batching, tools


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_first_makes_ttft_earlier_than_ttfc(engine: ScriptedEngine, run: Run, field: str) -> None:
    script(engine, reasoning_tokens=5, reasoning_field=field, decode_ms_per_token=2.0)
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.ttft_ms is not None and record.ttfc_ms is not None
    assert record.ttft_ms < record.ttfc_ms
    assert record.reasoning_tokens == 5
    assert record.reasoning_chars == len("".join(w + " " for w in scripted_words(5, 11)))
    assert record.content == words(11)
    assert record.chunks == 16


def test_reasoning_only_stream_has_no_ttfc(engine: ScriptedEngine, run: Run) -> None:
    script(engine, reasoning_tokens=16)
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.ttft_ms is not None and record.ttfc_ms is None and record.content == ""


def test_tokens_per_chunk_makes_fewer_chunks_than_tokens(engine: ScriptedEngine, run: Run) -> None:
    script(engine, tokens_per_chunk=4)
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.completion_tokens == 16
    assert record.chunks == 4


def test_tool_call_fragments_are_reassembled(engine: ScriptedEngine, run: Run) -> None:
    calls = [
        {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
        {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}'},
    ]
    script(engine, tool_calls=calls, tool_args_piece=5)
    record = run(engine.base_url, {**BODY, "tools": TOOLS})
    assert record.ok, record.error
    assert record.finish_reason == "tool_calls"
    assert [(t.index, t.name, t.arguments) for t in record.tool_calls] == [
        (0, "get_weather", calls[0]["arguments"]),
        (1, "get_time", calls[1]["arguments"]),
    ]
    ids = [t.id for t in record.tool_calls]
    assert all(i and i.startswith("call_") for i in ids) and len(set(ids)) == 2
    assert record.ttft_ms is not None and record.ttfc_ms is None
    assert record.chunks == record.completion_tokens


# ----------------------------------------------------------------------------- cache and timings


@pytest.mark.parametrize(
    ("fields", "source"),
    [
        ({}, CACHED_SOURCES[0]),
        ({"cached_field": "top_level"}, CACHED_SOURCES[1]),
        ({"report_cached": False, "send_timings": True}, CACHED_SOURCES[2]),
    ],
)
def test_cached_tokens_and_their_source(engine: ScriptedEngine, run: Run, fields: dict[str, Any], source: str) -> None:
    script(engine, **fields)
    cold = run(engine.base_url)
    warm = run(engine.base_url)
    assert cold.ok and warm.ok
    assert cold.cached_tokens == 0 and cold.cached_source == source
    assert warm.cached_tokens == engine.count_prompt_tokens(BODY["messages"]) - 1
    assert warm.cached_source == source


def test_no_cache_report_is_none(engine: ScriptedEngine, run: Run) -> None:
    script(engine, report_cached=False)
    record = run(engine.base_url)
    assert record.ok and record.cached_tokens is None and record.cached_source is None


def test_timings_are_kept(engine: ScriptedEngine, run: Run) -> None:
    script(engine, send_timings=True, prefill_ms_per_token=1.0)
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.timings is not None
    assert record.timings["prompt_n"] == engine.count_prompt_tokens(BODY["messages"])
    assert record.timings["predicted_n"] == 16


def test_timings_without_usage_still_give_cached(engine: ScriptedEngine, run: Run) -> None:
    script(engine, send_timings=True, send_usage=False)
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.timings is not None and record.cached_source == "timings.cache_n"
    assert record.completion_tokens is None


# ---------------------------------------------------------------------------------------- failures


def test_error_object_in_a_200_stream_fails_the_request(engine: ScriptedEngine, run: Run) -> None:
    script(engine, error_in_stream_after_tokens=3)
    record = run(engine.base_url)
    assert not record.ok
    assert record.status == 200
    assert record.error_kind == "stream_error"
    assert record.error == "scripted stream error"
    assert record.chunks == 3 and record.content == words(3)


def test_http_500_reports_the_engine_message(engine: ScriptedEngine, run: Run) -> None:
    script(engine, http_status=500)
    record = run(engine.base_url)
    assert not record.ok
    assert record.status == 500 and record.error_kind == "http"
    assert record.error == "HTTP 500: scripted status 500"
    assert record.headers_ms is not None and record.total_ms is not None
    assert record.ttft_ms is None and record.chunks == 0


def test_http_500_after_some_successes(engine: ScriptedEngine, run: Run) -> None:
    script(engine, http_500_after=1)
    assert run(engine.base_url).ok
    record = run(engine.base_url)
    assert record.error == "HTTP 500: scripted failure"


def test_http_error_with_a_text_body(engine: ScriptedEngine, run: Run) -> None:
    engine.set_route("POST", "/v1/chat/completions", 503, "overloaded " * 100)
    record = run(engine.base_url)
    assert record.error_kind == "http"
    assert record.error == "HTTP 503: " + ("overloaded " * 100)[:300]


def test_malformed_line_is_skipped_and_counted(engine: ScriptedEngine, run: Run) -> None:
    script(engine, malformed_sse_after_tokens=4)
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.malformed_lines == 1
    assert record.content == words(16) and record.chunks == 16


def test_disconnect_mid_stream_keeps_partial_data(engine: ScriptedEngine, run: Run) -> None:
    script(engine, disconnect_after_tokens=5, decode_ms_per_token=1.0)
    record = run(engine.base_url)
    assert not record.ok
    assert record.error_kind == "disconnect"
    assert record.status == 200
    assert record.chunks == 5 and record.content == words(5)
    assert record.ttft_ms is not None and record.total_ms is not None
    assert record.completion_tokens is None


def test_clean_end_without_finish_is_a_disconnect(engine: ScriptedEngine, run: Run) -> None:
    sse_route(engine, f"data: {chunk({'content': 'partial'})}\n\n")
    record = run(engine.base_url)
    assert record.error_kind == "disconnect" and record.content == "partial"


def test_stream_without_any_token_is_a_protocol_error(engine: ScriptedEngine, run: Run) -> None:
    sse_route(engine, "data: [DONE]\n\n")
    record = run(engine.base_url)
    assert record.error_kind == "protocol"
    assert record.error == "stream ended without any token"


def test_stop_without_any_token_is_not_a_valid_empty_answer(engine: ScriptedEngine, run: Run) -> None:
    """Issue 14: a stream that says ``stop`` but carried no token was stored ``ok``."""
    sse_route(engine, f"data: {chunk({'role': 'assistant'}, finish='stop')}\n\ndata: [DONE]\n\n")
    record = run(engine.base_url)
    assert not record.ok
    assert record.error_kind == "empty"
    assert record.error == "stream ended with finish_reason 'stop' and no token"


def test_invalid_utf8_is_counted_with_the_malformed_lines(engine: ScriptedEngine, run: Run) -> None:
    """Issue 14: invalid UTF-8 was replaced silently; a real U+FFFD sent by the engine is not counted."""
    bad = b"data: " + chunk({"content": "a\ufffd"}).encode() + b"\n\n"
    bad += b'data: {"choices": [{"index": 0, "delta": {"content": "b\xff\xfe"}, "finish_reason": null}]}\n\n'
    bad += b"data: " + chunk({}, finish="stop").encode() + b"\n\ndata: [DONE]\n\n"
    sse_route(engine, bad)
    record = run(engine.base_url)
    assert record.ok, record.error
    assert record.content.startswith("a\ufffdb")
    assert record.malformed_lines == 2  # \xff and \xfe: two invalid sequences, each replaced by U+FFFD


def test_empty_answer_with_finish_reason_is_ok(engine: ScriptedEngine, run: Run) -> None:
    record = run(engine.base_url, {**BODY, "max_tokens": 0})
    assert record.ok, record.error
    assert record.chunks == 0 and record.ttft_ms is None and record.completion_tokens == 0


def test_connection_refused(run: Run) -> None:
    record = run(f"http://127.0.0.1:{free_port()}")
    assert not record.ok
    assert record.error_kind == "connect"
    assert record.status is None and record.headers_ms is None


@pytest.mark.parametrize(
    "fields",
    [
        {"decode_ms_per_token": 150.0},
        {"drip_bytes": 1, "drip_delay_ms": 15.0},
        {"prefill_ms_per_token": 300.0},
    ],
    ids=["slow-decode", "slow-drip", "stalled-prefill"],
)
def test_overall_deadline(engine: ScriptedEngine, run: Run, fields: dict[str, Any]) -> None:
    script(engine, **fields)
    started = time.perf_counter()
    record = run(engine.base_url, timeouts=Timeouts(connect_s=1.0, deadline_s=0.4))
    elapsed = time.perf_counter() - started
    assert not record.ok
    assert record.error_kind == "timeout", record.error
    assert record.status == 200
    # Each scripted stream would take several seconds; 3 s leaves room for a loaded 2-core machine.
    assert 0.4 <= elapsed < 3.0
    assert record.total_ms is not None and 400 <= record.total_ms < 3000


# ------------------------------------------------------------------------------- client behaviour


def test_sync_client_reuses_its_connection(engine: ScriptedEngine) -> None:
    with StreamingClient(engine.base_url) as client:
        records = [client.chat(BODY) for _ in range(3)]
        assert len(client._idle) == 1  # the body was drained after [DONE], so keep-alive held
    assert all(r.ok for r in records)


def test_deadline_is_exact_when_a_stream_stalls_between_reads(engine: ScriptedEngine, run: Run) -> None:
    """Reads at ~0, 350 and 700 ms: a per-read timeout or check would end the request at 700+ ms."""
    script(engine, decode_ms_per_token=350.0)
    record = run(engine.base_url, timeouts=Timeouts(deadline_s=0.4))
    assert record.error_kind == "timeout", record.error
    assert record.chunks == 2
    assert record.total_ms is not None and 400 <= record.total_ms < 650

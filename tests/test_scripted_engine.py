"""Proves each scripted behaviour of the scripted test engine over a real socket.

Why: the plugin's own tests trust these behaviours to be exact, so each one is pinned here first.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from scripted_engine import VOCABULARY, Behaviour, ScriptedEngine, count_tokens, scripted_words

SYSTEM = "You are a careful assistant who answers briefly"  # 8 tokens
CHAT = "/v1/chat/completions"


def client_for(engine: ScriptedEngine) -> httpx.Client:
    """A plain-HTTP client (verify=False skips building an SSL context, which costs ~0.1 s)."""
    return httpx.Client(base_url=engine.base_url, timeout=10, verify=False)


def conversation(user: str, system: str = SYSTEM) -> list[dict[str, Any]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


@dataclass
class Streamed:
    """Everything a client saw on one streamed request."""

    status: int
    lines: list[str] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    done: bool = False
    error: Exception | None = None
    headers_at: float = 0.0
    t0: float = 0.0
    """Absolute ``perf_counter`` when the request was sent; ``times`` are relative to it."""

    def deltas(self, key: str) -> str:
        return "".join(str(c["choices"][0]["delta"].get(key) or "") for c in self.chunks if c.get("choices"))

    @property
    def usage_chunk(self) -> dict[str, Any] | None:
        return next((c for c in self.chunks if "usage" in c), None)

    @property
    def usage(self) -> dict[str, Any]:
        chunk = self.usage_chunk
        assert chunk is not None
        return dict(chunk["usage"])

    @property
    def token_chunks(self) -> list[dict[str, Any]]:
        """Chunks carrying output (not the role-only chunk, not the usage chunk)."""
        out = []
        for c in self.chunks:
            delta = c["choices"][0]["delta"] if c.get("choices") else {}
            if set(delta) - {"role"}:
                out.append(c)
        return out

    @property
    def finish_reasons(self) -> list[str]:
        return [c["choices"][0]["finish_reason"] for c in self.chunks if c.get("choices")]


def _payload(line: str) -> str | None:
    return line[5:].lstrip(" ") if line.startswith("data:") else None


def stream(engine: ScriptedEngine, messages: list[dict[str, Any]] | None = None, **extra: Any) -> Streamed:
    """POST a streamed chat request and record every SSE line with its arrival time."""
    body = {"messages": messages or conversation("hello"), "stream": True, "max_tokens": 4}
    body["stream_options"] = {"include_usage": True}
    body.update(extra)
    result = Streamed(status=0)
    with client_for(engine) as client:
        t0 = result.t0 = time.perf_counter()
        try:
            with client.stream("POST", CHAT, json=body) as response:
                result.status, result.headers_at = response.status_code, time.perf_counter() - t0
                _collect(response, result, t0)
        except httpx.HTTPError as exc:
            result.error = exc
    return result


def _collect(response: httpx.Response, result: Streamed, t0: float) -> None:
    for line in response.iter_lines():
        if not line:
            continue
        result.lines.append(line)
        payload = _payload(line)
        if payload is None:
            continue
        result.times.append(time.perf_counter() - t0)
        if payload == "[DONE]":
            result.done = True
            continue
        try:
            result.chunks.append(json.loads(payload))
        except ValueError:
            pass


@pytest.fixture
def engine() -> Any:
    with ScriptedEngine() as started:
        yield started


# --------------------------------------------------------------------------- endpoints, tokenizer


def test_metadata_endpoints(engine: ScriptedEngine) -> None:
    engine.behaviour.slots = 3
    with client_for(engine) as client:
        assert client.get("/health").json() == {"status": "ok"}
        models = client.get("/v1/models").json()
        assert models["data"][0] == {"id": "scripted-model", "object": "model", "owned_by": "llamacpp"}
        props = client.get("/props").json()
        assert props["total_slots"] == 3 and props["default_generation_settings"]["n_ctx"] == 8192
        assert props["build_info"] == "b11434-scripted"
        assert client.get("/nope").status_code == 404


def test_tokenizer_counts_are_predictable(engine: ScriptedEngine) -> None:
    text = "Hello,  wörld\n日本 → é"
    with client_for(engine) as client:
        tokens = client.post("/tokenize", json={"content": text}).json()["tokens"]
    assert len(tokens) == count_tokens(text) == ScriptedEngine.count_tokens(text) == 5
    assert all(isinstance(t, int) for t in tokens)
    messages = conversation("what is two plus two")
    assert ScriptedEngine.count_prompt_tokens(messages) == (2 + 8) + (2 + 5) + 1
    assert stream(engine, messages).usage["prompt_tokens"] == 18


def test_default_words_are_varied_and_include_multibyte() -> None:
    words = scripted_words(200)
    assert len(set(words)) > 40
    assert any(w.encode() != w.encode("ascii", "ignore") for w in VOCABULARY)
    assert scripted_words(50) == scripted_words(50)


# --------------------------------------------------------------------------- stream shape


def test_stream_shape_is_llamacpp_like(engine: ScriptedEngine) -> None:
    result = stream(engine, max_tokens=6)
    assert result.status == 200 and result.done and result.lines[-1] == "data: [DONE]"
    assert result.chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all(c["object"] == "chat.completion.chunk" for c in result.chunks)
    assert len({c["id"] for c in result.chunks}) == 1
    assert result.finish_reasons == [None] * 6 + ["length"]
    content = result.deltas("content")
    assert count_tokens(content) == 6 and content.endswith(" ")
    assert result.usage_chunk is not None and result.usage_chunk["choices"] == []
    assert result.usage == {
        "prompt_tokens": 18 - 5 + 1,
        "completion_tokens": 6,
        "total_tokens": 14 + 6,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_requests_are_recorded_with_arrival_time(engine: ScriptedEngine) -> None:
    before = time.perf_counter_ns()
    stream(engine, max_tokens=1, seed=3)
    (recorded,) = engine.requests
    assert recorded["seed"] == 3 and recorded["messages"] == conversation("hello")
    assert before <= recorded["_received_ns"] <= time.perf_counter_ns()


def test_finish_reasons(engine: ScriptedEngine) -> None:
    engine.behaviour.completion_tokens = 3
    short = stream(engine, max_tokens=10)
    assert short.finish_reasons[-1] == "stop" and short.usage["completion_tokens"] == 3
    assert stream(engine, max_tokens=2).finish_reasons[-1] == "length"
    engine.behaviour.completion_tokens = None
    unlimited = stream(engine, max_tokens=None)
    assert unlimited.finish_reasons[-1] == "stop"
    assert unlimited.usage["completion_tokens"] == engine.default_completion_tokens
    engine.behaviour.finish_reason = "content_filter"
    assert stream(engine).finish_reasons[-1] == "content_filter"


def test_content_text_is_cycled(engine: ScriptedEngine) -> None:
    engine.behaviour.content_text = "alpha  beta\ngamma"
    assert stream(engine, max_tokens=5).deltas("content") == "alpha beta gamma alpha beta "


def test_non_streaming_completion(engine: ScriptedEngine) -> None:
    engine.behaviour.reasoning_tokens = 2
    body = {"messages": conversation("hi"), "max_tokens": 5}
    with client_for(engine) as client:
        data = client.post(CHAT, json=body).json()
    assert data["object"] == "chat.completion"
    message = data["choices"][0]["message"]
    assert count_tokens(message["content"]) == 3 and count_tokens(message["reasoning_content"]) == 2
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 5
    assert data["usage"]["completion_tokens_details"] == {"reasoning_tokens": 2}


def test_invalid_requests_and_context_size(engine: ScriptedEngine) -> None:
    engine.n_ctx = 10
    with client_for(engine) as client:
        assert client.post(CHAT, content=b"{nope").status_code == 400
        too_long = client.post(CHAT, json={"messages": conversation("a b c"), "stream": True})
        assert too_long.status_code == 400 and "context size" in too_long.json()["error"]["message"]


def test_connections_are_kept_alive(engine: ScriptedEngine) -> None:
    body = {"messages": conversation("hi"), "stream": True, "max_tokens": 2}
    ports = set()
    with client_for(engine) as client:
        for _ in range(3):
            with client.stream("POST", CHAT, json=body) as response:
                assert response.read().endswith(b"data: [DONE]\n\n")
                ports.add(response.extensions["network_stream"].get_extra_info("client_addr"))
            assert client.get("/health").status_code == 200
    assert len(ports) == 1


# --------------------------------------------------------------------------- prefix cache


def test_prefix_cache_is_shared_across_users(engine: ScriptedEngine) -> None:
    first = stream(engine, conversation("tell me about rivers"))
    assert first.usage["prompt_tokens_details"]["cached_tokens"] == 0
    other_user = stream(engine, conversation("summarise this article please"))
    assert other_user.usage["prompt_tokens_details"]["cached_tokens"] == 2 + 8 + 1
    repeat = stream(engine, conversation("summarise this article please"))
    assert repeat.usage["prompt_tokens_details"]["cached_tokens"] == repeat.usage["prompt_tokens"] - 1


def test_cross_user_reuse_off_only_hits_identical_prompts(engine: ScriptedEngine) -> None:
    engine.behaviour.cross_user_reuse = False
    stream(engine, conversation("one"))
    assert stream(engine, conversation("two")).usage["prompt_tokens_details"]["cached_tokens"] == 0
    same = stream(engine, conversation("two"))
    assert same.usage["prompt_tokens_details"]["cached_tokens"] == same.usage["prompt_tokens"] - 1


def test_cache_prompt_false_replaces_slot_memory(engine: ScriptedEngine) -> None:
    stream(engine, conversation("first question"))
    other = stream(engine, conversation("x", system="totally different"), cache_prompt=False)
    assert other.usage["prompt_tokens_details"]["cached_tokens"] == 0
    back = stream(engine, conversation("first question"))
    assert back.usage["prompt_tokens_details"]["cached_tokens"] == 1  # only <|system|> survives


def test_prefix_cache_off_and_reset(engine: ScriptedEngine) -> None:
    stream(engine)
    engine.reset_cache()
    assert stream(engine).usage["prompt_tokens_details"]["cached_tokens"] == 0
    engine.behaviour.prefix_cache = False
    assert stream(engine).usage["prompt_tokens_details"]["cached_tokens"] == 0


def test_slot_choice_follows_prefix_then_lru(engine: ScriptedEngine) -> None:
    engine.behaviour.slots = 2
    long_a = conversation("a " * 30, system="alpha")
    long_b = [{"role": "user", "content": "b " * 30}]
    stream(engine, long_a)  # slot 0
    stream(engine, long_b)  # shares 0 tokens with slot 0 -> LRU idle slot 1
    again = stream(engine, long_a)
    assert again.usage["prompt_tokens_details"]["cached_tokens"] == again.usage["prompt_tokens"] - 1


def test_id_slot_pins_and_is_validated(engine: ScriptedEngine) -> None:
    engine.behaviour.slots = 2
    stream(engine, conversation("pinned"), id_slot=1)
    assert stream(engine, conversation("pinned"), id_slot=0).usage["prompt_tokens_details"]["cached_tokens"] == 0
    hit = stream(engine, conversation("pinned"), id_slot=1)
    assert hit.usage["prompt_tokens_details"]["cached_tokens"] == hit.usage["prompt_tokens"] - 1
    assert stream(engine, id_slot=5).status == 400


# --------------------------------------------------------------------------- usage dialects


def test_usage_absent_unless_requested_and_enabled(engine: ScriptedEngine) -> None:
    assert stream(engine, stream_options=None).usage_chunk is None
    engine.behaviour.send_usage = False
    result = stream(engine)
    assert result.usage_chunk is None and result.done


def test_cached_field_variants_and_usage_object(engine: ScriptedEngine) -> None:
    engine.behaviour.cached_field = "top_level"
    engine.behaviour.usage_object = "chat.completion"
    result = stream(engine)
    assert "cached_tokens" in result.usage and "prompt_tokens_details" not in result.usage
    assert result.usage_chunk is not None and result.usage_chunk["object"] == "chat.completion"
    engine.behaviour.report_cached = False
    usage = stream(engine).usage
    assert "cached_tokens" not in usage and "prompt_tokens_details" not in usage


def test_timings_match_the_simulated_delays(engine: ScriptedEngine) -> None:
    engine.behaviour = Behaviour(send_timings=True, prefill_ms_per_token=0.5, decode_ms_per_token=2)
    stream(engine, conversation("warm up"))
    result = stream(engine, conversation("second user"), max_tokens=5)
    timings = result.usage_chunk["timings"] if result.usage_chunk else {}
    prompt = result.usage["prompt_tokens"]
    assert timings["cache_n"] == 11 and timings["prompt_n"] == prompt - 11
    assert timings["prompt_ms"] == pytest.approx((prompt - 11) * 0.5)
    assert timings["predicted_n"] == 5 and timings["predicted_ms"] == pytest.approx(4 * 2)
    assert timings["predicted_per_second"] == pytest.approx(5 / 8 * 1000)
    without_usage = stream(engine, stream_options=None)
    assert "timings" in without_usage.chunks[-1] and without_usage.chunks[-1]["choices"][0]["finish_reason"]


# --------------------------------------------------------------------------- output kinds


def test_reasoning_is_streamed_before_content(engine: ScriptedEngine) -> None:
    engine.behaviour.reasoning_tokens = 3
    result = stream(engine, max_tokens=5)
    keys = [next(iter(c["choices"][0]["delta"])) for c in result.token_chunks]
    assert keys == ["reasoning_content"] * 3 + ["content"] * 2
    assert result.usage["completion_tokens_details"] == {"reasoning_tokens": 3}
    engine.behaviour.reasoning_field = "reasoning"
    exhausted = stream(engine, max_tokens=2)
    assert count_tokens(exhausted.deltas("reasoning")) == 2 and exhausted.deltas("content") == ""
    assert exhausted.finish_reasons[-1] == "length"


@pytest.mark.parametrize(
    "off",
    [{"chat_template_kwargs": {"enable_thinking": False}}, {"think": False}, {"reasoning_effort": "none"}],
)
def test_thinking_off_is_honoured(engine: ScriptedEngine, off: dict[str, Any]) -> None:
    engine.behaviour.reasoning_tokens = 3
    result = stream(engine, max_tokens=4, **off)
    assert result.deltas("reasoning_content") == "" and count_tokens(result.deltas("content")) == 4
    assert "completion_tokens_details" not in result.usage
    engine.behaviour.honour_thinking_off = False
    assert count_tokens(stream(engine, max_tokens=4, **off).deltas("reasoning_content")) == 3


def test_tokens_per_chunk_batches_tokens(engine: ScriptedEngine) -> None:
    engine.behaviour.tokens_per_chunk = 3
    result = stream(engine, max_tokens=7)
    assert [count_tokens(c["choices"][0]["delta"]["content"]) for c in result.token_chunks] == [3, 3, 1]
    assert result.usage["completion_tokens"] == 7


def test_tool_calls_stream_as_fragments(engine: ScriptedEngine) -> None:
    arguments = json.dumps({"city": "Paris", "unit": "celsius"})
    engine.behaviour.tool_calls = [
        {"name": "get_weather", "arguments": arguments},
        {"name": "noop", "arguments": ""},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    result = stream(engine, tools=tools)
    fragments = [c["choices"][0]["delta"]["tool_calls"][0] for c in result.token_chunks]
    assert fragments[0]["function"] == {"name": "get_weather", "arguments": ""} and fragments[0]["id"]
    pieces = [f["function"]["arguments"] for f in fragments if f["index"] == 0 and "id" not in f]
    assert "".join(pieces) == arguments and all(len(p) <= 7 for p in pieces)
    assert fragments[-1]["function"]["name"] == "noop" and fragments[-1]["index"] == 1
    assert result.finish_reasons[-1] == "tool_calls"
    assert stream(engine).deltas("content") != ""  # no tools in the request: plain content


# --------------------------------------------------------------------------- failures


def test_http_500_after_n_requests(engine: ScriptedEngine) -> None:
    engine.behaviour.http_500_after = 2
    assert [stream(engine).status for _ in range(3)] == [200, 200, 500]
    with client_for(engine) as client:
        error = client.post(CHAT, json={"messages": conversation("x"), "stream": True}).json()["error"]
    assert error["message"] == "scripted failure" and error["type"] == "server_error"
    assert len(engine.requests) == 4


def test_http_status_for_every_request(engine: ScriptedEngine) -> None:
    engine.behaviour.http_status = 503
    with client_for(engine) as client:
        response = client.post(CHAT, json={"messages": conversation("x"), "stream": True})
        assert response.status_code == 503 and response.json()["error"]["code"] == 503
        assert client.get("/health").status_code == 200


def test_error_in_stream(engine: ScriptedEngine) -> None:
    engine.behaviour.error_in_stream_after_tokens = 2
    result = stream(engine, max_tokens=5)
    assert result.status == 200 and result.done and len(result.token_chunks) == 2
    assert result.chunks[-1] == {"error": {"message": "scripted stream error", "code": 500}}


def test_malformed_line_then_normal_stream(engine: ScriptedEngine) -> None:
    engine.behaviour.malformed_sse_after_tokens = 1
    result = stream(engine, max_tokens=3)
    assert result.lines[2] == "data: {not json"
    assert len(result.token_chunks) == 3 and result.done and result.usage_chunk is not None


def test_disconnect_mid_stream(engine: ScriptedEngine) -> None:
    engine.behaviour.disconnect_after_tokens = 2
    result = stream(engine, max_tokens=5)
    assert isinstance(result.error, httpx.RemoteProtocolError)
    assert len(result.token_chunks) == 2 and not result.done
    assert stream(engine).status == 200  # the server keeps serving


def test_drip_splits_events_and_utf8_across_reads(engine: ScriptedEngine) -> None:
    engine.behaviour = Behaviour(content_text="日本 → é", drip_bytes=5, drip_delay_ms=1)
    body = {"messages": conversation("x"), "stream": True, "max_tokens": 3}
    with client_for(engine) as client, client.stream("POST", CHAT, json=body) as response:
        pieces = list(response.iter_raw())
    assert max(len(p) for p in pieces) <= 5 and len(pieces) > 50

    def decodes(piece: bytes) -> bool:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    assert not all(decodes(p) for p in pieces)
    text = b"".join(pieces).decode("utf-8")
    contents = [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in text.split("\n\n")[1:4]]
    assert contents == ["日本 ", "→ ", "é "]


def test_sse_comments_and_no_space_after_colon(engine: ScriptedEngine) -> None:
    engine.behaviour.sse_comments = True
    engine.behaviour.no_space_after_colon = True
    result = stream(engine, max_tokens=2)
    assert ": ping" in result.lines and result.lines[-1] == "data:[DONE]"
    assert all(line.startswith("data:{") for line in result.lines if line.startswith("data:") and line != "data:[DONE]")
    assert count_tokens(result.deltas("content")) == 2


def test_role_chunk_can_be_omitted(engine: ScriptedEngine) -> None:
    engine.behaviour.role_chunk = False
    result = stream(engine, max_tokens=2)
    assert "role" not in result.chunks[0]["choices"][0]["delta"] and len(result.token_chunks) == 2


# --------------------------------------------------------------------------- timing and concurrency


def test_prefill_decode_and_headers_timing(engine: ScriptedEngine) -> None:
    engine.behaviour = Behaviour(prefill_ms_per_token=4, decode_ms_per_token=20, headers_delay_ms=60)
    result = stream(engine, conversation("hi"), max_tokens=4)  # 13 uncached tokens -> 52 ms prefill
    assert 0.055 <= result.headers_at < 0.2
    role, *tokens = result.times[:5]  # the role chunk arrives with the first token
    assert result.headers_at + 0.045 <= role == pytest.approx(tokens[0], abs=0.005)
    assert tokens[0] < result.headers_at + 0.2
    gaps = [b - a for a, b in itertools.pairwise(tokens)]
    assert all(0.015 <= g < 0.1 for g in gaps)


def _timed_stream(engine: ScriptedEngine, user: str, out: dict[str, Streamed]) -> None:
    out[user] = stream(engine, conversation(user), max_tokens=10)


@pytest.mark.parametrize("slots", [1, 2])
def test_fifo_queue_with_slots(engine: ScriptedEngine, slots: int) -> None:
    engine.behaviour = Behaviour(decode_ms_per_token=20, slots=slots)  # ~180 ms per request
    results: dict[str, Streamed] = {}
    threads = [threading.Thread(target=_timed_stream, args=(engine, u, results)) for u in ("first", "second")]
    threads[0].start()
    time.sleep(0.03)
    threads[1].start()
    for t in threads:
        t.join()
    assert [r["messages"][1]["content"] for r in engine.requests] == ["first", "second"]
    first, second = results["first"], results["second"]
    first_end = first.t0 + first.times[-1]
    second_first_token = second.t0 + second.times[0]
    if slots == 1:
        assert second_first_token > first_end - 0.05  # queued until the first stream finished
    else:
        assert second_first_token < first_end - 0.05  # served in parallel


def test_burst_of_80_concurrent_streams(engine: ScriptedEngine) -> None:
    engine.behaviour = Behaviour(decode_ms_per_token=5, slots=8)

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=engine.base_url, limits=limits, timeout=10, verify=False) as client:

            async def one(i: int) -> int:
                body = {"messages": conversation(f"user {i}"), "stream": True, "max_tokens": 3}
                async with client.stream("POST", CHAT, json=body) as response:
                    return (await response.aread()).count(b"data: ")

            return await asyncio.gather(*(one(i) for i in range(80)))

    assert asyncio.run(burst()) == [5] * 80
    assert len(engine.requests) == 80


def test_stop_with_streams_in_flight_is_prompt() -> None:
    threads_before = threading.active_count()
    engine = ScriptedEngine(Behaviour(decode_ms_per_token=100, slots=2)).start()
    results: dict[str, Streamed] = {}
    workers = [threading.Thread(target=_timed_stream, args=(engine, u, results)) for u in "abc"]
    for w in workers:
        w.start()
    time.sleep(0.15)
    start = time.perf_counter()
    engine.stop()
    assert time.perf_counter() - start < 2.0
    for w in workers:
        w.join(timeout=5)
    assert threading.active_count() == threads_before
    assert all(not r.done for r in results.values())


# --------------------------------------------------------------------------- canned routes, fixture


def test_set_route_adds_and_overrides_endpoints(engine: ScriptedEngine) -> None:
    engine.set_route("GET", "/api/version", 200, {"version": "0.12.3"})
    engine.set_route("GET", "/health", 503, {"error": {"message": "Loading model"}})
    engine.set_route("GET", "/lms/version", 200, "0.3.30", headers={"X-Extra": "1"})
    with client_for(engine) as client:
        assert client.get("/api/version").json() == {"version": "0.12.3"}
        assert client.get("/health").status_code == 503
        text = client.get("/lms/version")
        assert text.text == "0.3.30" and text.headers["x-extra"] == "1"


def test_conftest_fixture_serves(scripted_engine: ScriptedEngine) -> None:
    assert stream(scripted_engine).done


def test_restart_binds_a_new_port() -> None:
    engine = ScriptedEngine()
    with engine:
        first_url = engine.base_url
    with engine:
        assert engine.base_url != first_url or stream(engine).done
        assert stream(engine).done

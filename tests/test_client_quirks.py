"""Real MLX servers' stream quirks (issue 12 item 4), replayed from their captured bytes.

Each capture is served event by event (one HTTP chunk per SSE event, as the servers wrote them), with
a pause where the real server paused, so that what counts as a token and when TTFT starts is checked
on the exact bytes: tests/data/mlx-captures/ (H2's copies) and tests/data/wire/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer, Step, sse_response

from pytest_asiai.measure import metrics
from pytest_asiai.wire.client import StreamingClient, Timeouts
from pytest_asiai.wire.records import RequestRecord

DATA = Path(__file__).parent / "data"
BODY: dict[str, Any] = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
PAUSE_S = 0.15


def events(name: str) -> list[bytes]:
    """The capture's events, each with its closing blank line."""
    path = DATA / "mlx-captures" / name
    if not path.exists():
        path = DATA / "wire" / name
    raw = path.read_bytes()
    return [part + b"\n\n" for part in raw.split(b"\n\n") if part.strip()]


def replay(pieces: list[bytes], *, pause_before: int | None = None) -> RequestRecord:
    """Serve the events; with ``pause_before``, wait ``PAUSE_S`` before the event at that index."""
    steps: list[Step] = []
    for i, step in enumerate(sse_response(b"", pieces=pieces)):
        if pause_before is not None and i == pause_before + 1:  # +1: the response head comes first
            steps.append(PAUSE_S)
        steps.append(step)
    with HostileServer(lambda _: steps) as server:
        with StreamingClient(server.base_url, timeouts=Timeouts(deadline_s=10.0)) as client:
            return client.chat(BODY)


def test_mlx_lm_keepalive_comments_and_repeated_role_are_not_tokens() -> None:
    """mlx-lm 0.32.2 sends ``: keepalive 195/208`` comments during prefill and repeats
    ``"role": "assistant"`` in every delta, the finish delta being ``{"role": "assistant"}`` alone."""
    pieces = events("mlxlm-req1.sse")
    assert pieces[0].startswith(b": keepalive")
    first = next(i for i, p in enumerate(pieces) if p.startswith(b"data:"))
    assert b'"content": "The"' in pieces[first]
    record = replay(pieces, pause_before=first)
    assert record.ok, record.error
    assert record.ttft_ms is not None and record.ttft_ms >= PAUSE_S * 1000  # the comments did not start it
    assert record.chunks == 7 and record.content == "The capital of France is Paris."
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == (208, 8, 0)
    assert record.malformed_lines == 0


def test_omlx_keepalive_data_events_are_not_tokens() -> None:
    """oMLX (flyto-mlx 0.7.0) sends ``"id":"chatcmpl-keepalive"`` events with empty content before
    the role chunk and between it and the first token."""
    pieces = events("omlx-req1.sse")
    assert b"chatcmpl-keepalive" in pieces[0]
    first = next(i for i, p in enumerate(pieces) if b'"content":"The"' in p)
    assert any(b"chatcmpl-keepalive" in p for p in pieces[1:first])
    record = replay(pieces, pause_before=first)
    assert record.ok, record.error
    assert record.ttft_ms is not None and record.ttft_ms >= PAUSE_S * 1000
    assert record.ttfc_ms == record.ttft_ms
    assert record.chunks == 7 and record.completion_tokens == 7
    assert metrics.tokens_per_chunk(record) == 1.0


def test_vmlx_coalesced_events_give_tokens_per_chunk() -> None:
    """vMLX 1.6.81 sends 16 tokens in 3 content events (stream-interval 8): events are not tokens."""
    record = replay(events("vmlx-cold300.sse"))
    assert record.ok, record.error
    assert record.chunks == 3 and record.completion_tokens == 16 and record.finish_reason == "length"
    assert metrics.streamed_tokens(record) == 16
    assert metrics.tokens_per_chunk(record) == pytest.approx(16 / 3)


def test_vllm_mlx_usage_sent_twice_is_counted_once() -> None:
    """vLLM-MLX 0.6.0 puts usage on the finish chunk and again in a ``choices: []`` chunk."""
    pieces = events("vllmmlx-req1.sse")
    assert sum(b'"usage":{' in p for p in pieces) == 2
    record = replay(pieces)
    assert record.ok, record.error
    assert (record.prompt_tokens, record.completion_tokens) == (208, 8)
    assert record.cached_tokens is None and record.cached_source is None  # it never reports them
    phase = metrics.phase_stats([record, record])
    assert phase["completion_tokens"]["median"] == 8


def test_stop_at_exactly_max_tokens_is_the_limit_not_a_model_stop() -> None:
    """mlx-openai-server 1.8.1 says ``finish_reason: "stop"`` when it hit ``max_tokens`` (16 of 16)."""
    record = replay(events("mlxopenai-cold300.sse"))
    assert record.ok, record.error
    assert record.finish_reason == "stop" and record.completion_tokens == 16 == record.request_max_tokens
    assert record.limit_reached
    assert metrics.streamed_tokens(record) == 16


def test_stop_at_the_limit_with_an_empty_token_keeps_every_token() -> None:
    """The same capture with one token that decoded to no text (15 chunks, 16 tokens): at the limit
    no stop token was sampled, so all 16 tokens are inside the decode span (the llama.cpp rule for a
    model stop, which drops one, must not apply)."""
    pieces = events("mlxopenai-cold300.sse")
    index = next(i for i, p in enumerate(pieces) if b'"content": " ' in p and i > 2)
    head, _, _ = pieces[index].partition(b'"content": "')
    pieces[index] = head + b'"content": "", "role": "assistant"}, "index": 0}]}\n\n'
    record = replay(pieces)
    assert record.ok, record.error
    assert record.chunks == 15 and record.completion_tokens == 16 and record.limit_reached
    assert metrics.streamed_tokens(record) == 16

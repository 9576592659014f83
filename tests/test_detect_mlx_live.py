"""``pytest-asiai detect`` on the five live MLX servers, and each family's true-cold method, for real.

Each server of engines-mlx.toml is started once (tests/mlx_engines.py, after
./scripts/setup-mlx-engines) and asked two things:

* detection names its family AND its version, 5/5 and 5/5 (issue 12): vMLX imitates Ollama's
  ``/api/version`` and must still be vMLX; vLLM-MLX and mlx-lm say their version nowhere over HTTP,
  so it comes from the package metadata of the process that listens on the port;
* the family's cold method really empties the cache, judged by what the server itself reports:
  a warm request shows reuse (cached tokens, or vLLM-MLX's own ``/v1/cache/stats`` and TTFT, since
  it never reports cached tokens), then the reset (``endpoint``) or a salted prompt (``salt``) gives
  a request with none. oMLX reuses whole 256-token blocks and vMLX 64-token ones
  (``EngineFamily.cache_block_tokens``), so their hits must be multiples of it.

The expected versions are the pins of scripts/setup-mlx-engines. Requests are short (max_tokens 2,
a ~100-token system prompt; ~290 for oMLX, whose first block is 256 tokens): CPU prefill is about
10 tokens/s on 2 quiet cores (measured here under a load average of 16: 187 tokens took 116 s).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mlx_engines import MLX_ENGINES, case, serve

from pytest_asiai import cli
from pytest_asiai.engines import family_for
from pytest_asiai.engines.detect import detect
from pytest_asiai.engines.processes import matches
from pytest_asiai.wire.client import StreamingClient, Timeouts
from pytest_asiai.wire.records import RequestRecord

#: family → (version, where detection reads it): the pins of scripts/setup-mlx-engines.
EXPECTED = {
    "mlxlm": ("0.32.2", "process"),  # no endpoint says it: the venv's mlx-lm distribution
    "rapidmlx": ("0.16.10", "http"),  # /metrics rapid_mlx_build_info
    "vllm_mlx": ("0.6.0", "process"),  # no /version; /openapi.json says a stale 0.4.1
    "vmlx": ("1.6.81", "http"),  # /openapi.json info.version (vmlx_engine.__version__)
    "omlx": ("0.7.0", "http"),  # /api/status version (omlx._version, = flyto-mlx 0.7.0)
}

WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()
USERS = ("Name one primary colour.", "What is the capital of France?", "Name a large ocean.")


def system_prompt(words: int) -> str:
    body = " ".join(WORDS[i % len(WORDS)] for i in range(words))
    return f"You are a terse assistant for a benchmark harness. Answer in one short sentence. Reference list: {body}."


@pytest.fixture(scope="module", params=MLX_ENGINES)
def live(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """One running server per family, shared by this module's tests."""
    with serve(request.param) as base_url:
        yield request.param, base_url


def test_detect_names_the_family_and_its_version(live: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    name, url = live
    version, source = EXPECTED[name]
    assert cli.main(["detect", url]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{url}: {name} {version}"
    found = detect(url, chat=True, model=case(name).model_id)  # mlx-lm may list no model
    family = found.family
    assert (found.kind, found.version, found.version_source) == (name, version, source), found.evidence
    assert found.recognised and found.pid is not None and matches(family.process_patterns, found.command)
    assert found.capabilities["health"] == family.health_path
    stream = found.stream
    assert stream is not None and stream["ok"], stream
    assert stream["usage_chunk"] is True and stream["reasoning_seen"] is False and stream["timings"] is False
    if name in ("mlxlm", "omlx"):  # they report cached tokens even when there are none
        assert stream["cached_field"] == family.cached_field
    else:  # Rapid-MLX and vMLX omit the details on a miss; vLLM-MLX never reports them
        assert stream["cached_field"] is None


def _chat(client: StreamingClient, model: str, system: str, user: str) -> RequestRecord:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": 2,
        "temperature": 0.0,
        "stream_options": {"include_usage": True},
    }
    record = client.chat(body)
    assert record.ok, record.error
    return record


def _cache_stats(http: httpx.Client, url: str) -> dict[str, Any]:
    """vLLM-MLX's own counters of its system-prompt KV cache."""
    stats: dict[str, Any] = http.get(f"{url}/v1/cache/stats").json()["engine_cache"]["system_kv_cache"]
    return stats


def test_true_cold_method_empties_the_cache(live: tuple[str, str]) -> None:
    name, url = live
    family = family_for(name)
    model = case(name).model_id or "smollm2-135m"
    # ~300 tokens for oMLX (one 256-token block) and vLLM-MLX, whose TTFT is the client's only evidence
    # (with OpenBLAS a ~110-token prompt's reuse saved 1.2 of 2.7 s: not half); ~110 for the others.
    system = system_prompt(140 if family.cache_block_tokens == 256 or name == "vllm_mlx" else 40)
    timeouts = Timeouts(connect_s=5.0, deadline_s=300.0)
    with StreamingClient(url, timeouts=timeouts) as client, httpx.Client(timeout=60, trust_env=False) as http:
        first = _chat(client, model, system, USERS[0])
        time.sleep(case(name).pause_s)  # oMLX stores its blocks after the response (engines-mlx.toml)
        warm = _chat(client, model, system, USERS[1])
        hit = warm.cached_tokens
        if name == "vllm_mlx":  # reuse happens but is never reported: its own stats show it
            assert hit is None and warm.cached_source is None
            assert _cache_stats(http, url)["counters"]["hits"] >= 1
            assert warm.ttft_ms is not None and first.ttft_ms is not None and warm.ttft_ms < first.ttft_ms / 2
        else:
            assert hit is not None and hit >= 64, (hit, warm.prompt_tokens)
            block = family.cache_block_tokens
            assert block is None or hit % block == 0, hit
        if family.cold_method == "endpoint":
            assert family.reset_cache(http, url, model) == "endpoint"
            cold = _chat(client, model, system, USERS[2])
        else:
            assert family.cold_method == "salt" and family.reset_cache(http, url, model) is None
            # A fresh salt every run: oMLX keeps its blocks on disk across runs (a fixed salt hit them).
            cold = _chat(client, model, f"{secrets.token_hex(8)}-r0 " + system, USERS[2])
        if name == "vllm_mlx":
            stats = _cache_stats(http, url)
            assert stats["counters"]["hits"] == 0 and stats["counters"]["misses"] == 1, stats
            assert cold.ttft_ms is not None and warm.ttft_ms is not None and cold.ttft_ms > 2 * warm.ttft_ms
        else:  # at most the chat template's shared head ("<|im_start|>system\n") stays cached
            assert (cold.cached_tokens or 0) <= 8, (cold.cached_tokens, hit)
    ttft = [None if r.ttft_ms is None else round(r.ttft_ms) for r in (first, warm, cold)]
    cached = f"cached {hit} then {cold.cached_tokens}"
    print(f"\n{name}: {family.cold_method}: prompt {first.prompt_tokens}, {cached}, TTFT ms {ttft}")

#!/usr/bin/env python3
"""How closely the client's figures agree with llama.cpp's own ``timings``, on the real llama-server.

For many requests (alternately cold, with a fresh salt and ``cache_prompt: false``, and warm, the
same request again) it compares:

* TTFT (request sent → first token chunk) with the engine's ``timings.prompt_ms``: the difference
  is what the engine does before prefill (HTTP parsing, templating, tokenizing) plus our client;
* TTFT minus the response-headers time with ``prompt_ms``: the headers arrive when the slot starts,
  so this isolates prefill;
* decode tok/s, (completion_tokens − 1) / (t_last − t_first), with ``timings.predicted_per_second``.

Prints median and spread (p10, p90, min, max) per kind. Usage::

    python benchmarks/client_vs_engine.py [--requests 30] [--prompt-tokens 2000] [--max-tokens 128]

Needs ./scripts/setup-engine (llama-server b11434 and SmolLM2-135M in ~/.cache/pytest-asiai).
Run it on a quiet machine: on 2 cores, anything else running shows up in every figure.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pytest_asiai.agentic.prompts import estimate_words, text
from pytest_asiai.config.matrix import Case, ManagedSpec, default_cache_dir
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.measure import metrics
from pytest_asiai.wire.client import StreamingClient
from pytest_asiai.wire.records import RequestRecord

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def llama_case(ctx: int) -> Case:
    cache = Path(default_cache_dir())
    server, model = cache / "bin" / "llama-server", cache / "models" / MODEL
    for path in (server, model):
        if not path.exists():
            sys.exit(f"{path} is missing: run ./scripts/setup-engine first")
    command = (
        str(server), "--model", str(model), "--alias", "smollm2", "--host", "{host}", "--port", "{port}",
        "--threads", "2", "--ctx-size", str(ctx), "--parallel", "1",
    )  # fmt: skip
    return Case(
        engine="llamacpp",
        model="smollm2",
        mtp="off",
        kind="llamacpp",
        model_id="smollm2",
        managed=ManagedSpec(command=command, health_path="/health", startup_timeout_s=120),
    )


def body(system: str, user: str, max_tokens: int, cold: bool) -> dict[str, object]:
    out: dict[str, object] = {
        "model": "smollm2",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
    }
    if cold:
        out["cache_prompt"] = False
    return out


def spread(values: Sequence[float]) -> str:
    if not values:
        return "n=0"
    p = metrics.percentile
    return (
        f"n={len(values):3d}  median {p(values, 50):9.3f}  p10 {p(values, 10):9.3f}  p90 {p(values, 90):9.3f}  "
        f"min {min(values):9.3f}  max {max(values):9.3f}"
    )


def report(kind: str, records: list[RequestRecord]) -> None:
    ok = [r for r in records if r.ok and r.timings]
    overhead = [v for r in ok if (v := metrics.ttft_overhead_ms(r)) is not None]
    prefill_only = [
        r.ttft_ms - r.headers_ms - p
        for r in ok
        if r.ttft_ms is not None and r.headers_ms is not None and (p := metrics.engine_prefill_ms(r)) is not None
    ]
    ratio = [
        c / e
        for r in ok
        if (c := metrics.decode_tok_s(r)) is not None and (e := metrics.engine_decode_tok_s(r)) is not None and e > 0
    ]
    finishes = ", ".join(f"{k}: {v}" for k, v in sorted(Counter(str(r.finish_reason) for r in ok).items()))
    print(f"\n{kind}: {len(ok)} requests (prompt {ok[0].prompt_tokens if ok else '?'} tokens; finish {finishes})")
    print(f"  completion tokens                {spread([float(r.completion_tokens or 0) for r in ok])}")
    print(f"  TTFT ms                          {spread([r.ttft_ms for r in ok if r.ttft_ms is not None])}")
    print(f"  engine prompt_ms                 {spread([v for r in ok if (v := metrics.engine_prefill_ms(r))])}")
    print(f"  TTFT - prompt_ms (ms)            {spread(overhead)}")
    print(f"  TTFT - headers - prompt_ms (ms)  {spread(prefill_only)}")
    print(f"  client decode tok/s              {spread([v for r in ok if (v := metrics.decode_tok_s(r))])}")
    print(f"  engine predicted_per_second      {spread([v for r in ok if (v := metrics.engine_decode_tok_s(r))])}")
    print(f"  client / engine decode ratio     {spread(ratio)}")
    if len(ok) < len(records):
        print(f"  failed or without timings: {len(records) - len(ok)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="requests in total (half cold, half warm)")
    parser.add_argument("--prompt-tokens", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--ctx", type=int, default=8192)
    args = parser.parse_args()
    manager = EngineManager(Path(tempfile.mkdtemp(prefix="asiai-bench-")))
    engine = manager.ensure(llama_case(args.ctx))
    user = text("X", estimate_words(args.prompt_tokens // 5, 1.45))
    system_words = estimate_words(args.prompt_tokens * 4 // 5, 1.45)
    cold: list[RequestRecord] = []
    warm: list[RequestRecord] = []
    try:
        with StreamingClient(engine.base_url) as client:
            client.chat(body("warm-up", "Say hello.", 8, cold=True))  # first-request effects are not ours
            for _ in range(max(1, args.requests // 2)):
                system = f"{secrets.token_hex(6)} " + text("A", system_words)
                cold.append(client.chat(body(system, user, args.max_tokens, cold=True)))
                warm.append(client.chat(body(system, user, args.max_tokens, cold=False)))
                print(".", end="", flush=True)
    finally:
        manager.stop_all()
    report("cold (salted, cache_prompt: false)", cold)
    report("warm (identical request again)", warm)


if __name__ == "__main__":
    main()

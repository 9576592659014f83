#!/usr/bin/env python3
"""Should the default managed llama-server run with its host-RAM prompt cache off? (issue 15 item 5e)

Starts two llama-servers side by side, the default engines.toml command and the same with
``--cache-ram 0`` (llama.cpp b11434: the host-RAM prompt cache size in MiB, 0 disables it), and
sends both the same requests alternately: cold ones (a fresh salt each, ``cache_prompt: false``, as
the cold phases do) and the identical request again (warm). Prints, per server, cold and warm TTFT,
TTFT − ``timings.prompt_ms`` (the engine's work outside its prefill timer, where the cache
bookkeeping shows), the cached tokens of the warm requests, and the server's RSS at the start and
after every request (psutil, the process tree).

Usage: ``python benchmarks/llama_prompt_cache.py [--requests 20] [--prompt-tokens 1000]``.
Needs ./scripts/setup-engine. On 2 cores, other work shows up in every figure: compare the arms.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

import psutil

from pytest_asiai.agentic.prompts import estimate_words, text
from pytest_asiai.config.matrix import Case, ManagedSpec, default_cache_dir
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.measure import metrics
from pytest_asiai.wire.client import StreamingClient
from pytest_asiai.wire.records import RequestRecord

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def case(name: str, extra: tuple[str, ...]) -> Case:
    cache = Path(default_cache_dir())
    server, model = cache / "bin" / "llama-server", cache / "models" / MODEL
    for path in (server, model):
        if not path.exists():
            sys.exit(f"{path} is missing: run ./scripts/setup-engine first")
    command = (
        str(server), "--model", str(model), "--alias", "smollm2", "--host", "{host}", "--port", "{port}",
        "--threads", "2", "--ctx-size", "8192", "--parallel", "1", "--metrics", *extra,
    )  # fmt: skip
    return Case(
        engine=name, model="smollm2", mtp="off", kind="llamacpp", model_id="smollm2",
        managed=ManagedSpec(command=command, health_path="/health", startup_timeout_s=180),
    )  # fmt: skip


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
    except psutil.Error:
        return None


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


def med(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f}" if values else "       —"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20, help="cold + warm pairs per server")
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    arms = {"cache on (default)": (), "--cache-ram 0": ("--cache-ram", "0")}
    # One manager per arm: a manager stops every other engine it started (one engine at a time).
    logs = Path(tempfile.mkdtemp(prefix="asiai-cache-"))
    managers = {a: EngineManager(logs / f"arm{i}") for i, a in enumerate(arms)}
    user = text("X", estimate_words(args.prompt_tokens // 5, 1.45))
    words = estimate_words(args.prompt_tokens * 4 // 5, 1.45)
    records: dict[str, dict[str, list[RequestRecord]]] = {a: {"cold": [], "warm": []} for a in arms}
    rss: dict[str, list[float | None]] = {a: [] for a in arms}
    try:
        engines = {a: managers[a].ensure(case(f"llamacpp{i}", extra)) for i, (a, extra) in enumerate(arms.items())}
        clients = {a: StreamingClient(e.base_url) for a, e in engines.items()}
        for a, client in clients.items():
            client.chat(body("warm-up", "Say hello.", 4, cold=True))
            rss[a].append(rss_mb(engines[a].pid))
        for i in range(args.requests):
            system = f"{secrets.token_hex(6)} " + text("A", words)
            order = list(arms) if i % 2 == 0 else list(reversed(arms))
            for a in order:
                records[a]["cold"].append(clients[a].chat(body(system, user, args.max_tokens, cold=True)))
                records[a]["warm"].append(clients[a].chat(body(system, user, args.max_tokens, cold=False)))
                rss[a].append(rss_mb(engines[a].pid))
            print(".", end="", flush=True)
        for client in clients.values():
            client.close()
    finally:
        for manager in managers.values():
            manager.stop_all()
    print(f"\n{args.requests} cold + warm pairs per server, prompt ≈{args.prompt_tokens} tokens, medians (ms)")
    print(
        f"{'server':20s} {'cold TTFT':>9s} {'cold −pr':>9s} {'warm TTFT':>9s} {'warm −pr':>9s} {'cached':>7s}  RSS MB"
    )
    for a in arms:
        cold, warm = records[a]["cold"], records[a]["warm"]
        failed = sum(not r.ok for r in cold + warm)
        ttft = {k: [r.ttft_ms for r in v if r.ok and r.ttft_ms is not None] for k, v in records[a].items()}
        over = {
            k: [x for r in v if r.ok and (x := metrics.ttft_overhead_ms(r)) is not None] for k, v in records[a].items()
        }
        cached = [float(r.cached_tokens) for r in warm if r.ok and r.cached_tokens is not None]
        memory = [m for m in rss[a] if m is not None]
        mem = f"{memory[0]:.0f} → {memory[-1]:.0f} (max {max(memory):.0f})" if memory else "not measured"
        print(
            f"{a:20s} {med(ttft['cold'])} {med(over['cold'])} {med(ttft['warm'])} {med(over['warm'])}"
            f" {med(cached)[-7:]}  {mem}" + (f"  ({failed} failed)" if failed else "")
        )


if __name__ == "__main__":
    main()

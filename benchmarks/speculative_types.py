"""Does a speculative type pay off for SmolLM2-135M on this CPU? Prints decode rate and draft acceptance.

    python benchmarks/speculative_types.py [LLAMA_SERVER] [MODEL] [--words-system N] [--words-user N]

For each setting (off, the same-model draft the demo used, and llama.cpp's draft-free n-gram types)
it starts the server, sends the demo's kind of request (system prompt A + user message X from
pytest_asiai/agentic/prompts.py, temperature 0, 64 tokens) twice (cold, then warm), and prints the engine's own
``timings``: decode tok/s (``predicted_per_second``), ``draft_n`` and ``draft_n_accepted``. Acceptance
does not depend on machine load; the decode rate does (compare settings within one run only).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import time
from pathlib import Path

import httpx

from pytest_asiai.agentic.prompts import text
from pytest_asiai.config.matrix import default_cache_dir

SETTINGS: dict[str, list[str]] = {
    "off": [],
    "draft-simple (same model)": ["--model-draft", "{model}", "--spec-type", "draft-simple", "--spec-draft-n-max", "4"],
    "ngram-simple": ["--spec-type", "ngram-simple"],
    "ngram-mod": ["--spec-type", "ngram-mod"],
    "ngram-map-k": ["--spec-type", "ngram-map-k"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(server: str, model: str, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [server, "--model", model, "--host", "127.0.0.1", "--port", str(port), "--threads", "2"]
    args += ["--ctx-size", "8192", "--parallel", "1", *[a.replace("{model}", model) for a in extra]]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{server} {' '.join(extra)} exited with {proc.returncode}")
        time.sleep(0.5)
    raise SystemExit("server did not become healthy")


def ask(url: str, system: str, user: str) -> dict[str, float]:
    body = {
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": 64,
        "temperature": 0.0,
    }
    timings: dict[str, float] = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=3600).json()["timings"]
    return timings


def main() -> None:
    cache = Path(default_cache_dir())
    p = argparse.ArgumentParser()
    p.add_argument("server", nargs="?", default=str(cache / "bin" / "llama-server"))
    p.add_argument("model", nargs="?", default=str(cache / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--words-system", type=int, default=700)
    p.add_argument("--words-user", type=int, default=180)
    p.add_argument("--only", action="append", default=[], help="run only these settings")
    args = p.parse_args()
    system, user = text("A", args.words_system), text("X", args.words_user)
    print(f"{'setting':28} {'run':5} {'decode tok/s':>12} {'draft_n':>8} {'accepted':>8} {'acceptance':>10}")
    for name, extra in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        proc, url = start(args.server, args.model, extra)
        try:
            for run in ("cold", "warm"):
                t = ask(url, system, user)
                n, ok = int(t.get("draft_n", 0)), int(t.get("draft_n_accepted", 0))
                rate = f"{ok / n:.2f}" if n else "-"
                print(f"{name:28} {run:5} {t['predicted_per_second']:12.1f} {n:8d} {ok:8d} {rate:>10}", flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()

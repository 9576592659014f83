"""Rebuild seed 001's published tier table (campaign 2026-06-03) as asiai ``agentic-v4`` recordings.

Run ``python tests/data/seed001/rebuild.py`` to regenerate the 18 ``*.json`` files beside it. The
figures in ``ROWS`` are the published table's, cell for cell; everything else is this project's
reconstruction (see README.md here): 5 repeats of asiai's 8 phases per row, each warm run decoding at
the published ``dec`` except one at ``peak``, every long-context run at ``50K``, every warm run at
the published TTFT and t/s/W, prefix tests caching the published reuse fraction, and just enough
degenerate answers for the published valid %. A blank cell of the table ("—") is a null here.
"""

# ruff: noqa: E501  (the published table, one row a line)
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
REPEATS = 5
STARTED_AT = 1780473600  # 2026-06-03 08:00 UTC
SYSTEM_TOKENS, USER_TOKENS, LONG_TOKENS = 7528, 2, 55837
MAX_TOKENS, LONG_MAX_TOKENS = 400, 200
THINKING_OFF = {"chat_template_kwargs": {"enable_thinking": False}}
GOOD_TEXT = (
    "The function reads the configuration file, validates each key against the schema, merges the "
    "defaults, and returns a frozen settings object; errors name the file, the key and the reason so "
    "that a user can fix the input without reading a traceback."
)
BAD_TEXT = " ".join(["loop"] * 60)

MACHINES = {
    "m5": {"hw_chip": "Apple M5 Max", "machine_model": "Mac17,7", "ram_gb": 128, "cpu_cores": 18},
    "m4": {"hw_chip": "Apple M4 Pro", "machine_model": "Mac16,11", "ram_gb": 64, "cpu_cores": 14},
}


@dataclass(frozen=True)
class Row:
    """One published row: machine, model, engine, version, MTP, then the table's cells (None: "—")."""

    machine: str
    model: str
    engine: str
    version: str
    mtp: bool
    dec: float
    peak: float | None
    long: float | None
    ttft: int
    reuse: float | None
    tsw: float | None
    ram_gb: float | None
    valid: int
    tier: str


# fmt: off
ROWS = (
    Row("m5", "Qwopus3.6-35B-A3B-Q4_K_S", "llamacpp", "b9430", True, 123.3, 127.5, 83.8, 67, 0.8, 1.590, None, 100, "winner"),
    Row("m5", "Qwen3.6-35B-A3B-Q4_K_S", "llamacpp", "b9430", True, 118.3, 123.5, 82.9, 62, 0.8, 1.513, None, 100, "winner"),
    Row("m5", "Qwopus3.6-35B-A3B-Q4_K_S", "llamacpp", "b9430", False, 105.7, 108.3, 76.1, 63, 0.8, 1.507, None, 100, "winner"),
    Row("m5", "Qwen3.6-35B-A3B-Q4_K_S", "llamacpp", "b9430", False, 85.5, 90.8, 66.7, 59, 0.8, 1.403, None, 100, "winner"),
    Row("m5", "Qwen3.6-27B-Q4_K_XL", "llamacpp", "b9430", True, 28.0, 29.5, 22.9, 118, 0.8, 0.378, 32.2, 100, "viable"),
    Row("m5", "Qwopus3.6-27B-Q4_K_XL", "llamacpp", "b9430", True, 26.7, 29.8, 22.0, 118, 0.8, 0.367, 31.5, 100, "viable"),
    Row("m5", "Qwopus3.6-27B-Q4_K_XL", "llamacpp", "b9430", False, 25.9, 27.1, 20.8, 110, 0.8, 0.342, 28.4, 100, "viable"),
    Row("m5", "Qwen3.6-27B-Q4_K_XL", "llamacpp", "b9430", False, 23.8, 24.0, 19.2, 111, 0.8, 0.340, 28.9, 100, "viable"),
    Row("m5", "Qwopus3.6-27B-MLX-4bit", "mlxlm", "0.31.3", False, 29.2, 29.3, 24.3, 600, 1.0, 0.461, 26.4, 100, "reserve"),
    Row("m5", "Qwen3.6-27B-MLX-4bit", "rapidmlx", "0.6.71", False, 20.6, 20.7, 17.9, 798, None, 0.357, None, 85, "reserve"),
    Row("m5", "Qwen3.6-27B-MLX-4bit", "omlx", "0.4.0", False, 20.0, 20.2, 17.5, 2150, 0.82, 0.346, 26.7, 100, "reserve"),
    Row("m5", "Qwen3.6-27B-MLX-4bit", "mlx_vlm", "0.6.0", True, 41.0, None, None, 10879, 0.0, None, None, 75, "eliminated"),
    Row("m5", "Qwen3.6-27B-MLX-4bit", "mlx_vlm", "0.6.0", False, 31.9, None, 26.0, 9578, 0.0, None, None, 100, "eliminated"),
    Row("m5", "Qwen3.6-27B-MLX-4bit", "vllm_mlx", "0.3.0", False, 20.5, None, 18.1, 9578, None, None, 24.3, 100, "eliminated"),
    Row("m4", "Qwen3.6-35B-A3B-Q5_K_XL", "llamacpp", "b9430", True, 44.6, 50.7, 32.6, 143, 0.8, 1.557, 33.0, 100, "winner"),
    Row("m4", "Qwen3.6-35B-A3B-Q5_K_XL", "llamacpp", "b9430", False, 36.3, 45.6, 29.6, 133, 0.8, 1.553, 30.8, 100, "winner"),
    Row("m4", "Qwen3.6-27B-Q5_K_XL", "llamacpp", "b9430", False, 10.4, 10.4, 7.2, 397, 0.8, 0.279, 31.9, 100, "viable"),
    Row("m4", "Qwen3.6-27B-Q5_K_XL", "llamacpp", "b9430", True, 9.7, 9.8, 7.5, 409, 0.8, 0.272, 35.4, 100, "viable"),
)
# fmt: on

PHASES = (
    "cold",
    "warm",
    "prefix-test-1",
    "prefix-test-2",
    "prefix-test-3",
    "cold-prefix",
    "long-context",
    "long-prefix",
)


def model_name(row: Row) -> str:
    return f"{row.model}-MTP" if row.mtp else row.model


def file_name(index: int, row: Row) -> str:
    return f"{index:02d}-{row.machine}-{row.engine}-{row.model.lower()}{'-mtp' if row.mtp else ''}.json"


def _decode(row: Row, phase: str, repeat: int) -> float:
    """Warm: the published dec, one repeat at peak; long phases: the 50K figure; others a bit below dec."""
    if phase == "warm":
        return row.peak if repeat == REPEATS - 1 and row.peak is not None else row.dec
    if phase.startswith("long"):
        return row.long if row.long is not None else round(row.dec * 0.6, 1)  # long-prefix of a broken row
    return round(row.dec * 0.97, 1)


def _ttft(row: Row, phase: str) -> int:
    """Warm and long-prefix hit the cache (the published warm TTFT); prefix tests reuse when the row does."""
    cold = max(3300, 6 * row.ttft)
    if phase in ("warm", "long-prefix"):
        return row.ttft if phase == "warm" else 2 * row.ttft
    if phase.startswith("prefix-test"):
        return cold if row.reuse == 0.0 else int(0.3 * cold)
    return 20 * cold if phase == "long-context" else cold


def _cached(row: Row, phase: str, prompt: int) -> int | None:
    if row.reuse is None:
        return None  # the engine reports no cached_tokens (the table's blank reuse cell)
    if phase.startswith("prefix-test"):
        return round(row.reuse * prompt)
    if phase in ("warm", "long-prefix"):
        return prompt - 4
    return 0


def _broken(row: Row, phase: str) -> bool:
    """A blank 50K cell on a row that has a decode: its long-context requests failed (mlx_vlm + MTP)."""
    return phase == "long-context" and row.long is None


def _valid(row: Row, index: int) -> bool:
    """Failed requests count as invalid; the first requests beyond them, in execution order, are
    degenerate until the row's valid % is reached."""
    failed = REPEATS * sum(_broken(row, p) for p in PHASES)
    bad = round((100 - row.valid) / 100 * REPEATS * len(PHASES)) - failed
    return index >= bad


def _power(row: Row, decode: float, tokens: int) -> dict[str, float | None]:
    """asiai's decode-window power fields (docs/asiai-protocol.md §2.7), consistent with the published warm t/s/W."""
    if row.tsw is None:
        keys = ("gpu_watts", "soc_watts", "prefill_watts", "tok_s_per_watt", "tok_s_per_soc_watt")
        return {k: None for k in (*keys, "energy_per_token_j")}
    soc = round(row.dec / row.tsw, 2)
    gpu = round(0.85 * soc, 2)
    decode_s = (tokens - 1) / decode
    return {
        "gpu_watts": gpu,
        "soc_watts": soc,
        "prefill_watts": round(1.2 * soc, 2),
        "tok_s_per_watt": round(decode / gpu, 3),
        "tok_s_per_soc_watt": round(decode / soc, 3) if decode != row.dec else row.tsw,
        "energy_per_token_j": round(soc * decode_s / (tokens - 1), 4),
    }


def _rss(row: Row, phase: str) -> float | None:
    """Peak during the long-context phase; mlx-lm's lazy KV sits near 14.5 GB otherwise (seed's finding)."""
    if row.ram_gb is None:
        return None
    peak = round(row.ram_gb * 1024, 1)
    if phase == "long-context":
        return peak
    if row.engine in ("mlxlm", "omlx", "vllm_mlx"):
        return round(14.5 * 1024 if row.engine == "mlxlm" else 0.6 * peak, 1)
    return round(peak - 256, 1)


def run(row: Row, phase: str, repeat: int, index: int) -> dict[str, object]:
    long = phase.startswith("long")
    tokens = LONG_MAX_TOKENS if long else MAX_TOKENS
    prompt = LONG_TOKENS if long else SYSTEM_TOKENS + (2 if phase == "prefix-test-1" else 0)
    decode = _decode(row, phase, repeat)
    ttft = _ttft(row, phase)
    valid = _valid(row, index)
    if _broken(row, phase):
        return _failed(phase, repeat, prompt, tokens)
    return {
        "phase": phase,
        "repeat": repeat,
        "ttft_ms": ttft,
        "wall_total_ms": int(ttft + 1000 * tokens / decode),
        "completion_tokens": tokens,
        "prompt_tokens": prompt,
        "cached_tokens": _cached(row, phase, prompt),
        "decode_tok_s": decode,
        **_power(row, decode, tokens),
        "thermal_speed_limit": 100,
        "engine_rss_mb": _rss(row, phase),
        "engine_phys_footprint_mb": None,
        "kv_cache_tokens": None,
        "finish_reason": "length",
        "text": GOOD_TEXT if valid else BAD_TEXT,
        "reasoning_chars": 0,
        "sys_chars": 31500,
        "user_chars": 265000 if long else 8000,
        "max_tokens_requested": tokens,
        "error": None,
        "error_body": None,
    }


def _failed(phase: str, repeat: int, prompt: int, tokens: int) -> dict[str, object]:
    return {
        "phase": phase,
        "repeat": repeat,
        "ttft_ms": None,
        "wall_total_ms": 30000,
        "completion_tokens": 0,
        "prompt_tokens": prompt,
        "cached_tokens": None,
        "decode_tok_s": None,
        "finish_reason": None,
        "text": "",
        "reasoning_chars": 0,
        "max_tokens_requested": tokens,
        "error": "HTTP 500",
        "error_body": '{"error": {"message": "Metal command buffer failed"}}',
    }


def _footprint(runs: list[dict[str, object]]) -> dict[str, float | None]:
    rss = [r["engine_rss_mb"] for r in runs if isinstance(r.get("engine_rss_mb"), float)]
    warm = sorted(
        r["engine_rss_mb"] for r in runs if r["phase"] == "warm" and isinstance(r.get("engine_rss_mb"), float)
    )
    return {
        "engine_rss_peak_mb": max(rss) if rss else None,
        "engine_rss_warm_mb": warm[len(warm) // 2] if warm else None,
        "engine_phys_footprint_peak_mb": None,
    }


def document(row: Row) -> dict[str, object]:
    runs = [
        run(row, phase, repeat, repeat * len(PHASES) + i) for repeat in range(REPEATS) for i, phase in enumerate(PHASES)
    ]
    valid_pct = 100.0 * sum(r["text"] == GOOD_TEXT and not r["error"] for r in runs) / len(runs)
    return {
        "schema_version": "agentic-v4",
        "engine": row.engine,
        "model": model_name(row),
        "base_url": "http://127.0.0.1:8080",
        "started_at": STARTED_AT,
        "finished_at": STARTED_AT + 1800,
        "prefix_cache_reuse_verdict": "unknown" if row.reuse is None else ("no" if row.reuse == 0 else "yes"),
        "prefix_cache_reuse": {"reuse_fraction": row.reuse, "cache_source": None if row.reuse is None else "usage"},
        "quality_gates": {
            "duplicate_processes": [],
            "other_engines_resident": [],
            "output_validity": {"output_valid_pct": valid_pct},
        },
        "extra_body": THINKING_OFF,
        "repeats": REPEATS,
        "cold_warm_repeats": True,
        "footprint": _footprint(runs),
        "runs": runs,
        **MACHINES[row.machine],
        "os_version": "26.4",
        "powermode": 2,
        "engine_version": row.version,
        "bench_mode": "agentic",
    }


def main() -> None:
    for old in HERE.glob("*.json"):
        old.unlink()
    for i, row in enumerate(ROWS, start=1):
        text = json.dumps(document(row), indent=1) + "\n"
        (HERE / file_name(i, row)).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

"""Every phase of the agentic protocol against the scripted test engine, with exact expectations.

The scripted engine's tokenizer counts whitespace-separated words and its prompt cache is one slot
with llama.cpp's semantics (module docstring of scripted_engine.py), so every phase's prompt and
cached token counts are predictable exactly. The Agentic object is driven directly (no pytester)
to keep these tests fast; test_plugin.py covers the same object through pytest itself.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai.agentic.protocol import PHASE_NAMES, PROFILES, phase, phase_names_for
from pytest_asiai.agentic.results import Agentic
from pytest_asiai.agentic.runner import LiveSource
from pytest_asiai.config.matrix import Case, ManagedSpec
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineManager

SMOKE = PROFILES["smoke"]
LIVE_PHASES = phase_names_for(managed=False)
TESTS = Path(__file__).resolve().parent

MakeAgentic = Callable[..., Agentic]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[MakeAgentic]:
    """Build Agentic objects on a case; every one is closed (and its engine stopped) afterwards."""
    made: list[tuple[Agentic, EngineManager]] = []

    def build(
        base_url: str | None = None,
        *,
        runs: int = 1,
        planned: tuple[str, ...] = (),
        managed: ManagedSpec | None = None,
        **case_fields: Any,
    ) -> Agentic:
        fields: dict[str, Any] = {"kind": "llamacpp", "model_id": "m", "deadline_s": 20.0} | case_fields
        case = Case(engine="scripted", model="m", mtp="off", base_url=base_url, managed=managed, **fields)
        manager = EngineManager(tmp_path / "logs")
        events: list[dict[str, Any]] = []
        handle = EngineHandle(case, manager, lambda h: None)
        agentic = Agentic(LiveSource(handle, runs=runs, profile="smoke", planned=planned, emit=events.append))
        agentic.events = events  # type: ignore[attr-defined]
        made.append((agentic, manager))
        return agentic

    yield build
    for agentic, manager in made:
        agentic.close()
        manager.stop_all()


def run_all(agentic: Agentic) -> dict[str, Any]:
    return {name: agentic.phase(name) for name in agentic.phase_names}


def cached(agentic: Agentic) -> dict[str, list[int | None]]:
    return {name: [r.record.cached_tokens for r in agentic.results[name].runs] for name in agentic.phase_names}


def prompt_of(engine: ScriptedEngine, i: int) -> int:
    return engine.count_prompt_tokens(engine.requests[i]["messages"])


def system_prefix(engine: ScriptedEngine, i: int) -> int:
    """Tokens a same-system request can reuse: system marker, system words, end marker, user marker."""
    return engine.count_tokens(engine.requests[i]["messages"][0]["content"]) + 3


def results_of(agentic: Agentic, key: str) -> dict[str, Any]:
    events = agentic.events  # type: ignore[attr-defined]
    found = [e["value"] for e in events if e["type"] == "result" and e["section"] == "protocol" and e["key"] == key]
    assert found, f"no protocol/{key} result emitted"
    return found[-1]


# ------------------------------------------------------------------------------ cache behaviours


def test_every_phase_meets_its_designed_cache_state(make, scripted_engine):
    agentic = make(scripted_engine.base_url)
    results = run_all(agentic)
    assert list(agentic.phase_names) == list(LIVE_PHASES)
    assert all(r.ok for r in results.values()), [r.failure_message() for r in results.values()]
    p = [prompt_of(scripted_engine, i) for i in range(8)]
    sys_a = system_prefix(scripted_engine, 0)
    assert cached(agentic) == {
        "cold": [0],  # cache_prompt: false
        "warm": [p[1] - 1],  # llama.cpp re-evaluates the last token
        "prefix-test-1": [sys_a],
        "prefix-test-2": [sys_a],  # one slot: only the system prompt survives prefix-test-1
        "prefix-test-3": [sys_a],
        "cold-prefix": [0],
        "long-context": [1],  # the slot holds system B: only the template's system marker matches
        "long-prefix": [p[7] - 1],
    }
    users = [r["messages"][1]["content"].split()[0] for r in scripted_engine.requests]
    assert users == ["[USER-X", "[USER-X", "[USER-Y", "[USER-X", "[USER-Z", "[USER-X", "[USER-L", "[USER-L"]
    assert scripted_engine.requests[0]["messages"] == scripted_engine.requests[1]["messages"]
    assert [r.get("cache_prompt") for r in scripted_engine.requests] == [False, *[None] * 4, False, None, None]


def test_prefix_cache_off_reports_nothing_cached(make, scripted_engine):
    scripted_engine.behaviour = Behaviour(prefix_cache=False)
    agentic = make(scripted_engine.base_url)
    run_all(agentic)
    assert cached(agentic) == {name: [0] for name in LIVE_PHASES}


def test_hybrid_engine_reuses_only_identical_prompts(make, scripted_engine):
    scripted_engine.behaviour = Behaviour(cross_user_reuse=False)
    agentic = make(scripted_engine.base_url)
    run_all(agentic)
    p = [prompt_of(scripted_engine, i) for i in range(8)]
    expected = {name: [0] for name in LIVE_PHASES} | {"warm": [p[1] - 1], "long-prefix": [p[7] - 1]}
    assert cached(agentic) == expected


def test_cached_prefix_makes_ttft_far_below_cold(make, scripted_engine):
    scripted_engine.behaviour = Behaviour(prefill_ms_per_token=0.2)
    agentic = make(scripted_engine.base_url)
    cold = agentic.phase("cold").ttft_ms
    assert cold is not None and cold > 200  # ~1250 uncached tokens x 0.2 ms
    for name in ("warm", "long-prefix"):  # everything cached
        assert agentic.phase(name).ttft_ms < cold / 3, name
    for name in ("prefix-test-1", "prefix-test-2", "prefix-test-3"):  # only the ~255 user tokens are new
        assert agentic.phase(name).ttft_ms < cold / 2, name
    assert agentic.phase("cold-prefix").ttft_ms > cold / 2
    assert agentic.phase("long-context").ttft_ms > 2 * cold


def test_a_pause_after_each_request_lets_an_asynchronously_stored_cache_land(make, scripted_engine):
    """oMLX stores a finished request's cache blocks on a worker thread after the response
    (omlx/scheduler.py ``_async_store_cache_worker``): a request sent at once misses them (live, same
    ~380-token request twice: 4 of 5 back-to-back sends missed, none of 6 after 0.25 to 2 s).
    engines.toml ``pause_s`` waits after every request, as asiai does (``sleep(pause)``, 2 s)."""
    scripted_engine.behaviour = Behaviour(store_delay_ms=150)
    hasty = make(scripted_engine.base_url, planned=("warm",))
    assert [r.record.cached_tokens for r in hasty.phase("warm").runs] == [0]
    patient = make(scripted_engine.base_url, planned=("warm",), pause_s=0.4)
    (cold,), (warm,) = patient.phase("cold").runs, patient.phase("warm").runs
    assert warm.record.cached_tokens == warm.record.prompt_tokens - 1
    assert warm.record.started_at - cold.record.started_at >= 0.4 + cold.record.total_ms / 1000


# ------------------------------------------------------------------------------------ prompt sizes


def test_prompts_are_sized_in_engine_tokens_within_5_percent(make, scripted_engine):
    agentic = make(scripted_engine.base_url)
    run_all(agentic)
    calibration = agentic.calibration
    assert calibration is not None and calibration.method == "tokenize"
    corpus = calibration.corpus
    for which, target in {"A": 1000, "B": 1000, "X": 250, "Y": 250, "Z": 250}.items():
        size = calibration.sizes[which]
        sent = corpus.user(which) if which in "XYZ" else corpus.system(which)
        assert size.target == target and size.tokens == scripted_engine.count_tokens(sent)  # counted, exactly
        assert abs(size.tokens - target) <= 0.005 * target
    long_prompt = agentic.phase("long-context").prompt_tokens
    assert long_prompt == pytest.approx(SMOKE.long_tokens, rel=0.05)
    cold_prompt = agentic.phase("cold").prompt_tokens
    assert cold_prompt == pytest.approx(SMOKE.system_tokens + SMOKE.user_tokens, rel=0.05)
    reported = results_of(agentic, "calibration")
    assert reported["method"] == "tokenize" and reported["context"] == scripted_engine.n_ctx
    assert reported["context_source"] == "/props default_generation_settings.n_ctx"


def test_without_tokenize_sizes_come_from_probe_prompt_tokens(make, scripted_engine):
    scripted_engine.set_route("POST", "/tokenize", 404, {"error": {"message": "no tokenize here"}})
    agentic = make(scripted_engine.base_url)
    assert agentic.phase("cold").ok
    calibration = agentic.calibration
    assert calibration.method == "prompt_tokens" and calibration.note == "no usable POST /tokenize"
    # Markers and salt (6), less what the per-character fit moves into the texts (tests/test_calibrate.py).
    assert calibration.template_tokens == pytest.approx(3, abs=3)
    probes = scripted_engine.requests[:2]
    assert [p["max_tokens"] for p in probes] == [1, 1]
    assert [m["role"] for m in probes[0]["messages"]] == ["system", "user"]  # shaped like the protocol's
    assert agentic.phase("cold").prompt_tokens == pytest.approx(SMOKE.system_tokens + SMOKE.user_tokens, rel=0.05)
    assert agentic.phase("long-context").prompt_tokens == pytest.approx(SMOKE.long_tokens, rel=0.05)


def test_without_tokenize_or_usage_sizes_are_estimated_and_say_so(make, scripted_engine):
    scripted_engine.set_route("POST", "/tokenize", 404, {"error": {"message": "no"}})
    scripted_engine.behaviour = Behaviour(send_usage=False)
    agentic = make(scripted_engine.base_url)
    cold = agentic.phase("cold")
    assert agentic.calibration.method == "estimate"
    assert "no usage.prompt_tokens" in agentic.calibration.note
    # Nothing the engine did not report is ever 0: tokens unknown, timing still measured.
    record = cold.records[0]
    assert cold.ok and record.ttft_ms is not None
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == (None, None, None)
    assert cold.decode_tok_s is None and cold.stats["prompt_tokens"]["n"] == 0


# --------------------------------------------------------------------------------- context window


def test_long_phases_fail_clearly_when_the_declared_context_is_too_small(make, scripted_engine):
    agentic = make(scripted_engine.base_url, context=3000)
    results = run_all(agentic)
    for name in ("long-context", "long-prefix"):
        message = results[name].failure_message()
        assert not results[name].ok and not results[name].runs
        assert f"{name} repeat 0: not sent: context too small" in message
        assert "the engine has 3000 (engines.toml context)" in message and "needs ≈4" in message
    assert all(results[n].ok for n in LIVE_PHASES if not phase(n).long)
    assert len(scripted_engine.requests) == 6


def test_context_from_props_stops_long_phases_before_sending(make, scripted_engine):
    scripted_engine.n_ctx = 3000
    agentic = make(scripted_engine.base_url)
    message = agentic.phase("long-context").failure_message()
    assert "the engine has 3000 (/props default_generation_settings.n_ctx)" in message
    assert len(scripted_engine.requests) == 6


def test_engine_http_400_names_the_context_needed(make, scripted_engine):
    scripted_engine.n_ctx = 3000
    scripted_engine.set_route("GET", "/props", 404, {"error": {"message": "no props"}})
    agentic = make(scripted_engine.base_url)
    result = agentic.phase("long-prefix")
    message = result.failure_message()
    assert "long-prefix repeat 0: http: HTTP 400: the request exceeds the available context size" in message
    assert "engine context unknown" in message and "needs ≈" in message
    assert agentic.phase("long-context").records[0].error_kind == "http"
    assert agentic.phase("prefix-test-3").ok


# ----------------------------------------------------------------------------- repeats and cold


def test_every_repeat_is_cold_and_statistics_cover_all_repeats(make, scripted_engine):
    agentic = make(scripted_engine.base_url, runs=3, planned=("warm",))
    warm = agentic.phase("warm")
    cold = agentic.phase("cold")
    assert [r.repeat for r in cold.runs] == [0, 1, 2]
    assert [r.record.cached_tokens for r in cold.runs] == [0, 0, 0]
    assert {r.cold_method for r in cold.runs} == {"salt+request"} and agentic.cold_method == "salt+request"
    assert [r.record.cached_tokens for r in warm.runs] == [r.record.prompt_tokens - 1 for r in warm.runs]
    salts = [r.prompt["salt"] for r in cold.runs]
    assert len(set(salts)) == 3 and [r.prompt["salt"] for r in warm.runs] == salts
    stats = cold.stats["ttft_ms"]
    assert stats["n"] == 3 and stats["min"] <= stats["median"] <= stats["max"] and stats["cv"] is not None
    assert results_of(agentic, "settings")["cold_method"] == "salt+request"


def test_salt_alone_keeps_cold_cold_without_a_cache_bypass(make, scripted_engine):
    agentic = make(scripted_engine.base_url, runs=2, kind="openai")
    run_all(agentic)
    cold = agentic.results["cold"]
    # Only the template's system marker can match a prompt that starts with a new salt.
    assert [r.record.cached_tokens for r in cold.runs] == [0, 1]
    assert [r.record.cached_tokens for r in agentic.results["cold-prefix"].runs] == [1, 1]
    assert {r.cold_method for r in cold.runs} == {"salt"} and "cache_prompt" not in scripted_engine.requests[0]
    system_a, system_b = (scripted_engine.requests[i]["messages"][0]["content"] for i in (0, 5))
    assert system_a.split()[0] != system_b.split()[0]


def test_extending_the_protocol_primes_each_repeat_first(make, scripted_engine):
    agentic = make(scripted_engine.base_url, runs=2, planned=("cold",))
    agentic.phase("cold")
    assert len(scripted_engine.requests) == 2
    warm = agentic.phase("warm")
    # Each repeat's warm follows a primer (that repeat's cold, resent unmeasured), so it still hits fully.
    assert [r.record.cached_tokens for r in warm.runs] == [r.record.prompt_tokens - 1 for r in warm.runs]
    assert agentic.primers == [{"repeat": r, "phase": "cold", "ok": True, "error": None} for r in (0, 1)]
    messages = [r["messages"] for r in scripted_engine.requests]
    assert len(messages) == 6 and messages[2] == messages[0] and messages[4] == messages[1]
    assert [len(p.runs) for p in agentic.results.values()] == [2, 2]


# ---------------------------------------------------------------------------- request contents


def test_thinking_setting_and_request_fields_are_sent_and_recorded(make, scripted_engine):
    request = {"chat_template_kwargs": {"foo": 1}, "max_tokens": 5, "top_k": 1, "temperature": 0.7}
    agentic = make(scripted_engine.base_url, thinking="off", request=request)
    run = agentic.phase("cold").runs[0]
    sent = scripted_engine.requests[0]
    assert sent["chat_template_kwargs"] == {"foo": 1, "enable_thinking": False}
    assert sent["max_tokens"] == SMOKE.max_tokens and sent["top_k"] == 1  # protocol keys win
    assert sent["temperature"] == 0.7  # a default the request may change
    assert run.sent == {
        k: v for k, v in sent.items() if k not in ("messages", "stream", "stream_options", "_received_ns")
    }
    settings = results_of(agentic, "settings")
    assert settings["thinking"] == "off" and settings["thinking_fields"] == {
        "chat_template_kwargs": {"enable_thinking": False}
    }
    assert settings["cold_fields"] == {"cache_prompt": False} and settings["profile"] == "smoke"


def test_output_budgets_follow_the_profile(make, scripted_engine):
    agentic = make(scripted_engine.base_url)
    run_all(agentic)
    budgets = {name: agentic.results[name].runs[0].max_tokens for name in LIVE_PHASES}
    assert budgets == {n: SMOKE.long_max_tokens if phase(n).long else SMOKE.max_tokens for n in LIVE_PHASES}
    assert [r["max_tokens"] for r in scripted_engine.requests] == list(budgets.values())
    assert all(r["temperature"] == 0.0 for r in scripted_engine.requests)
    last = scripted_engine.requests[0]["messages"][1]["content"].splitlines()[-1]
    assert last.startswith("Task: write a long, detailed answer")


# ------------------------------------------------------------------------------ stream shapes


def test_reasoning_first_splits_reasoning_and_content_tokens(make, scripted_engine):
    scripted_engine.behaviour = Behaviour(reasoning_tokens=10, decode_ms_per_token=2.0)
    agentic = make(scripted_engine.base_url)
    cold = agentic.phase("cold")
    record = cold.records[0]
    assert record.ttfc_ms - record.ttft_ms >= 10 * 2.0 * 0.9
    assert cold.stats["reasoning_tokens"]["median"] == 10
    assert cold.stats["content_tokens"]["median"] == SMOKE.max_tokens - 10
    assert cold.completion_tokens == SMOKE.max_tokens


def test_no_usage_chunk_leaves_token_counts_unknown(make, scripted_engine):
    scripted_engine.behaviour = Behaviour(send_usage=False)
    agentic = make(scripted_engine.base_url)
    warm = agentic.phase("warm")
    assert warm.ok and warm.cached_tokens is None and warm.prompt_tokens is None
    assert warm.stats["reasoning_tokens"]["n"] == 0 and warm.stats["ttft_ms"]["n"] == 1


def test_early_stop_is_recorded_as_measured(make, scripted_engine):
    scripted_engine.behaviour = Behaviour(completion_tokens=5)
    agentic = make(scripted_engine.base_url)
    warm = agentic.phase("warm")
    assert warm.ok and warm.completion_tokens == 5 and warm.records[0].finish_reason == "stop"
    assert warm.runs[0].max_tokens == SMOKE.max_tokens


def test_engine_timings_are_kept_beside_client_figures(make, scripted_engine):
    scripted_engine.behaviour = Behaviour(prefill_ms_per_token=0.05, decode_ms_per_token=1.0, send_timings=True)
    agentic = make(scripted_engine.base_url)
    cold = agentic.phase("cold")
    stats = cold.stats
    assert stats["engine_prefill_ms"]["median"] == pytest.approx(0.05 * cold.prompt_tokens)
    assert stats["ttft_overhead_ms"]["median"] >= 0
    # The scripted engine reports its script (63 gaps of 1 ms), not a measurement.
    assert stats["engine_decode_tok_s"]["median"] == pytest.approx(SMOKE.max_tokens / 63 * 1000)
    assert cold.decode_tok_s is not None and cold.decode_tok_s < 1100


# ------------------------------------------------------------------------------------ failures


@pytest.mark.parametrize(
    ("behaviour", "kind", "message"),
    [
        (Behaviour(http_500_after=3), "http", "HTTP 500: scripted failure"),
        (Behaviour(error_in_stream_after_tokens=2), "stream_error", "scripted stream error"),
        (Behaviour(disconnect_after_tokens=2), "disconnect", ""),
    ],
    ids=["http-500-after-3", "error-in-200-stream", "disconnect"],
)
def test_failed_requests_fail_their_phase_and_later_phases_still_run(make, scripted_engine, behaviour, kind, message):
    scripted_engine.behaviour = behaviour
    agentic = make(scripted_engine.base_url)
    results = run_all(agentic)
    failed = [n for n in LIVE_PHASES if not results[n].ok]
    assert failed == (list(LIVE_PHASES[3:]) if kind == "http" else list(LIVE_PHASES))
    assert len(scripted_engine.requests) == len(LIVE_PHASES)
    for name in failed:
        record = results[name].records[0]
        assert record.error_kind == kind and message in record.error
        assert f"{name} repeat 0: {kind}: " in results[name].failure_message()
        # Never a valid empty answer: a failed request adds nothing to the statistics.
        assert results[name].stats["ttft_ms"]["n"] == 0 and results[name].ttft_ms is None


def test_unreachable_engine_fails_every_phase_without_crashing(make):
    agentic = make("http://127.0.0.1:9")
    results = run_all(agentic)
    assert agentic.calibration.method == "estimate"
    assert all("connect" in results[n].failure_message() for n in LIVE_PHASES)


# ------------------------------------------------------------------------------- restart-prefix

SERVE = textwrap.dedent(
    """
    import asyncio, sys, threading
    sys.path.insert(0, {tests!r})
    port = int(sys.argv[1])
    _start_server = asyncio.start_server

    async def start_server(callback, host, _port, **kwargs):
        return await _start_server(callback, host, port, **kwargs)

    asyncio.start_server = start_server
    from scripted_engine import Behaviour, ScriptedEngine
    ScriptedEngine(Behaviour(prefill_ms_per_token=0.4)).start()
    threading.Event().wait()
    """
).format(tests=str(TESTS))


def managed_scripted_engine() -> ManagedSpec:
    """The scripted engine as a managed process (a restart loses its in-memory cache, like llama.cpp)."""
    return ManagedSpec(command=(sys.executable, "-c", SERVE, "{port}"), health_path="/health", startup_timeout_s=30)


def test_restart_prefix_on_a_managed_engine_meets_a_cold_cache(make):
    agentic = make(managed=managed_scripted_engine())
    assert agentic.phase_names == PHASE_NAMES
    results = run_all(agentic)
    assert all(r.ok for r in results.values()), [r.failure_message() for r in results.values()]
    restart, cold = results["restart-prefix"].runs[0], results["cold"].runs[0]
    assert restart.record.cached_tokens == 0 and restart.prompt == cold.prompt
    assert restart.record.ttft_ms > cold.record.ttft_ms / 2
    assert restart.record.ttft_ms > 5 * results["warm"].ttft_ms
    # The first cold request met an engine process launched for this session.
    assert cold.cold_method == "salt+request+restart" and agentic.cold_method == "salt+request+restart"
    assert results["cold-prefix"].runs[0].cold_method == "salt+request"


def test_restart_prefix_without_a_managed_engine_is_a_clear_failure(make, scripted_engine):
    agentic = make(scripted_engine.base_url)
    result = agentic.phase("restart-prefix")
    assert not result.ok and scripted_engine.requests == []
    assert "not managed by pytest-asiai" in result.failure_message()

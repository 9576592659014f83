"""Engine families: unit behaviour, and every family replayed from its recorded transcript.

A transcript (tests/transcripts/<family>.json) holds a family's response shapes: its metadata
endpoints, how it answers unknown endpoints, its stream dialect (reasoning field, usage chunk or
none, cached-token field, timings), an error body and its reset endpoints. The scripted test engine
serves them on loopback, so detection, version, the capability probe, the streaming client and the
cold reset run against each family's shapes. The five MLX families' transcripts are RECORDED: their
endpoints are the bodies the real servers answered, and their chat route replays the real stream
bytes in tests/data/mlx-captures/ (see its captures.json); the other families' shapes are documented.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai.config.matrix import Case, ManagedSpec
from pytest_asiai.engines import DETECTION_ORDER, FAMILIES, SEED_PANEL, family_for, prometheus
from pytest_asiai.engines.detect import detect
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.llamacpp import parse_build_info
from pytest_asiai.engines.managed import EngineManager, EngineStartError, ManagedEngine
from pytest_asiai.engines.probe import port_of, server_root
from pytest_asiai.engines.processes import argv_of, command_words, engine_processes, launcher, matches
from pytest_asiai.measure.metrics import tokens_per_chunk
from pytest_asiai.wire.client import StreamingClient, Timeouts

TRANSCRIPTS = Path(__file__).parent / "transcripts"
#: Endpoints detection and the capability probe may ask; a transcript answers the ones it does not
#: route like the real engine answers an unknown endpoint.
PROBE_PATHS = [
    ("GET", p)
    for p in (
        "/health", "/props", "/slots", "/metrics", "/api/version", "/lms/version", "/api/v0/models",
        "/admin/info", "/admin", "/version", "/openapi.json", "/api/status", "/api/tags", "/",
    )
] + [("POST", "/tokenize")]  # fmt: skip
CAPTURES = Path(__file__).parent / "data" / "mlx-captures"
CAPTURED: dict[str, dict[str, Any]] = json.loads((CAPTURES / "captures.json").read_text(encoding="utf-8"))["captures"]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TRANSCRIPTS / f"{name}.json").read_text(encoding="utf-8"))
    return data


NAMES = sorted(p.stem for p in TRANSCRIPTS.glob("*.json"))


def serve(engine: ScriptedEngine, transcript: dict[str, Any]) -> None:
    """Script the engine with the transcript's routes and its answer to unknown endpoints; a
    recorded transcript's chat route replays its last capture (a prefix hit)."""
    routed = {(r["method"], r["path"]) for r in transcript["routes"]}
    unknown = transcript["unknown_endpoint"]
    for method, path in PROBE_PATHS:
        if (method, path) not in routed:
            engine.set_route(method, path, unknown["status"], unknown["body"], unknown.get("headers"))
    for r in transcript["routes"]:
        engine.set_route(r["method"], r["path"], r["status"], r["body"], r.get("headers"))
    engine.behaviour = Behaviour(reasoning_tokens=3, **transcript["stream"])
    if transcript.get("captures"):
        replay(engine, transcript["captures"][-1])


def replay(engine: ScriptedEngine, capture: str) -> None:
    """Answer every chat request with the captured bytes, exactly as the real server sent them."""
    sse = (CAPTURES / f"{capture}.sse").read_text(encoding="utf-8")
    headers = {"Content-Type": CAPTURED[capture]["content_type"]}
    engine.set_route("POST", "/v1/chat/completions", 200, sse, headers)


def resets(transcript: dict[str, Any]) -> list[dict[str, Any]]:
    """The transcript's reset endpoints (one object, a list, or null)."""
    reset = transcript["reset"]
    return [] if reset is None else [reset] if isinstance(reset, dict) else list(reset)


@pytest.fixture(params=NAMES)
def transcript(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


@pytest.fixture
def served(transcript: dict[str, Any]):
    with ScriptedEngine() as engine:
        serve(engine, transcript)
        yield engine, transcript


# ------------------------------------------------------------------------ transcripts: coverage


def test_every_family_has_a_transcript_with_its_sources():
    assert set(NAMES) == set(FAMILIES) and set(SEED_PANEL) < set(NAMES)
    for name in NAMES:
        t = load(name)
        assert t["family"] == name and t["family"] in FAMILIES
        assert "docs/asiai-protocol.md" in t["documented"] or "docs/real-engines.md" in t["documented"], name


# ----------------------------------------------------------------------- transcripts: replayed


def test_detection_names_the_family_and_its_version(served):
    engine, t = served
    expect = t["expect"]
    found = detect(engine.base_url)
    assert (found.kind, found.version) == (expect["kind"], expect["version"])
    assert found.recognised is expect.get("recognised", True)
    assert found.models == expect["models"]


def test_detection_survives_a_base_url_with_v1(served):
    engine, t = served
    assert detect(engine.base_url + "/v1/").kind == t["expect"]["kind"]


def test_capability_probe_reads_the_endpoints(served):
    engine, t = served
    expect = t["expect"]
    caps = detect(engine.base_url).capabilities
    for key in ("health", "slots", "metrics", "tokenize", "props", "cold_method"):
        assert caps[key] == expect[key], key
    assert set(expect["metric_names_include"]) <= set(caps["metric_names"])


def _chat(engine: ScriptedEngine, extra: dict[str, Any]) -> Any:
    body = {"model": "m", "messages": [{"role": "user", "content": "say hello"}], "max_tokens": 8, **extra}
    with StreamingClient(engine.base_url, timeouts=Timeouts(deadline_s=10)) as client:
        return client.chat(body)


def test_stream_dialect_matches_what_the_family_declares(served):
    engine, t = served
    expect, family = t["expect"], family_for(t["family"])
    record = _chat(engine, family.thinking_fields(True))
    assert record.ok, record.error
    assert (record.completion_tokens is not None) is expect["usage_chunk"]
    assert record.cached_source == expect["cached_source"]
    assert (record.timings is not None) is expect["timings"]
    separate = expect.get("reasoning_separate", True)  # False: reasoning arrives inline in content
    # A recorded stream is SmolLM2's, which never reasons: its reasoning field comes from the code.
    assert (record.reasoning_chars > 0) is (separate and not t.get("captures"))
    if family.usage_chunk is not None:
        assert family.usage_chunk is expect["usage_chunk"]
    if family.kind != "openai":
        assert family.cached_field == expect["cached_source"]
        assert family.timings is expect["timings"]
        assert family.reasoning_field == (t["stream"]["reasoning_field"] if separate else None)


def test_unreported_values_stay_none_not_zero(served):
    engine, t = served
    record = _chat(engine, {})
    if not t["expect"]["usage_chunk"]:
        assert record.completion_tokens is None and record.prompt_tokens is None
    if t["expect"]["cached_source"] is None:
        assert record.cached_tokens is None


def test_thinking_off_uses_a_field_the_engine_honours(transcript):
    honoured = transcript["thinking_honoured"]
    fields = family_for(transcript["family"]).thinking_fields(False)
    if honoured is not None:
        assert any(_contains(fields, h) for h in honoured), fields
    for ignored in transcript.get("thinking_ignored", []):
        assert len(fields) > len(ignored), "an ignored switch must not be the only one sent"


def _contains(outer: dict[str, Any], inner: dict[str, Any]) -> bool:
    for key, value in inner.items():
        if isinstance(value, dict):
            if not isinstance(outer.get(key), dict) or not _contains(outer[key], value):
                return False
        elif outer.get(key) != value:
            return False
    return True


def test_thinking_off_removes_reasoning_from_the_stream(served):
    engine, t = served
    record = _chat(engine, family_for(t["family"]).thinking_fields(False))
    assert record.ok and record.reasoning_chars == 0


def test_error_body_becomes_a_failed_record_with_the_engines_message(transcript):
    error = transcript["chat_error"]
    if error is None:  # no documented error body for these
        assert transcript["family"] in ("mlxlm", "omlx", "vmlx")
        return
    with ScriptedEngine() as engine:
        serve(engine, transcript)
        engine.set_route("POST", "/v1/chat/completions", error["status"], error["body"])
        record = _chat(engine, {})
    assert not record.ok and record.error_kind == "http"
    assert error["message"] in (record.error or "")


def test_cold_reset_uses_the_documented_endpoint(transcript):
    family, routes = family_for(transcript["family"]), resets(transcript)
    with ScriptedEngine() as engine, httpx.Client(timeout=5) as http:
        serve(engine, transcript)
        assert family.reset_cache(http, engine.base_url, "m") is None  # no endpoint routed yet: 404
        if not routes:
            assert family.cold_method == transcript["expect"]["cold_method"] != "endpoint"
            return
        for route in routes:  # every one is needed: with only the first, the reset is not confirmed
            engine.set_route(route["method"], route["path"], route["status"], route["body"])
            done = family.reset_cache(http, engine.base_url + "/v1", "m")
            assert done == (transcript["expect"]["cold_method"] if route is routes[-1] else None)


# ---------------------------------------------------------------------------- families: units


@pytest.mark.parametrize(
    ("value", "expected"),
    [("b11434-unknown", "b11434"), ({"version": 8180}, "b8180"), ({"build_number": "b7000"}, "b7000"),
     (11434, "b11434"), ("unknown", None), (None, None), (True, None)],
)  # fmt: skip
def test_llamacpp_build_info_string_or_dict(value, expected):
    assert parse_build_info(value) == expected


def test_interface_stays_backward_compatible():
    llama = family_for("llamacpp")
    assert llama.cold_fields() == {"cache_prompt": False} and llama.cold_method == "request"
    assert llama.thinking_fields(False) == {"chat_template_kwargs": {"enable_thinking": False}}
    assert llama.process_names == ("llama-server",) and llama.default_port == 8080
    assert family_for(None).kind == family_for("nonsense").kind == "openai"
    assert family_for("openai").cold_method == "salt"


def test_ollama_sends_both_thinking_switches():
    assert family_for("ollama").thinking_fields(False) == {"think": False, "reasoning_effort": "none"}
    assert family_for("ollama").thinking_fields(True) == {"think": True}


def test_detection_order_has_every_family_once():
    kinds = [f.kind for f in DETECTION_ORDER]
    assert sorted(kinds) == sorted(set(FAMILIES) - {"openai"}) and len(kinds) == len(set(kinds))


@pytest.mark.parametrize(
    ("url", "root", "port"),
    [
        ("http://h:1234/v1", "http://h:1234", 1234),
        ("http://h:1234/v1/", "http://h:1234", 1234),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", 8080),
        ("https://gw.example/llm/v1", "https://gw.example/llm", 443),
        ("http://localhost/", "http://localhost", 80),
    ],
)
def test_urls_with_a_path_keep_their_port(url, root, port):
    assert server_root(url) == root and port_of(url) == port


# --------------------------------------------------------------------------- processes


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["/opt/bin/llama-server", "--model", "m.gguf"], "llamacpp"),
        (["/usr/bin/python3.11", "-m", "llama_cpp.server", "--model", "m"], "llamacpp_python"),
        (["/usr/local/bin/ollama", "serve"], "ollama"),
        (["/usr/local/bin/ollama", "runner", "--model", "x"], "ollama"),
        (["/venv/bin/python", "/venv/bin/mlx_lm.server", "--model", "x"], "mlxlm"),
        (["python3", "-u", "-m", "mlx_lm", "server", "--port", "8080"], "mlxlm"),
        (["/venv/bin/python", "/venv/bin/vllm-mlx", "serve", "m"], "vllm_mlx"),
        (["/venv/bin/python", "/venv/bin/rapid-mlx", "serve", "m"], "rapidmlx"),
        (["/venv/bin/python", "/venv/bin/omlx", "serve"], "omlx"),
        (["/venv/bin/python", "/venv/bin/vmlx", "serve", "m"], "vmlx"),
        # the serve commands of docs/real-engines.md, as the kernel shows them
        (["/m/mlxlm/bin/python", "-m", "mlx_lm", "server", "--model", "M", "--port", "1"], "mlxlm"),
        (
            ["/m/rapidmlx/bin/python3", "/m/rapidmlx/bin/rapid-mlx", "--no-telemetry", "--no-banner", "serve", "M"],
            "rapidmlx",
        ),
        (["/m/omlx/bin/python", "/m/omlx/bin/omlx", "serve", "--model-dir", "D", "--port", "1"], "omlx"),
        (["/m/omlx/bin/python", "/m/omlx/bin/fmlx", "serve", "--model-dir", "D"], "omlx"),
        (["/m/vmlx/bin/python", "/m/vmlx/bin/vmlx-serve", "M"], "vmlx"),
        (["/Applications/LM Studio.app/Contents/MacOS/LM Studio"], "lmstudio"),
        (["/opt/bin/llama-server-turboquant", "-m", "x"], None),
        (["cmake", "--build", "b", "--target", "llama-server"], None),
        (["python", "-m", "pytest", "-k", "llama-server or ollama serve"], None),
        (["ollama", "list"], None),
    ],
)
def test_processes_match_whole_command_words(argv, kind):
    found = [f.kind for f in DETECTION_ORDER if matches(f.process_patterns, argv)]
    assert found == ([kind] if kind else [])


def test_command_words_and_launcher():
    assert command_words(["python3", "-X", "utf8", "-m", "llama_cpp.server", "--port", "1"])[:1] == ["llama_cpp.server"]
    assert launcher(["/usr/bin/python3", "-m", "llama_cpp.server", "--port", "1"]) == [
        "/usr/bin/python3",
        "-m",
        "llama_cpp.server",
    ]
    assert launcher(["/v/bin/python", "/v/bin/rapid-mlx", "serve"]) == ["/v/bin/python", "/v/bin/rapid-mlx"]
    assert launcher(["/opt/llama-server", "-m", "x"]) == ["/opt/llama-server"]


def _started(argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], psutil.Process]:
    """A sleeping Python started as ``argv``, once its command line is its own (after exec)."""
    proc = subprocess.Popen([*argv, "-c", "import time; time.sleep(60)"], env=env)
    ps = psutil.Process(proc.pid)
    deadline = time.monotonic() + 20
    while "import time; time.sleep(60)" not in ps.cmdline() and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc, ps


def test_the_engines_python_is_the_venvs_not_the_base_interpreter(tmp_path):
    """A venv's ``bin/python`` is a symlink to the base interpreter, whose packages do not include the
    engine: the version is read through the path the process was started with (absolute, or found on
    the process's own PATH), never through the resolved executable."""
    real = os.path.realpath(sys.executable)
    venv_python = tmp_path / "venv" / "bin" / os.path.basename(real)
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(real)
    for argv, env in (([str(venv_python)], None), ([venv_python.name], {"PATH": str(venv_python.parent)})):
        proc, ps = _started(argv, env)
        try:
            assert argv_of(ps)[0] == str(venv_python), argv
        finally:
            proc.kill()
            proc.wait()


def test_engine_process_is_the_listener_of_the_port(scripted_engine):
    procs = engine_processes(scripted_engine.base_url + "/v1")
    assert procs and procs[0].pid == os.getpid()
    assert engine_processes("http://192.0.2.1:8080") == []  # not this machine: never measured


# --------------------------------------------------------------------------- prometheus


def test_prometheus_keeps_llamacpp_colon_names_and_labels():
    text = load("llamacpp")["routes"][4]["body"] + 'x_total{a="q\\"uote",b="2"} +Inf 1700000000\nbad line\n'
    values = prometheus.values(text)
    assert values["llamacpp:prompt_tokens_total"] == 38
    assert values['llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="1"}'] == 7
    assert values['x_total{a="q"uote",b="2"}'] == float("inf")
    names = prometheus.names(text)
    assert "llamacpp:n_busy_slots_per_decode" in names and "bad" not in names
    samples = prometheus.parse(text)
    assert prometheus.total(samples, "llamacpp:spec_decode_num_accepted_tokens_per_pos_total") == 14
    assert prometheus.total(samples, "absent") is None


# ------------------------------------------------------------------------ the engine handle


def _handle(base_url: str, kind: str | None, solo: str = "check") -> tuple[EngineHandle, list[EngineHandle]]:
    started: list[EngineHandle] = []
    case = Case(engine="e", model="m", mtp="off", kind=kind, model_id="m", base_url=base_url)
    return EngineHandle(case, EngineManager(Path("/nonexistent")), started.append, solo=solo), started


def test_handle_detects_the_family_when_kind_is_left_out():
    with ScriptedEngine() as engine:
        serve(engine, load("vllm_mlx"))
        handle, started = _handle(engine.base_url, None)
        assert handle.kind == "vllm_mlx"  # asking for the kind starts (here: describes) the engine
        # vLLM-MLX 0.6.0 says its version nowhere over HTTP; this server's process is pytest's
        assert started == [handle] and handle.detected and handle.version is None
        described = handle.to_dict()
        assert described["kind"] == "vllm_mlx" and described["detected"] is True
        assert described["capabilities"]["metrics"] is True
        assert described["capabilities"]["detection"]["recognised"] is True
        assert handle.reset_cache() == "salt"  # neither DELETE is routed here
        engine.set_route("DELETE", "/v1/cache/prefix", 200, {"status": "not_supported", "rewarm_scheduled": False})
        engine.set_route("DELETE", "/v1/cache", 200, {"status": "cleared", "engine_cache": None})
        assert handle.reset_cache() == "endpoint"


def test_handle_with_a_kind_is_not_detected_and_fills_capabilities(scripted_engine):
    handle, _ = _handle(scripted_engine.base_url, "llamacpp")
    handle.ensure_running()
    assert (handle.kind, handle.detected, handle.version) == ("llamacpp", False, "b11434")
    caps = handle.capabilities
    assert caps["health"] == "/health" and caps["tokenize"] is True and caps["slots"] is False
    assert caps["cached_field"] == "usage.prompt_tokens_details.cached_tokens"
    assert handle.reset_cache() == "request"


def test_unreachable_engine_keeps_an_empty_probe():
    handle, _ = _handle("http://127.0.0.1:9", None)
    handle.ensure_running()
    assert handle.kind == "openai" and handle.version is None
    assert handle.capabilities["probed"] == [] and handle.capabilities["probe_error"]


class _Spy(EngineManager):
    def __init__(self) -> None:
        super().__init__(Path("/nonexistent"))
        self.stops = 0

    def stop_all(self) -> None:
        self.stops += 1


@pytest.mark.parametrize(("solo", "stops"), [("check", 0), ("stop", 1)])
def test_solo_stop_stops_only_the_plugins_own_engines(scripted_engine, solo, stops):
    manager = _Spy()
    case = Case(engine="e", model="m", mtp="off", kind="llamacpp", model_id="m", base_url=scripted_engine.base_url)
    EngineHandle(case, manager, lambda h: None, solo=solo).ensure_running()
    assert manager.stops == stops


# --------------------------------------------------------------------------- managed starts


def _static_server(tmp_path: Path, kind: str, timeout_s: float) -> ManagedEngine:
    """A managed "engine" that is Python's static file server: only GET /v1/models answers 200."""
    (tmp_path / "www" / "v1").mkdir(parents=True)
    (tmp_path / "www" / "v1" / "models").write_text('{"object": "list", "data": []}')
    spec = ManagedSpec(
        command=(
            sys.executable,
            "-m",
            "http.server",
            "{port}",
            "--bind",
            "{host}",
            "--directory",
            str(tmp_path / "www"),
        ),
        env={"ENGINE_ADDRESS": "{host}:{port}"},
        startup_timeout_s=timeout_s,
    )
    return ManagedEngine(Case(engine="e", model="m", mtp="off", kind=kind, managed=spec), tmp_path / "logs")


def test_managed_start_polls_the_familys_health_path(tmp_path):
    engine = _static_server(tmp_path, "llamacpp_python", 60)
    try:
        engine.start()  # llama-cpp-python has no /health: its family polls /v1/models
        assert engine.running
        assert engine.environment()["ENGINE_ADDRESS"] == f"127.0.0.1:{engine.port}"
    finally:
        engine.stop()


def test_managed_start_fails_when_the_health_path_never_answers(tmp_path):
    engine = _static_server(tmp_path, "llamacpp", 3)  # llama.cpp's /health is a 404 here
    with pytest.raises(EngineStartError, match=r"not healthy at http://127\.0\.0\.1:\d+/health"):
        engine.start()
    assert not engine.running


def test_version_from_the_serving_program():
    from pytest_asiai.engines.base import python_dist_version

    assert python_dist_version([sys.executable], "pytest") == pytest.__version__
    assert family_for("mlxlm").version_from_process([sys.executable]) is None  # mlx-lm is not installed here
    assert python_dist_version([sys.executable], "no-such-dist", "pytest") == pytest.__version__  # first found
    for kind in ("rapidmlx", "vllm_mlx", "vmlx", "omlx"):  # none is installed in the project's venv
        assert family_for(kind).version_from_process([sys.executable]) is None
    assert family_for("rapidmlx").version_from_process(["/nonexistent/python"]) is None


# ------------------------------------------------------------- recorded MLX streams, replayed


def _replayed(capture: str) -> Any:
    with ScriptedEngine() as engine:
        replay(engine, capture)
        sent = {"max_tokens": CAPTURED[capture]["max_tokens"], "stream_options": {"include_usage": True}}
        return _chat(engine, sent)  # the captured request's max_tokens: the limit decides the stop token


@pytest.mark.parametrize("capture", sorted(CAPTURED))
def test_captured_stream_replays_to_what_the_server_reported(capture):
    """The real bytes give the real answer: keepalive comments (mlx-lm) and empty keepalive data
    events (oMLX) carry no token, a usage sent twice (vLLM-MLX) counts once, a repeated ``role`` is
    not content, and cached tokens are read where the family says they are."""
    meta, record = CAPTURED[capture], _replayed(capture)
    family, usage = family_for(meta["family"]), meta["usage"]
    assert record.ok, record.error
    assert (record.content, record.finish_reason) == (meta["content"], meta["finish_reason"])
    assert (record.prompt_tokens, record.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert record.chunks == meta["n_token_events"] and record.reasoning_chars == 0
    reported = usage.get("prompt_tokens_details", {}).get("cached_tokens")
    assert record.cached_tokens == reported
    assert record.cached_source == (family.cached_field if reported is not None else None)


@pytest.mark.parametrize("capture", sorted(CAPTURED))
def test_captured_stream_shows_how_many_tokens_an_event_carries(capture):
    """vMLX coalesces about 8 tokens per event (stream interval 8); the others send one per event."""
    meta, record = CAPTURED[capture], _replayed(capture)
    per_chunk = tokens_per_chunk(record)
    assert per_chunk is not None
    if meta["family"] == "vmlx":
        assert per_chunk >= 3.5, per_chunk  # 8 tokens in 2 events, 13 in 3
    else:
        assert per_chunk == pytest.approx(1.0), per_chunk


def test_recorded_prefix_hits_and_block_granularity():
    """What the captures show about reuse: a 195-token shared prefix is reported cached by mlx-lm and
    Rapid-MLX in full, by vMLX in whole 64-token blocks, never by vLLM-MLX (it reuses, TTFT 19 → 1.2 s),
    and not at all by oMLX, whose 256-token blocks need a longer prefix (256 of 281 shared tokens)."""
    cached = {
        name: _replayed(name).cached_tokens
        for name in ("mlxlm-req2", "rapidmlx-req2", "vmlx-req2", "vllmmlx-req2", "omlx-req2", "omlx-cold300-user2")
    }
    assert cached == {"mlxlm-req2": 195, "rapidmlx-req2": 195, "vmlx-req2": 192, "vllmmlx-req2": None,
                      "omlx-req2": 0, "omlx-cold300-user2": 256}  # fmt: skip
    for kind, name in (("vmlx", "vmlx-req2"), ("omlx", "omlx-cold300-user2")):
        block = family_for(kind).cache_block_tokens
        assert block is not None and cached[name] % block == 0 and cached[name] > 0
    assert CAPTURED["vllmmlx-req2"]["ttft_s"] < CAPTURED["vllmmlx-req1"]["ttft_s"] / 5  # reuse happened


# ------------------------------------------------------------------ recognising an imitator


def test_an_engine_imitating_ollama_is_not_ollama():
    """vMLX answers Ollama's GET / and /api/version; without its own owned_by and /openapi.json it is
    an unrecognised server, not Ollama: only Ollama's Go router answers /health with gin's 404."""
    imitator = load("vmlx")
    imitator["routes"] = [r for r in imitator["routes"] if r["path"] not in ("/v1/models", "/openapi.json")]
    with ScriptedEngine() as engine:
        serve(engine, imitator)
        found = detect(engine.base_url)
        assert (found.kind, found.recognised) == ("openai", False)
        serve(engine, load("vmlx"))
        assert (detect(engine.base_url).kind, detect(engine.base_url).version) == ("vmlx", "1.6.81")


# ------------------------------------------------------------------ cache resets, request by request


def _recorder(answers: dict[tuple[str, str], tuple[int, Any]]) -> tuple[httpx.Client, list[str]]:
    """A client whose transport answers (method, path) from ``answers`` (404 otherwise) and logs requests."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(
            f"{request.method} {request.url.path}{'?' + request.url.query.decode() if request.url.query else ''}"
        )
        status, body = answers.get((request.method, request.url.path), (404, {"detail": "Not Found"}))
        return httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)

    return httpx.Client(transport=httpx.MockTransport(handle)), seen


@pytest.mark.parametrize(
    ("kind", "answers", "expected", "sent"),
    [
        ("vllm_mlx", {("DELETE", "/v1/cache/prefix"): (200, {"status": "not_supported"}),
                      ("DELETE", "/v1/cache"): (200, {"status": "cleared", "engine_cache": None})},
         "endpoint", ["DELETE /v1/cache/prefix", "DELETE /v1/cache"]),
        ("vllm_mlx", {("DELETE", "/v1/cache/prefix"): (200, {"status": "cleared"}),
                      ("DELETE", "/v1/cache"): (401, {"detail": "Invalid API key"})},
         None, ["DELETE /v1/cache/prefix", "DELETE /v1/cache"]),
        ("vllm_mlx", {("DELETE", "/v1/cache/prefix"): (200, {"status": "odd"})}, None, ["DELETE /v1/cache/prefix"]),
        ("vmlx", {("DELETE", "/v1/cache"): (200, {"status": "cleared", "caches": ["paged_prefix"]})},
         "endpoint", ["DELETE /v1/cache?type=prefix"]),
        ("vmlx", {("DELETE", "/v1/cache"): (200, {"status": "busy"})}, None, ["DELETE /v1/cache?type=prefix"]),
        ("rapidmlx", {("POST", "/v1/cache/clear"): (200, {"status": "ok", "scheduler_cache_cleared": True})},
         "endpoint", ["POST /v1/cache/clear"]),
        ("rapidmlx", {("POST", "/v1/cache/clear"): (200, "<html>ok</html>")}, None, ["POST /v1/cache/clear"]),
        ("rapidmlx", {("POST", "/v1/cache/clear"): (503, {"detail": "not loaded"})}, None, ["POST /v1/cache/clear"]),
        ("omlx", {}, None, []),
        ("mlxlm", {}, None, []),
    ],
)  # fmt: skip
def test_cache_reset_sends_the_servers_request_and_trusts_only_its_confirmation(kind, answers, expected, sent):
    http, seen = _recorder(answers)
    with http:
        assert family_for(kind).reset_cache(http, "http://engine:8000/v1", "m") == expected
    assert seen == sent


def test_family_facts_say_how_they_were_verified():
    live = {"mlxlm", "rapidmlx", "vllm_mlx", "vmlx", "omlx"}
    for kind, family in FAMILIES.items():
        facts = family.describe()
        assert facts["verified"] == ("live" if kind in live | {"llamacpp", "llamacpp_python"} else "documented"), kind
        if kind in live:
            assert "reasoning_field" in facts["documented_only"]  # SmolLM2 never reasons
    assert {k: FAMILIES[k].cache_block_tokens for k in live} == {
        "mlxlm": None,
        "rapidmlx": None,
        "vllm_mlx": None,
        "vmlx": 64,
        "omlx": 256,
    }

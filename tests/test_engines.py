"""Engine families: unit behaviour, and every family replayed from its recorded transcript.

A transcript (tests/transcripts/<family>.json) holds a family's documented response shapes: its
metadata endpoints, how it answers unknown endpoints, its stream dialect (reasoning field, usage
chunk or none, cached-token field, timings), an error body and its reset endpoint. The scripted test
engine serves them on loopback, so detection, version, the capability probe, the streaming client
and the cold reset run against each family's shapes even where the engine cannot run here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai import prometheus
from pytest_asiai.client import StreamingClient, Timeouts
from pytest_asiai.detect import detect
from pytest_asiai.engine import EngineHandle
from pytest_asiai.engines import DETECTION_ORDER, FAMILIES, SEED_PANEL, family_for
from pytest_asiai.engines.llamacpp import parse_build_info
from pytest_asiai.engines.probe import port_of, server_root
from pytest_asiai.engines.processes import command_words, engine_processes, launcher, matches
from pytest_asiai.managed import EngineManager, EngineStartError, ManagedEngine
from pytest_asiai.matrix import Case, ManagedSpec

TRANSCRIPTS = Path(__file__).parent / "transcripts"
#: Endpoints detection and the capability probe may ask; a transcript answers the ones it does not
#: route like the real engine answers an unknown endpoint.
PROBE_PATHS = [
    ("GET", p)
    for p in (
        "/health", "/props", "/slots", "/metrics", "/api/version", "/lms/version", "/api/v0/models",
        "/admin/info", "/admin", "/version", "/openapi.json",
    )
] + [("POST", "/tokenize")]  # fmt: skip


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TRANSCRIPTS / f"{name}.json").read_text(encoding="utf-8"))
    return data


NAMES = sorted(p.stem for p in TRANSCRIPTS.glob("*.json"))


def serve(engine: ScriptedEngine, transcript: dict[str, Any]) -> None:
    """Script the engine with the transcript's routes and its answer to unknown endpoints."""
    routed = {(r["method"], r["path"]) for r in transcript["routes"]}
    unknown = transcript["unknown_endpoint"]
    for method, path in PROBE_PATHS:
        if (method, path) not in routed:
            engine.set_route(method, path, unknown["status"], unknown["body"], unknown.get("headers"))
    for r in transcript["routes"]:
        engine.set_route(r["method"], r["path"], r["status"], r["body"], r.get("headers"))
    engine.behaviour = Behaviour(reasoning_tokens=3, **transcript["stream"])


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
        assert "asiai-protocol.md" in t["documented"] or "real-engines.md" in t["documented"], name


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
    assert (record.reasoning_chars > 0) is separate
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
    family, reset = family_for(transcript["family"]), transcript["reset"]
    with ScriptedEngine() as engine, httpx.Client(timeout=5) as http:
        serve(engine, transcript)
        if reset is None:
            assert family.reset_cache(http, engine.base_url, "m") is None
            return
        assert family.reset_cache(http, engine.base_url, "m") is None  # endpoint not routed yet: 404
        engine.set_route(reset["method"], reset["path"], reset["status"], reset["body"])
        assert family.reset_cache(http, engine.base_url + "/v1", "m") == transcript["expect"]["cold_method"]


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


def test_engine_process_is_the_listener_of_the_port(scripted_engine):
    import os

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
        assert started == [handle] and handle.detected and handle.version == "0.2.6"
        described = handle.to_dict()
        assert described["kind"] == "vllm_mlx" and described["detected"] is True
        assert described["capabilities"]["metrics"] is True
        assert described["capabilities"]["detection"]["recognised"] is True
        assert handle.reset_cache() == "salt"  # DELETE /v1/cache/prefix is not routed here
        engine.set_route("DELETE", "/v1/cache/prefix", 200, {"status": "cleared"})
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
    fake_cli = [sys.executable, "-c", "print('rapid-mlx 0.4.1 (build abc)')"]  # run as [*prefix, "--version"]
    assert family_for("rapidmlx").version_from_process(fake_cli) == "0.4.1"
    assert family_for("rapidmlx").version_from_process(["/nonexistent/rapid-mlx"]) is None

"""``pytest-asiai detect URL``: the CLI on transcripts, and the two real servers named with their versions."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_engine import engines_toml
from scripted_engine import ScriptedEngine
from test_engines import load, serve
from test_real_second_engine import second_engine_toml

from pytest_asiai import cli
from pytest_asiai.config.matrix import cases_from_document
from pytest_asiai.engines.detect import detect, main
from pytest_asiai.engines.managed import ManagedEngine


def test_cli_names_family_version_and_capabilities(capsys):
    with ScriptedEngine() as engine:
        serve(engine, load("ollama"))
        code = cli.main(["detect", engine.base_url + "/v1"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == f"{engine.base_url}/v1: ollama 0.12.6"
    assert "cached tokens unreported" in out and "reasoning field reasoning" in out
    assert '"reasoning_effort": "none"' in out and "cold runs: unload" in out


def test_cli_json_with_a_chat_probe(capsys):
    with ScriptedEngine() as engine:
        serve(engine, load("mlxlm"))
        code = main([engine.base_url, "--json", "--chat", "--model", "m"])
    found = json.loads(capsys.readouterr().out)
    assert code == 0 and found["kind"] == "mlxlm" and found["recognised"] is True
    stream = found["stream"]
    assert stream["ok"] and stream["usage_chunk"] is True and stream["timings"] is False
    assert stream["cached_field"] == "usage.prompt_tokens_details.cached_tokens"


def test_cli_unrecognised_server_is_generic_not_mlxlm(capsys):
    with ScriptedEngine() as engine:
        serve(engine, load("openai"))
        code = main([engine.base_url])
    captured = capsys.readouterr()
    assert code == 1
    assert "openai (unrecognised OpenAI-compatible server)" in captured.out
    assert "no engine family recognised" in captured.err


def test_cli_unreachable_is_one_line_on_stderr(capsys):
    assert main(["http://127.0.0.1:9"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "http://127.0.0.1:9: unreachable" in captured.err


# ------------------------------------------------------------------------------- real servers


def start(toml: str, tmp_path: Path) -> Iterator[ManagedEngine]:
    (case,) = cases_from_document(tomllib.loads(toml), "engines.toml", tmp_path)
    engine = ManagedEngine(case, tmp_path)
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()


@pytest.fixture
def real_llama_server(tmp_path: Path) -> Iterator[ManagedEngine]:
    yield from start(engines_toml(), tmp_path)


@pytest.fixture
def real_llama_cpp_python(tmp_path: Path) -> Iterator[ManagedEngine]:
    yield from start(second_engine_toml(ctx=2048), tmp_path)


def test_detect_names_the_real_llama_server(real_llama_server):
    found = detect(real_llama_server.base_url + "/v1", chat=True)
    assert (found.kind, found.version, found.version_source) == ("llamacpp", "b11434", "http")
    assert found.pid == real_llama_server.pid and found.models == ["smollm2-135m"]
    caps = found.capabilities
    assert caps["health"] == "/health" and caps["slots"] and caps["tokenize"] and caps["props"]
    assert {"llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total"} <= set(caps["metric_names"])
    assert found.stream is not None and found.stream["ok"], found.stream
    assert found.stream["usage_chunk"] is True and found.stream["timings"] is True
    assert found.stream["cached_field"] == "usage.prompt_tokens_details.cached_tokens"


def test_detect_names_the_real_llama_cpp_python(real_llama_cpp_python):
    found = detect(real_llama_cpp_python.base_url, chat=True)
    assert (found.kind, found.version) == ("llamacpp_python", "0.3.36")
    assert found.pid == real_llama_cpp_python.pid
    caps = found.capabilities
    assert caps["health"] == "/v1/models" and not (caps["slots"] or caps["metrics"] or caps["props"])
    assert found.stream is not None and found.stream["ok"], found.stream
    assert found.stream["usage_chunk"] is False and found.stream["cached_field"] is None

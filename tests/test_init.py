"""``pytest-asiai init`` (pytest_asiai/engines/init.py): an engines.toml from the engines running here.

A scripted Ollama (the transcript tests/transcripts/ollama.json on the scripted engine) and the
real llama-server are found by scanning their ports; ``pytest -m agentic`` then runs on the written
file unchanged.
"""

from __future__ import annotations

import socket
import subprocess
import time
import tomllib
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from real_engine import llama_server, model_path
from scripted_engine import ScriptedEngine
from test_engines import load, serve

from pytest_asiai import cli
from pytest_asiai.config.matrix import load_matrix
from pytest_asiai.engines.init import DEFAULT_PORTS, slug


def port_of(url: str) -> str:
    return str(urlsplit(url).port)


@pytest.fixture
def ollama() -> Iterator[ScriptedEngine]:
    """A scripted server that detection names Ollama, with the transcript's two models."""
    with ScriptedEngine() as engine:
        transcript = load("ollama")
        serve(engine, transcript)
        engine.set_route("POST", transcript["reset"]["path"], 200, transcript["reset"]["body"])
        yield engine


def init(*args: str) -> int:
    return cli.main(["init", *args])


def test_the_default_ports_are_the_families_own():
    assert set(DEFAULT_PORTS) == {8080, 1234, 11434, 8000}


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("qwen3:8b", "qwen3-8b"),
        ("/models/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct.q4_1"),
        ("mlx-community/Qwen3-8B-4bit", "qwen3-8b-4bit"),
        ("???", "model"),
    ],
)
def test_model_names_are_valid_case_ids(model_id, name):
    assert slug(model_id) == name


def test_scripted_servers_become_one_engine_each(tmp_path, ollama, scripted_engine, capsys):
    out = tmp_path / "engines.toml"
    code = init("--port", port_of(ollama.base_url), "--port", port_of(scripted_engine.base_url), "-o", str(out))
    assert code == 0, capsys.readouterr().err
    doc = tomllib.loads(out.read_text(encoding="utf-8"))
    engines = {e["kind"]: e for e in doc["engines"]}
    assert set(engines) == {"ollama", "llamacpp"}
    assert engines["ollama"]["base_url"] == ollama.base_url
    assert [m["id"] for m in engines["llamacpp"]["models"]] == ["scripted-model"]
    listed = httpx.get(f"{ollama.base_url}/v1/models").json()["data"]
    assert [m["id"] for m in engines["ollama"]["models"]] == [m["id"] for m in listed]
    assert "# What to edit:" in out.read_text(encoding="utf-8")
    assert len(load_matrix(out)) == len(listed) + 1
    assert f"wrote {out} (2 engine(s)" in capsys.readouterr().out


def test_an_existing_file_is_never_replaced_without_force(tmp_path, scripted_engine, capsys):
    out = tmp_path / "engines.toml"
    out.write_text("# mine\n", encoding="utf-8")
    assert init("--no-scan", "--url", scripted_engine.base_url + "/v1", "-o", str(out)) == 1
    assert capsys.readouterr().err == f"pytest-asiai init: {out} exists; use --force to replace it, or -o OTHER.toml\n"
    assert out.read_text(encoding="utf-8") == "# mine\n"
    assert init("--no-scan", "--url", scripted_engine.base_url + "/v1", "-o", str(out), "--force") == 0
    assert 'kind = "llamacpp"' in out.read_text(encoding="utf-8")


def test_nothing_answering_is_one_line_and_no_file(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "engines.toml"
    assert init("--port", str(port), "-o", str(out)) == 1
    err = capsys.readouterr().err
    assert err == f"pytest-asiai init: no engine answered at http://127.0.0.1:{port} (start one, or give --url URL)\n"
    assert not out.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def real_llama_server() -> Iterator[str]:
    """The real llama-server, started by hand as a user would run it."""
    port = free_port()
    args = [str(llama_server()), "--model", str(model_path()), "--port", str(port), "--host", "127.0.0.1"]
    proc = subprocess.Popen([*args, "--threads", "2", "--ctx-size", "8192", "--parallel", "1", "--metrics"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "llama-server exited during startup"
            time.sleep(0.3)
        else:
            pytest.fail("llama-server did not become healthy within 120 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_written_file_runs_unchanged_on_the_real_server_and_a_scripted_ollama(
    pytester, real_llama_server, ollama, monkeypatch
):
    monkeypatch.delenv("ASIAI_SUITES", raising=False)  # the built-in suites, as in a user's project
    out = pytester.path / "engines.toml"
    assert init("--port", port_of(real_llama_server), "--port", port_of(ollama.base_url), "-o", str(out)) == 0
    doc = tomllib.loads(out.read_text(encoding="utf-8"))
    by_kind = {e["kind"]: e for e in doc["engines"]}
    assert by_kind["llamacpp"]["base_url"] == real_llama_server
    assert len(by_kind["llamacpp"]["models"]) == 1
    written = out.read_bytes()
    result = pytester.runpytest_subprocess("-m", "agentic", "-k", "(cold or warm) and not prefix", "-v")
    assert out.read_bytes() == written
    cases = [case.id for case in load_matrix(out)]
    assert len(cases) == 3 and sum(c.startswith("llamacpp-") for c in cases) == 1  # + Ollama's two models
    result.stdout.fnmatch_lines_random(
        [f"test_agentic.py::test_phase[[]{case}-{phase}[]] PASSED*" for case in cases for phase in ("cold", "warm")]
    )
    assert result.ret == 0


def test_two_servers_of_one_family_are_named_by_port(tmp_path, scripted_engine):
    with ScriptedEngine() as second:
        out = tmp_path / "engines.toml"
        ports = [port_of(scripted_engine.base_url), port_of(second.base_url)]
        assert init("--port", ports[0], "--port", ports[1], "-o", str(out)) == 0
    names = [e["name"] for e in tomllib.loads(out.read_text(encoding="utf-8"))["engines"]]
    assert names == [f"llamacpp-{ports[0]}", f"llamacpp-{ports[1]}"]

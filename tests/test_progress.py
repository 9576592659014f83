"""The live progress line (pytest_asiai/runtime/progress.py), under a pseudo-terminal as a user sees it.

The scripted engine drips its answer (``decode_ms_per_token``) so one cold request (64 tokens) lasts
about six seconds, past the line's three-second threshold.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai.runtime.progress import render, slots_prefill

CASE = "scripted-m-mtp_off"
TOKEN_MS = 100


def engines_toml(base_url: str) -> str:
    return (
        f'profile = "smoke"\n[[engines]]\nname = "scripted"\nkind = "llamacpp"\nbase_url = "{base_url}"\n'
        'deadline_s = 60\n[[engines.models]]\nname = "m"\n'
    )


def test_render_names_the_test_time_and_stream_state():
    assert (
        render("test_phase[x-cold]", 4.2, 0, None, 120) == "asiai: test_phase[x-cold]  4 s  waiting for the first token"
    )
    assert (
        render("t", 12, 0, (4096, 1024), 120)
        == "asiai: t  12 s  prefill: 4096 prompt tokens processed (1024 from cache)"
    )
    assert render("t", 7, 37, (1, 0), 120) == "asiai: t  7 s  37 token chunks streamed"
    assert len(render("t" * 200, 7, 1, None, 80)) == 79


def test_slots_prefill_reads_the_busy_slot(scripted_engine):
    busy = {"id": 0, "is_processing": True, "n_prompt_tokens_processed": 2048, "n_prompt_tokens_cache": 512}
    scripted_engine.set_route("GET", "/slots", 200, json.dumps([{"id": 1, "is_processing": False}, busy]))
    assert slots_prefill(scripted_engine.base_url + "/v1/chat/completions") == (2048, 512)
    scripted_engine.set_route("GET", "/slots", 404, {"error": "no"})
    with pytest.raises(LookupError):
        slots_prefill(scripted_engine.base_url + "/v1/chat/completions")


def run_in_pty(args: list[str], cwd: Path, env: dict[str, str], timeout_s: float = 300) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as stdin/stdout/stderr (160 columns); its exit code and output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while select.select([master], [], [], timeout_s)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def slow_project(pytester, monkeypatch) -> Path:
    monkeypatch.delenv("ASIAI_SUITES", raising=False)  # the built-in suites
    return pytester.path


@pytest.fixture
def slow_engine():
    with ScriptedEngine(Behaviour(decode_ms_per_token=TOKEN_MS)) as engine:
        yield engine


def pytest_args(*extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "agentic",
        "-k",
        "cold and not prefix",
        "-p",
        "no:cacheprovider",
        *extra,
    ]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ASIAI_SUITES", "PYTEST_ADDOPTS")}
    return {**env, "TERM": "xterm", "COLUMNS": "160"}


def test_a_slow_request_shows_one_live_line_that_goes_away(slow_project, slow_engine):
    (slow_project / "engines.toml").write_text(engines_toml(slow_engine.base_url), encoding="utf-8")
    code, out = run_in_pty(pytest_args("--asiai-json=r.json"), slow_project, child_env())
    assert code == 0, out
    label = f"asiai: test_phase[{CASE}-cold]"
    assert label in out, out
    drawn = out[out.index(label) :]
    assert "token chunks streamed" in drawn
    last = out.rindex(label)
    erased = out.find("\r\x1b[K\x1b[1A", last)
    assert erased != -1 and erased < out.index("1 passed"), "the line was not erased before pytest went on"
    # The request the line watched was timed as usual: the drip's rate, within wide margins.
    (case,) = json.loads((slow_project / "r.json").read_text(encoding="utf-8"))["cases"]
    decode = case["phases"]["cold"]["stats"]["decode_tok_s"]["median"]
    assert 0.8 * 1000 / TOKEN_MS <= decode <= 1.05 * 1000 / TOKEN_MS


def test_quiet_runs_show_no_line(slow_project, slow_engine):
    (slow_project / "engines.toml").write_text(engines_toml(slow_engine.base_url), encoding="utf-8")
    code, out = run_in_pty(pytest_args("-q"), slow_project, child_env())
    assert code == 0, out
    assert "asiai: test_phase" not in out and "\x1b[1A" not in out


def test_logs_get_one_line_per_long_test(slow_project, slow_engine):
    (slow_project / "engines.toml").write_text(engines_toml(slow_engine.base_url), encoding="utf-8")
    proc = subprocess.run(pytest_args(), cwd=slow_project, env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith("asiai: test_phase")]
    assert len(lines) == 1 and lines[0].startswith(f"asiai: test_phase[{CASE}-cold] finished in "), proc.stdout
    assert "\x1b[" not in proc.stdout

"""Secrets planted everywhere never leave the process (issue 14 item 4).

An engine that echoes the Authorization header in its 401 body, a password in ``base_url``, a literal
key after ``--secret-key`` in a managed command whose engine prints its arguments and dies: none of
them may reach the terminal, JUnit, the JSON report, the events log, the HTML report or the start
line pytest-asiai writes into ``.asiai/logs``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_asiai.config.matrix import Case, ManagedSpec
from pytest_asiai.report.redact import REDACTED, Redactor, scrub_args

SUITE = (Path(__file__).parent.parent / "suites" / "test_agentic.py").read_text(encoding="utf-8")
KEY = "sk-hostile-9f8e7d6c5b4a"
PASSWORD = "pw-hostile-314159"
LITERAL = "lit-secret-271828"


class EchoAuth(BaseHTTPRequestHandler):
    """Answers every request 401 and echoes the Authorization header, as a careless proxy does."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        body = json.dumps({"error": {"message": f"bad credentials: Authorization: {auth} " * 5}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoAuth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def everything_written(pytester: pytest.Pytester, result: pytest.RunResult) -> str:
    files = [pytester.path / n for n in ("r.json", "r.json.events.jsonl", "r.html", "junit.xml")]
    files += sorted((pytester.path / ".asiai" / "logs").glob("*.log"))
    assert all(f.exists() for f in files[:4]), [str(f) for f in files if not f.exists()]
    return result.stdout.str() + result.stderr.str() + "".join(f.read_text(encoding="utf-8") for f in files[:4])


def run(pytester: pytest.Pytester, toml: str, *extra: str) -> pytest.RunResult:
    pytester.makefile(".toml", engines=toml)
    pytester.makepyfile(test_agentic=SUITE)
    args = ("test_agentic.py", "-k", "cold", "--asiai-json", "r.json", "--asiai-html", "r.html")
    return pytester.runpytest_subprocess(*args, "--junitxml", "junit.xml", "-rA", "--tb=long", *extra)


def test_echoed_key_and_url_password_reach_no_output(pytester, echo_server, monkeypatch):
    monkeypatch.setenv("ASIAI_HOSTILE_KEY", KEY)
    toml = (
        'profile = "smoke"\n[[engines]]\nname = "echo"\nkind = "openai"\n'
        f'base_url = "http://admin:{PASSWORD}@{echo_server}/v1"\napi_key_env = "ASIAI_HOSTILE_KEY"\n'
        'deadline_s = 5\n[[engines.models]]\nname = "m"\n'
    )
    result = run(pytester, toml)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    written = everything_written(pytester, result)
    assert "bad credentials" in written  # the error itself is reported...
    assert KEY not in written and PASSWORD not in written  # ...without the secrets


def test_literal_secret_in_a_failing_managed_command_reaches_no_output(pytester):
    printer = "import sys; print('argv', sys.argv, flush=True); sys.exit(3)"
    command = json.dumps([sys.executable, "-c", printer, "--secret-key", LITERAL, "--port", "{port}"])
    toml = (
        f'profile = "smoke"\n[[engines]]\nname = "dies"\nkind = "llamacpp"\n[engines.managed]\n'
        f'command = {command}\nstartup_timeout_s = 20\n[[engines.models]]\nname = "m"\n'
    )
    result = run(pytester, toml)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    written = everything_written(pytester, result)
    assert "exited with code 3" in written
    assert LITERAL not in written
    (log,) = (pytester.path / ".asiai" / "logs").glob("*.log")
    start_lines = [line for line in log.read_text(encoding="utf-8").splitlines() if "pytest-asiai start" in line]
    assert start_lines and all(LITERAL not in line and "--secret-key [redacted]" in line for line in start_lines)


# -- the redactor itself ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag", ["--api-key", "--secret-key", "--hf-token", "--password", "--db-passwd", "--auth-token", "-api_key"]
)
def test_any_flag_that_looks_like_a_secret_hides_its_value(flag):
    assert scrub_args([flag, "v4lue", "--port", "8"]) == [flag, REDACTED, "--port", "8"]
    assert scrub_args([f"{flag}=v4lue"]) == [f"{flag}={REDACTED}"]


@pytest.mark.parametrize("flag", ["--max-tokens", "--tokenizer", "--n-keep", "--port"])
def test_ordinary_flags_keep_their_values(flag):
    assert scrub_args([flag, "512"]) == [flag, "512"]


def test_redactor_for_cases_knows_every_secret(monkeypatch):
    monkeypatch.setenv("ASIAI_HOSTILE_KEY", KEY)
    spec = ManagedSpec(command=("srv", "--secret-key", LITERAL), env={"HF_TOKEN": "hf-env-secret"})
    cases = [
        Case(engine="a", model="m", mtp="off", managed=spec),
        Case(engine="b", model="m", mtp="off", base_url=f"http://u:{PASSWORD}@h/v1", api_key_env="ASIAI_HOSTILE_KEY"),
    ]
    redactor = Redactor.for_cases(cases)
    text = f"{KEY} {LITERAL} hf-env-secret {PASSWORD} http://other:zz-secret-zz@x/ Bearer abc.def-ghi"
    scrubbed = redactor.text(text)
    for secret in (KEY, LITERAL, "hf-env-secret", PASSWORD, "zz-secret-zz", "abc.def-ghi"):
        assert secret not in scrubbed
    assert "http://redacted@x/" in scrubbed

"""Nothing lost: an engine that dies mid-phase, Ctrl-C, a crashed xdist worker and a SIGKILLed pytest
all leave a valid report (or a log that rebuilds one) with everything measured so far and the
failure recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from report_helpers import copy_suite, engines_toml, load_valid, outcomes_by_case, plugin_args  # noqa: F401
from scripted_engine import Behaviour

from pytest_asiai import cli
from pytest_asiai.report import log_path_for, spool_dir_for
from pytest_asiai.spool import read_events, spool_files

TESTS_DIR = Path(__file__).resolve().parent

# A managed engine: the scripted engine in its own process, on the port the plugin chose, that
# kills itself (like an OOM kill) in the middle of streaming its Nth chat answer.
DYING_ENGINE = f"""
import asyncio, os, sys, time
sys.path.insert(0, {str(TESTS_DIR)!r})
import scripted_engine as se

port, die_on = int(sys.argv[1]), int(sys.argv[2])
_start_server = asyncio.start_server

async def start_server(cb, host, _port, **kw):
    return await _start_server(cb, host, port, **kw)

se.asyncio.start_server = start_server
engine = se.ScriptedEngine(se.Behaviour(decode_ms_per_token=25)).start()
while len(engine.requests) < die_on:
    time.sleep(0.005)
time.sleep(0.3)
os._exit(137)
"""


def dying_engine_toml(script: Path, die_on: int) -> str:
    return (
        'profile = "smoke"\n[[engines]]\nname = "dying"\nkind = "llamacpp"\ndeadline_s = 20\n'
        f'[engines.managed]\ncommand = ["{sys.executable}", "{script}", "{{port}}", "{die_on}"]\n'
        'startup_timeout_s = 30\n[[engines.models]]\nname = "m"\n'
    )


def test_engine_dying_mid_phase_keeps_the_completed_phase(pytester, plugin_args):  # noqa: F811
    script = pytester.path / "dying_engine.py"
    script.write_text(DYING_ENGINE, encoding="utf-8")
    pytester.makefile(".toml", engines=dying_engine_toml(script, die_on=2))
    copy_suite(pytester.path, "test_agentic.py")
    result = pytester.runpytest("-m", "agentic", "-k", "cold or warm", "--asiai-json=r.json", *plugin_args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = load_valid(pytester.path / "r.json")
    assert report["complete"] is True and report["exit_status"] == 1
    (case,) = report["cases"]
    cold, warm = case["phases"]["cold"]["runs"], case["phases"]["warm"]["runs"]
    assert cold[0]["ok"] and cold[0]["completion_tokens"] > 0
    assert not warm[0]["ok"] and warm[0]["error_kind"] == "disconnect", warm[0]
    outcomes = dict(outcomes_by_case(report)["dying-m-mtp_off"])
    assert outcomes["test_phase[dying-m-mtp_off-cold]"] == "passed"
    assert outcomes["test_phase[dying-m-mtp_off-warm]"] == "failed"


def _start(pytester: pytest.Pytester, *args: str) -> subprocess.Popen[bytes]:
    """pytest in its own process group, like a terminal's foreground job."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return pytester.popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )


def _wait_for_requests(engine, n: int, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(engine.requests) < n:
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.communicate()[0].decode(errors="replace") if proc.poll() is not None else ""
            proc.kill()
            pytest.fail(f"pytest never sent request {n}: {out[-2000:]}")
        time.sleep(0.01)


@pytest.fixture
def slow_project(pytester, scripted_engine):
    """Each answer streams for about 1.5 s, so a signal lands in the middle of one."""
    scripted_engine.behaviour = Behaviour(decode_ms_per_token=25)
    pytester.makefile(".toml", engines=engines_toml(("scripted", scripted_engine.base_url)))
    copy_suite(pytester.path, "test_agentic.py")
    return pytester


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "n2"])
def test_ctrl_c_mid_phase_leaves_a_valid_partial_report(slow_project, scripted_engine, xdist):
    proc = _start(slow_project, "-m", "agentic", "-k", "cold or warm", "--asiai-json=r.json", *xdist)
    _wait_for_requests(scripted_engine, 2, proc)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
    out = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    report = load_valid(slow_project.path / "r.json")
    assert report["complete"] is False and report["exit_status"] == 2
    assert [i["kind"] for i in report["incidents"]][:1] == ["interrupted"], report["incidents"]
    (case,) = report["cases"]
    assert case["phases"]["cold"]["runs"][0]["ok"], "the completed phase is kept"
    assert "warm" not in case["phases"], "the request cut short is not a measurement"
    # test_phase[cold] runs every planned phase: Ctrl-C came during its second request.
    print(report["incidents"], outcomes_by_case(report))
    assert outcomes_by_case(report)["scripted-m-mtp_off"] == [("test_phase[scripted-m-mtp_off-cold]", "interrupted")]


CRASHING_TEST = """
import os

def test_measure_then_crash(agentic):
    agentic.phase("cold")
    os._exit(3)

def test_after_the_crash(engine):
    assert engine.version == "b11434"
"""


def test_crashed_xdist_worker_loses_nothing(pytester, scripted_engine):
    pytester.makefile(".toml", engines=engines_toml(("scripted", scripted_engine.base_url)))
    pytester.makepyfile(test_crash=CRASHING_TEST)
    result = pytester.runpytest("-n", "2", "--asiai-json=r.json", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*crashed while running*test_measure_then_crash*"])
    report = load_valid(pytester.path / "r.json")
    assert report["complete"] is True
    assert "worker_crash" in [i["kind"] for i in report["incidents"]]
    (case,) = report["cases"]
    # The phase was measured inside the test that crashed: it never reached a test report, the spool kept it.
    assert case["phases"]["cold"]["runs"][0]["ok"]
    outcomes = dict(outcomes_by_case(report)["scripted-m-mtp_off"])
    assert outcomes["test_measure_then_crash[scripted-m-mtp_off]"] == "failed"
    assert outcomes["test_after_the_crash[scripted-m-mtp_off]"] == "passed"
    assert not (pytester.path / "r.json.spool").exists()


ONE_TEST_TWO_PHASES = """
def test_cold_then_warm(agentic):
    agentic.phase("cold")
    agentic.phase("warm")
"""


def test_sigkilled_run_is_rebuilt_from_its_log_and_spool(pytester, scripted_engine, tmp_path, capsys):
    scripted_engine.behaviour = Behaviour(decode_ms_per_token=25)
    pytester.makefile(".toml", engines=engines_toml(("scripted", scripted_engine.base_url)))
    pytester.makepyfile(test_both=ONE_TEST_TWO_PHASES)
    proc = _start(pytester, "--asiai-json=r.json")
    _wait_for_requests(scripted_engine, 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    log = log_path_for(pytester.path / "r.json")
    assert cli.main(["rebuild", str(log), "-o", str(tmp_path / "rebuilt.json")]) == 0
    assert "incomplete run" in capsys.readouterr().out
    report = load_valid(tmp_path / "rebuilt.json")
    assert report["complete"] is False and report["finished_at"] is None
    (case,) = report["cases"]
    # cold was measured by a test that never finished: only the spool had it.
    assert case["phases"]["cold"]["runs"][0]["ok"] and case["engine"]["version"] == "b11434"


def test_sigterm_mid_phase_stops_the_managed_engine_and_keeps_the_report(pytester):
    """A CI time limit or ``kill``: the run unwinds like Ctrl-C and leaves no engine behind."""
    script = pytester.path / "engine.py"
    script.write_text(DYING_ENGINE, encoding="utf-8")
    pytester.makefile(".toml", engines=dying_engine_toml(script, die_on=10_000))  # it never dies on its own
    copy_suite(pytester.path, "test_agentic.py")
    proc = _start(pytester, "-m", "agentic", "-k", "cold or warm", "--asiai-json=r.json")
    deadline = time.monotonic() + 60
    pid = None
    while pid is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        pid = _managed_engine_pid(pytester.path)
    assert pid is not None and psutil.pid_exists(pid), "the managed engine never started"
    _wait_for_spooled_phase(spool_dir_for(pytester.path / "r.json"), "cold", proc)
    time.sleep(0.5)  # into the second phase's stream (each answer streams for about 1.5 s)
    proc.send_signal(signal.SIGTERM)
    try:
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
        assert _gone(pid), "the engine the plugin started was stopped"
    finally:
        if not _gone(pid, timeout_s=0):
            os.killpg(pid, signal.SIGKILL)  # never leave it running, even when the test fails
    report = load_valid(pytester.path / "r.json")
    assert report["complete"] is False and report["exit_status"] == 2
    (first, *_) = report["incidents"]
    assert first["kind"] == "interrupted" and "SIGTERM" in first["message"], report["incidents"]
    (case,) = report["cases"]
    assert case["phases"]["cold"]["runs"][0]["ok"], "the completed phase is kept"


def _wait_for_spooled_phase(spool: Path, name: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    """Until the run has measured phase ``name`` (its write-ahead spool has the event): no guessed sleep."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        for path in spool_files(spool) if spool.is_dir() else []:
            if any(e.get("type") == "phase" and e["phase"]["name"] == name for e in read_events(path)):
                return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"phase {name} was never measured: {proc.communicate()[0].decode(errors='replace')[-2000:]}")


def _managed_engine_pid(project: Path) -> int | None:
    """The pid of the engine.py process the run started, once it listens."""
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(str(project / "engine.py") == part for part in cmdline) and proc.net_connections(kind="tcp"):
            return int(proc.info["pid"])
    return None


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)

"""Nothing lost: an engine that dies mid-phase, Ctrl-C, a crashed xdist worker and a SIGKILLed pytest
all leave a valid report (or a log that rebuilds one) with everything measured so far and the
failure recorded."""

from __future__ import annotations

import json
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
from pytest_asiai.report.files import log_path_for, spool_dir_for
from pytest_asiai.report.spool import read_events, spool_files

TESTS_DIR = Path(__file__).resolve().parent

# A managed engine: the scripted engine in its own process, on the port the plugin chose, that
# kills itself (like an OOM kill) in the middle of streaming its Nth chat answer.
DYING_ENGINE = f"""
import asyncio, os, sys, time
sys.path.insert(0, {str(TESTS_DIR)!r})
import scripted_engine as se

port, die_on = int(sys.argv[1]), int(sys.argv[2])
decode_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 25.0
_start_server = asyncio.start_server

async def start_server(cb, host, _port, **kw):
    return await _start_server(cb, host, port, **kw)

se.asyncio.start_server = start_server
engine = se.ScriptedEngine(se.Behaviour(decode_ms_per_token=decode_ms)).start()
while len(engine.requests) < die_on:
    time.sleep(0.005)
time.sleep(0.3)
os._exit(137)
"""


def dying_engine_toml(script: Path, die_on: int, decode_ms: float = 25.0) -> str:
    return (
        'profile = "smoke"\n[[engines]]\nname = "dying"\nkind = "llamacpp"\ndeadline_s = 20\n'
        f'[engines.managed]\ncommand = ["{sys.executable}", "{script}", "{{port}}", "{die_on}", "{decode_ms}"]\n'
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
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        # A shell's background job ignores SIGINT, and Python keeps an ignored SIGINT ignored: give the
        # child the default disposition so Ctrl-C reaches it however this test itself was started.
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


# The first worker dies as it is about to send warm, inside test_phase[cold], after cold was measured;
# the flag file makes the replacement worker carry on.
CRASH_BEFORE_WARM = """
import os
from pathlib import Path

import pytest_asiai.agentic.runner as agentic

FLAG = Path(__file__).with_name("crashed-once")
_run_one = agentic.LiveSource._run_one

def _run_one_or_crash(self, spec, repeat):
    if spec.name == "warm" and not FLAG.exists():
        FLAG.write_text(str(os.getpid()))
        os._exit(3)
    return _run_one(self, spec, repeat)

agentic.LiveSource._run_one = _run_one_or_crash
"""


def test_crashed_worker_phases_are_kept_not_remeasured_nor_failed(pytester, scripted_engine):
    """The replacement re-runs cold (warm needs its cache state) but the report keeps the dead
    worker's cold measurement, once, and does not call the test that measured it failed."""
    pytester.makefile(".toml", engines=engines_toml(("scripted", scripted_engine.base_url)))
    copy_suite(pytester.path, "test_agentic.py")
    pytester.makeconftest(CRASH_BEFORE_WARM)
    result = pytester.runpytest("-n", "2", "-m", "agentic", "-k", "cold or warm", "--asiai-json=r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()  # a crash fails the run
    dead_pid = (pytester.path / "crashed-once").read_text()
    report = load_valid(pytester.path / "r.json")
    (case,) = report["cases"]
    logged = [e for e in _log_events(log_path_for(pytester.path / "r.json")) if e.get("type") == "phase"]
    colds = [e for e in logged if e["phase"]["name"] == "cold"]
    assert len(colds) == 2, "the replacement re-ran cold; its run is in the events log"
    first = colds[0]
    assert first["origin"].endswith(f"-{dead_pid}"), "measured by the worker that died"
    assert case["phases"]["cold"] == first["phase"], "the dead worker's measurement is the one reported"
    assert len(case["phases"]["cold"]["runs"]) == 1 and case["phases"]["warm"]["runs"][0]["ok"]
    outcomes = dict(outcomes_by_case(report)["scripted-m-mtp_off"])
    assert outcomes["test_phase[scripted-m-mtp_off-cold]"] == "interrupted", outcomes
    assert outcomes["test_phase[scripted-m-mtp_off-warm]"] == "passed", outcomes
    assert "worker_crash" in [i["kind"] for i in report["incidents"]]
    rebuilt = pytester.path / "rebuilt.json"
    assert cli.main(["rebuild", str(log_path_for(pytester.path / "r.json")), "-o", str(rebuilt)]) == 0
    assert load_valid(rebuilt)["cases"][0]["phases"]["cold"] == first["phase"], "rebuild keeps the same one"


def _log_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


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


# Each answer of the SIGTERM test's engine streams for about 64 x 0.15 = 9.6 s: a run that waited for
# the running request (or for xdist's 10 s worker teardown) could not end within SIGTERM_EXIT_S.
SIGTERM_DECODE_MS = 150.0
SIGTERM_EXIT_S = 6.0


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "n2"])
def test_sigterm_mid_phase_stops_the_managed_engine_and_keeps_the_report(pytester, xdist):
    """A CI time limit or ``kill`` (to pytest alone, not its group): the run unwinds like Ctrl-C at
    once, under ``-n`` too, and leaves no engine behind."""
    script = pytester.path / "engine.py"
    script.write_text(DYING_ENGINE, encoding="utf-8")
    toml = dying_engine_toml(script, die_on=10_000, decode_ms=SIGTERM_DECODE_MS)  # it never dies on its own
    pytester.makefile(".toml", engines=toml)
    copy_suite(pytester.path, "test_agentic.py")
    args = ["-m", "agentic", "-k", "cold or warm", "--asiai-json=r.json", "-p", "no:hypothesispytest"]
    proc = _start(pytester, *args, *xdist)
    deadline = time.monotonic() + 60
    pid = None
    while pid is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        pid = _managed_engine_pid(pytester.path)
    assert pid is not None and psutil.pid_exists(pid), "the managed engine never started"
    _wait_for_spooled_phase(spool_dir_for(pytester.path / "r.json"), "cold", proc)
    time.sleep(0.5)  # into the second phase's stream
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
        took = time.monotonic() - signalled
        print(f"SIGTERM to exit: {took:.1f} s")
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
        assert took < SIGTERM_EXIT_S, f"SIGTERM to exit took {took:.1f} s: {out[-2000:]}"
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

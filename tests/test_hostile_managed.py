"""Managed engines never outlive the run (issue 14, lesser items).

A child the engine starts in its own session escaped the process-group kill; a SIGKILL of pytest
orphaned the engine. Both are checked with a tiny engine script (an HTTP health endpoint that
spawns a sleeper in a new session), without any real inference engine.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from pytest_asiai.config.matrix import Case, ManagedSpec
from pytest_asiai.engines.managed import ManagedEngine

ENGINE = textwrap.dedent(
    """
    import subprocess, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    port, pidfile = int(sys.argv[1]), sys.argv[2]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    with open(pidfile, "w") as fh:
        fh.write(str(child.pid))

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    HTTPServer(("127.0.0.1", port), Health).serve_forever()
    """
)

DRIVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pytest_asiai.engines.managed import ManagedEngine
    from pytest_asiai.config.matrix import Case, ManagedSpec

    spec = ManagedSpec(command=(sys.executable, sys.argv[1], "{port}", sys.argv[2]), health_path="/health")
    engine = ManagedEngine(Case(engine="e", model="m", mtp="off", managed=spec), Path(sys.argv[3]))
    engine.start()
    print(engine.pid, flush=True)
    time.sleep(120)
    """
)


def gone(pid: int, within_s: float = 10.0) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def kill_quietly(pid: int) -> None:
    try:
        psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        pass


@pytest.fixture
def engine_script(tmp_path: Path) -> Path:
    path = tmp_path / "engine.py"
    path.write_text(ENGINE, encoding="utf-8")
    return path


def test_stop_also_kills_a_child_in_its_own_session(tmp_path, engine_script):
    pidfile = tmp_path / "child.pid"
    spec = ManagedSpec(command=(sys.executable, str(engine_script), "{port}", str(pidfile)), health_path="/health")
    engine = ManagedEngine(Case(engine="e", model="m", mtp="off", managed=spec), tmp_path / "logs")
    engine.start()
    child = int(pidfile.read_text(encoding="utf-8"))
    try:
        engine.stop()
        assert gone(child), "the engine's own-session child survived stop()"
    finally:
        kill_quietly(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_engine_dies_with_a_sigkilled_parent(tmp_path, engine_script):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    args = [sys.executable, str(driver), str(engine_script), str(tmp_path / "child.pid"), str(tmp_path / "logs")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    engine_pid = None
    try:
        assert proc.stdout is not None
        engine_pid = int(proc.stdout.readline())
        assert not gone(engine_pid, within_s=0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert gone(engine_pid), "the managed engine outlived its SIGKILLed parent"
    finally:
        proc.kill()
        if engine_pid is not None:
            kill_quietly(engine_pid)
        if (tmp_path / "child.pid").exists():
            kill_quietly(int((tmp_path / "child.pid").read_text(encoding="utf-8")))

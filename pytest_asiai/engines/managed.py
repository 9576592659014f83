"""Engines the plugin starts itself: launch on a free loopback port, wait for health, stop, restart.

Only engines declared with ``managed`` in engines.toml are ever started or stopped; an engine given
by ``base_url`` is used as it is. At most one managed engine runs at a time, so every measurement
is taken SOLO.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

import httpx

from pytest_asiai.config.matrix import Case, ManagedSpec
from pytest_asiai.engines import family_for
from pytest_asiai.engines.orphans import descendants, kill_all, tie_to_parent
from pytest_asiai.report.redact import Redactor


class EngineStartError(Exception):
    """A managed engine died or never became healthy; the message carries its last log lines."""


def free_port(host: str) -> int:
    """Ask the OS for a port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, joined with `` | `` so an error stays on one line."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            last = deque((line.rstrip() for line in fh), maxlen=lines)
    except OSError:
        return "(no log)"
    return " | ".join(line for line in last if line) or "(empty log)"


class ManagedEngine:
    """One running process of a managed case, with its log file."""

    def __init__(self, case: Case, log_dir: Path) -> None:
        assert case.managed is not None
        self.case = case
        self.spec: ManagedSpec = case.managed
        self.log_path = log_dir / f"{case.id}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = self.spec.port
        self.starts = 0
        self._redactor = Redactor.for_cases([case])
        """Secret launch arguments stay out of the start line and the log tail quoted in errors."""

    @property
    def base_url(self) -> str:
        return f"http://{self.spec.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _fill(self, text: str) -> str:
        return text.replace("{host}", self.spec.host).replace("{port}", str(self.port))

    def command(self) -> list[str]:
        """The launch command with host and port filled in."""
        return [self._fill(arg) for arg in self.spec.command]

    def environment(self) -> dict[str, str]:
        """The engine's environment; ``{host}``/``{port}`` are filled (Ollama: ``OLLAMA_HOST``)."""
        return {**os.environ, **{k: self._fill(v) for k, v in self.spec.env.items()}}

    def start(self) -> str:
        """Launch the engine and block until its health check answers 200."""
        if self.running:
            return self.base_url
        if self.spec.port == 0:
            self.port = free_port(self.spec.host)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self.command()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== pytest-asiai start: {' '.join(self._redactor.scrub(command))}\n".encode())
            try:
                self.process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.environment(),
                    start_new_session=True,
                    preexec_fn=tie_to_parent(),
                )
            except OSError as exc:
                raise EngineStartError(
                    f"engine {self.case.id}: cannot run {command[0]!r}: {exc.strerror or exc} "
                    f"(run ./scripts/setup-engine, or fix managed.command in {self.case.source})"
                ) from None
        self.starts += 1
        self._wait_healthy()
        return self.base_url

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.spec.startup_timeout_s
        url = self.base_url + (self.spec.health_path or family_for(self.case.kind).health_path)
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                code = self.process.poll() if self.process else None
                if code is not None:
                    raise EngineStartError(
                        f"engine {self.case.id} exited with code {code} during start-up; "
                        f"log {self.log_path}: {self._redactor.text(tail(self.log_path))}"
                    )
                try:
                    if http.get(url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise EngineStartError(
            f"engine {self.case.id} not healthy at {url} after {self.spec.startup_timeout_s:g} s; "
            f"log {self.log_path}: {self._redactor.text(tail(self.log_path))}"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the engine's process group, killing it if it does not exit in time."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        below = descendants(proc.pid)  # before the group dies: a child in its own session escapes killpg
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            kill_all(below)
            return
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout_s)
        kill_all(below)

    def restart(self) -> str:
        """Stop and start again on the same port: the engine's in-memory caches are gone."""
        self.stop()
        return self.start()


class EngineManager:
    """Owns every managed engine of the session and keeps at most one running (SOLO)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.engines: dict[str, ManagedEngine] = {}

    def ensure(self, case: Case) -> ManagedEngine:
        """Start the case's engine if needed, after stopping any other engine we started."""
        for other_id, other in self.engines.items():
            if other_id != case.id and other.running:
                other.stop()
        engine = self.engines.get(case.id)
        if engine is None:
            engine = self.engines[case.id] = ManagedEngine(case, self.log_dir)
        engine.start()
        return engine

    def stop_all(self) -> None:
        for engine in self.engines.values():
            engine.stop()

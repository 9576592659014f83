"""A live line while a long request runs, and one line per long test in logs.

On an interactive terminal (not ``-q``, not an xdist worker), once a request has run for
:data:`SHOW_AFTER_S`, a line below pytest's output shows the test, the elapsed time and what the
stream has brought so far; it is erased when the request ends, before pytest writes again. Where
stdout is not a terminal (CI logs) nothing is redrawn: each test that took longer than
:data:`SHOW_AFTER_S` gets one ``asiai: ... finished in N s`` line instead.

Nothing here runs on the thread that times the request: the client only registers its request in
:data:`pytest_asiai.wire.client.IN_FLIGHT` before its clock starts and removes it after it stops; a
separate daemon thread reads that entry twice a second. The line goes to a duplicate of the
terminal's file descriptor taken before pytest captures output, so a test's captured output never
holds it.

Prefill progress: llama-server b11434 can stream ``prompt_progress`` events (``return_progress``),
but that changes the measured request and its stream, so it is not used. Its ``GET /slots`` reports
``n_prompt_tokens_processed`` and ``n_prompt_tokens_cache`` of the busy slot; it is asked at most
every :data:`SLOTS_EVERY_S` while no token has arrived yet, and never again for a server that does
not answer it (other families). Each ask costs the engine one short task on its main loop (it also
detokenises the slot's prompt), which is why it is this rare.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pytest_asiai.wire import client

SHOW_AFTER_S = 3.0
TICK_S = 0.5
SLOTS_EVERY_S = 5.0

Prefill = tuple[int, int]
"""(prompt tokens processed, of which taken from the cache) as llama-server's /slots reports them."""


def render(label: str, elapsed_s: float, chunks: int, prefill: Prefill | None, width: int) -> str:
    """The live line's text, cut to ``width`` columns."""
    if chunks:
        state = f"{chunks} token chunk{'s' if chunks != 1 else ''} streamed"
    elif prefill is not None:
        state = f"prefill: {prefill[0]} prompt tokens processed ({prefill[1]} from cache)"
    else:
        state = "waiting for the first token"
    text = f"asiai: {label}  {elapsed_s:.0f} s  {state}"
    return text if len(text) < width else text[: max(1, width - 2)] + "…"


def slots_prefill(chat_url: str, timeout_s: float = 1.0) -> Prefill | None:
    """The busy slot's prefill counts from llama-server's ``GET /slots``; None when not reported."""
    base = chat_url.split("/v1/", 1)[0]
    response = httpx.get(f"{base}/slots", timeout=timeout_s, trust_env=False)
    slots = response.json() if response.status_code == 200 else None
    if not isinstance(slots, list):
        raise LookupError("no /slots")
    for slot in slots:
        if isinstance(slot, dict) and slot.get("is_processing"):
            done, cached = slot.get("n_prompt_tokens_processed"), slot.get("n_prompt_tokens_cache")
            if isinstance(done, int) and isinstance(cached, int):
                return done, cached
    return None


class LiveLine:
    """The display thread and the terminal line it owns."""

    def __init__(
        self,
        fd: int,
        width: Callable[[], int],
        column: Callable[[], int],
        prefill: Callable[[str], Prefill | None] = slots_prefill,
    ) -> None:
        self._fd, self._width, self._column, self._prefill = fd, width, column, prefill
        self._lock = threading.Lock()
        self._shown = False
        self._col = 0
        self.label = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="asiai-progress", daemon=True)
        self._no_slots: set[str] = set()
        self._slots_at: dict[int, float] = {}
        self._last_prefill: dict[int, Prefill] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * TICK_S + 1)
        self.clear()
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def clear(self) -> None:
        """Erase the line and put the cursor back where pytest left it (called before pytest writes)."""
        with self._lock:
            if self._shown:
                self._write(f"\r\x1b[K\x1b[1A\x1b[{self._col + 1}G")
                self._shown = False

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._fd, text.encode("utf-8", "replace"))

    def _draw(self, text: str) -> None:
        with self._lock:
            if not self._shown:
                self._col = self._column()
                self._write("\n")
                self._shown = True
            self._write(f"\r{text}\x1b[K")

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            entry = next(iter(list(client.IN_FLIGHT.values())), None)
            line = self._line(*entry) if entry is not None else None
            if line is None:
                self.clear()
            else:
                self._draw(line)

    def _line(self, url: str, acc: Any) -> str | None:
        t0 = acc.t0_ns
        if not t0:
            return None
        elapsed = (time.perf_counter_ns() - t0) / 1e9
        if elapsed < SHOW_AFTER_S:
            return None
        chunks = len(acc.token_ns)
        prefill = None if chunks else self._prefill_of(url, t0)
        return render(self.label, elapsed, chunks, prefill, self._width())

    def _prefill_of(self, url: str, request: int) -> Prefill | None:
        """Ask /slots at most every SLOTS_EVERY_S per request; remember the last answer in between."""
        if url in self._no_slots:
            return None
        now = time.monotonic()
        if now - self._slots_at.get(request, 0.0) >= SLOTS_EVERY_S:
            self._slots_at = {request: now}
            try:
                found = self._prefill(url)
            except (httpx.HTTPError, ValueError, LookupError):
                self._no_slots.add(url)
                return None
            self._last_prefill = {request: found} if found is not None else {}
        return self._last_prefill.get(request)


class ProgressPlugin:
    """Hooks of the live line (registered by pytest_asiai/plugin.py as ``asiai-progress``)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.live: LiveLine | None = None
        self.started: dict[str, float] = {}

    def pytest_sessionstart(self) -> None:
        """The terminal reporter exists by now; output is not captured between tests."""
        if self.config.pluginmanager.get_plugin("terminalreporter") is None:
            return
        fd = _terminal_fd()
        if fd is not None:
            writer = self.config.get_terminal_writer()
            self.live = LiveLine(fd, lambda: writer.fullwidth, lambda: writer.width_of_current_line)
            self.live.start()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        if self.live is not None:
            self.live.clear()
            self.live.label = nodeid.rsplit("::", 1)[-1]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Time the tests of a case (phases, gates, suites), not the project's other tests."""
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "asiai_case" in callspec.params:
            self.started[item.nodeid] = time.monotonic()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.live is not None:
            self.live.clear()
        elif report.when == "teardown":
            self._log_line(report.nodeid)

    def _log_line(self, nodeid: str) -> None:
        """Without a live line: one line for a test that ran long (CI logs)."""
        if nodeid not in self.started:
            return
        took = time.monotonic() - self.started.pop(nodeid)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if took >= SHOW_AFTER_S and reporter is not None:
            reporter.write_line(f"asiai: {nodeid.rsplit('::', 1)[-1]} finished in {took:.1f} s")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def _terminal_fd() -> int | None:
    """A duplicate of stdout's descriptor when it is an interactive terminal, else None."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    if not os.isatty(fd) or os.environ.get("TERM") == "dumb":
        return None
    return os.dup(fd)


def install(config: pytest.Config) -> None:
    """Register the progress hooks unless ``-q`` (or quieter) or on an xdist worker."""
    if config.get_verbosity() >= 0 and not hasattr(config, "workerinput"):
        config.pluginmanager.register(ProgressPlugin(config), "asiai-progress")

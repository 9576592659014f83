"""The measured engine's processes, found from its listening port, then its process tree.

Never by name: names are ambiguous (two llama-servers, LM Studio's helpers, Ollama's runners belong
to ``ollama serve``). An engine whose process is not on this machine has no processes here, and
``reason`` says why, so its memory is "not measured", never 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import psutil

from pytest_asiai.engines.probe import host_of, port_of
from pytest_asiai.engines.processes import is_local, listener_pid, process_tree

#: How often the engine's process tree is re-read, and a missing listener looked for again.
TREE_REFRESH_S = 5.0


def _listens_on(pid: int, port: int) -> bool:
    try:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for c in psutil.Process(pid).net_connections(kind="tcp")
        )
    except (psutil.Error, OSError):
        return False


class EngineSource(Protocol):
    """What the locator needs from an engine handle (``EngineHandle`` satisfies it)."""

    @property
    def base_url(self) -> str | None: ...

    @property
    def pid(self) -> int | None: ...


class EngineLocator:
    """Finds an engine's processes from its listening port, caching the tree between refreshes."""

    def __init__(self, source: EngineSource, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self._clock = clock
        self.root: psutil.Process | None = None
        self.tree: list[psutil.Process] = []
        self.port: int | None = None
        self.reason = "the engine has not started yet"
        self._next_refresh = 0.0
        self._next_scan = 0.0

    def remote_host(self) -> str | None:
        """The engine's host when it is not this machine (its processes cannot be measured)."""
        url = self.source.base_url
        if url is None:
            return None
        return None if is_local(url) else host_of(url)

    def processes(self) -> list[psutil.Process]:
        """The engine's process tree now ([] while it is not found; ``reason`` says why)."""
        url = self.source.base_url
        if url is None:
            return []
        if (host := self.remote_host()) is not None:
            self.reason = f"remote engine at {host}: its processes are not on this machine"
            return []
        self.port = port_of(url)
        if self.port is None:
            self.reason = f"no port in base URL {url}"
            return []
        if self.root is None or not self.root.is_running():
            self._find_root(self.port)
        elif self._clock() >= self._next_refresh:
            self._refresh_tree()
        return self.tree

    def _find_root(self, port: int) -> None:
        """The managed engine's own PID when it listens (cheap), else a scan of the listeners."""
        hint = self.source.pid
        pid = hint if hint is not None and _listens_on(hint, port) else None
        if pid is None:
            self.root, self.tree = None, []
            if self._clock() < self._next_scan:
                return
            self._next_scan = self._clock() + TREE_REFRESH_S
            pid = listener_pid(port)
        if pid is None:
            self.reason = f"no process found listening on port {port}"
            return
        try:
            self.root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        self.tree = process_tree(pid)
        self._next_refresh = self._clock() + TREE_REFRESH_S

    def _refresh_tree(self) -> None:
        self._next_refresh = self._clock() + TREE_REFRESH_S
        assert self.root is not None
        self.tree = process_tree(self.root.pid) or self.tree

    def pids(self) -> list[int]:
        return [p.pid for p in self.tree]

"""Which processes are an engine: the listener of its port first, then its process tree (psutil).

asiai matched ``ps`` command lines by substring and summed every match (LM Studio helpers, a second
llama-server, ``llama-server-turboquant``), and only fell back to the port when no name matched; its
port parser returned 0 for a URL with a path. Here the port decides: the process listening on it is
the engine, its children belong to it (Ollama runners). Names only serve the SOLO scan, and match
whole command words (``llama-server``, ``ollama serve``, ``python -m llama_cpp.server``), never
substrings of arguments.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence

import psutil

from pytest_asiai.engines.probe import host_of, port_of

_PYTHON_OPTS_WITH_VALUE = {"-W", "-X", "-c", "-Q"}


def is_local(base_url: str) -> bool:
    """True when the URL's host is this machine (loopback, its own name or address)."""
    host = host_of(base_url)
    if host in ("localhost", "", socket.gethostname()):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.is_loopback or address.is_unspecified:
        return True
    return host in _own_addresses()


def _own_addresses() -> set[str]:
    try:
        return {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}
    except (OSError, psutil.Error):
        return set()


def _listeners(conns: Iterable[object], port: int) -> list[int]:
    out: list[int] = []
    for c in conns:
        laddr = getattr(c, "laddr", None)
        pid = getattr(c, "pid", None)
        if getattr(c, "status", None) == psutil.CONN_LISTEN and laddr and laddr.port == port and pid:
            out.append(int(pid))
    return out


def listener_pid(port: int) -> int | None:
    """PID of the process listening on TCP ``port``; per-process scan where the global one is denied."""
    try:
        pids = _listeners(psutil.net_connections(kind="tcp"), port)
    except (psutil.AccessDenied, PermissionError, OSError):
        pids = [proc.pid for proc in psutil.process_iter() if _listens(proc, port)]
    return min(pids) if pids else None


def _listens(proc: psutil.Process, port: int) -> bool:
    try:
        conns = proc.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (those still alive)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def engine_processes(base_url: str) -> list[psutil.Process]:
    """The engine behind ``base_url``: its port's listener and descendants; empty for a remote host."""
    port = port_of(base_url)
    if port is None or not is_local(base_url):
        return []
    pid = listener_pid(port)
    return process_tree(pid) if pid is not None else []


def _is_python(word: str) -> bool:
    name = os.path.basename(word).lower()
    return name.startswith("python") or name in ("pythonw", "pypy", "pypy3", "uv", "uvx")


def command_words(argv: Sequence[str]) -> list[str]:
    """Words naming the program: ``llama-server``; ``ollama serve``; ``python -m mlx_lm server`` gives
    ``["mlx_lm", "server"]``; ``python /venv/bin/mlx_lm.server`` gives ``["mlx_lm.server", ...]``."""
    if not argv:
        return []
    words = list(argv)
    if _is_python(words[0]):
        i = 1
        while i < len(words) and words[i].startswith("-") and words[i] != "-m":
            i += 2 if words[i] in _PYTHON_OPTS_WITH_VALUE else 1
        if i < len(words) and words[i] == "-m":
            i += 1
        words = words[i:]
    if not words:
        return []
    return [os.path.basename(words[0]), *words[1:3]]


def launcher(argv: Sequence[str]) -> list[str]:
    """The prefix that runs the same program again (binary; python + script; python -m module)."""
    if not argv:
        return []
    if not _is_python(argv[0]):
        return [argv[0]]
    words = command_words(argv)
    if not words:
        return [argv[0]]
    index = list(argv).index(words[0]) if words[0] in argv else -1
    if index > 0 and argv[index - 1] == "-m":
        return [argv[0], "-m", words[0]]
    script = next((a for a in argv[1:] if os.path.basename(a) == words[0]), None)
    return [argv[0], script] if script else [argv[0]]


def matches(patterns: Iterable[Sequence[str]], argv: Sequence[str], name: str = "") -> bool:
    """True when the command words start with one of the patterns (or the process name is one)."""
    words = command_words(argv)
    for pattern in patterns:
        if list(pattern) == words[: len(pattern)]:
            return True
        if len(pattern) == 1 and name == pattern[0]:
            return True
    return False


def argv_of(proc: psutil.Process) -> list[str]:
    """Command line with argv[0] made absolute where it was not: looked up on the process's own
    ``PATH`` (a venv's ``bin/python`` stays the venv's: its packages name the engine's version),
    else the resolved executable. An absolute argv[0] is kept as it is, symlink included, because
    ``proc.exe()`` resolves a venv's python to the base interpreter, which lacks the venv's packages."""
    try:
        argv = proc.cmdline()
    except psutil.Error:
        return []
    if not argv or os.path.isabs(argv[0]):
        return argv
    return [_on_path(proc, argv[0]) or _exe(proc) or argv[0], *argv[1:]]


def _exe(proc: psutil.Process) -> str:
    try:
        return proc.exe()
    except psutil.Error:
        return ""


def _on_path(proc: psutil.Process, word: str) -> str | None:
    """Where ``word`` resolves for the process itself (its cwd and PATH), or None when unknown."""
    try:
        env, cwd = proc.environ(), proc.cwd()
    except (psutil.Error, OSError):
        return None
    if os.sep in word:
        candidate = os.path.join(cwd, word)
        return candidate if os.access(candidate, os.X_OK) else None
    for folder in env.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(cwd, folder, word) if folder else os.path.join(cwd, word)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.normpath(candidate)
    return None


def name_of(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return ""

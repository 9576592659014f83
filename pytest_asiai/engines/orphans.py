"""No managed engine outlives the run that started it (issue 14, lesser items).

Two ways an engine escaped: pytest itself was SIGKILLed (no ``finally`` runs, the engine kept its
port and memory, and the next run's duplicates gate caught it), and an engine's child started its
own session (``setsid``), so the process-group kill in :meth:`ManagedEngine.stop
<pytest_asiai.engines.managed.ManagedEngine.stop>` missed it.

On Linux the child asks the kernel, before ``exec``, to be sent SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``). macOS has no such call: there an engine survives a SIGKILLed pytest
until the next run (a watchdog process polling ``getppid()`` would be the remaining option; kqueue's
``NOTE_EXIT`` on the parent pid from a helper is the other). Descendants that left the process group
are found through the process tree (psutil) and killed after the group.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Callable

import psutil

PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(parent: int) -> None:
    """Runs in the child between fork and exec: die with the parent, even if it already died."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def tie_to_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that ties the child's life to this process (Linux), else None.

    The signal fires when the *thread* that forked exits, so it is only set from the main thread,
    which lives as long as pytest does.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()
    return lambda: _set_parent_death_signal(parent)


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below ``pid`` now (including those that started their own session)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def kill_all(processes: list[psutil.Process]) -> None:
    """SIGKILL whatever of ``processes`` still runs (a pid reused since is told apart by psutil)."""
    for proc in processes:
        try:
            if proc.is_running():
                proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(processes, timeout=5)

"""SIGTERM ends a run the way Ctrl-C does, so nothing is left behind.

A CI job that hits its time limit, ``kill``, or a closing terminal sends SIGTERM; by default Python
dies on it at once, leaving the engines the plugin started running (they live in their own session,
so the signal does not reach them) and the report without its final write. Turning SIGTERM into
``KeyboardInterrupt`` lets pytest unwind: the partial report is written with an ``interrupted``
incident and the managed engines are stopped. A handler someone else installed is left alone.

Under ``-n`` the signal reaches the controller only (``kill PID``, a CI runner that signals one
process), and the controller runs no test: on its interrupt xdist asks the workers to exit, and
execnet lets a busy worker finish its test for 5 s before it interrupts it (``_terminate_execution``
in execnet's ``gateway_base.py``), so the run took 8 s or more (16 s in the issue 14 trial). The
controller therefore passes the signal on to its local workers, which unwind like a serial run at
once (their own handler is this one), stopping their managed engines; the run ends in about 2-5 s
on a loaded 2-core machine (``test_sigterm_mid_phase_stops_the_managed_engine_and_keeps_the_report``
in tests/test_nothing_lost.py).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import pytest

_PREVIOUS = pytest.StashKey[Any]()
_HANDLER = pytest.StashKey[Any]()


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt (its message names the signal in the report)."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"terminated by signal {signal.Signals(signum).name}")


def worker_processes(config: pytest.Config) -> list[Any]:
    """The ``Popen`` of each local xdist worker of this controller (none in a serial run or a worker).

    Read from xdist's node manager and execnet's popen gateways (private attributes, hence ``getattr``
    throughout: a remote or changed gateway is simply not signalled, and the run ends as before).
    """
    dsession = config.pluginmanager.get_plugin("dsession")
    group = getattr(getattr(dsession, "nodemanager", None), "group", None)
    ios: list[Any] = [getattr(gw, "_io", None) for gw in group or ()]
    return [io.popen for io in ios if hasattr(io, "popen")]


def _forward(config: pytest.Config) -> Any:
    """The SIGTERM handler: pass the signal on to this controller's workers, then interrupt here."""

    def handler(signum: int, frame: FrameType | None) -> None:
        for popen in worker_processes(config):
            if popen.poll() is None:
                popen.send_signal(signum)
        _interrupt(signum, frame)

    return handler


def install(config: pytest.Config) -> None:
    """Handle SIGTERM for this run when nobody else does (main thread only, where signals land)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    handler = config.stash[_HANDLER] = _forward(config)
    config.stash[_PREVIOUS] = signal.signal(signal.SIGTERM, handler)


def uninstall(config: pytest.Config) -> None:
    """Give SIGTERM back its previous meaning (an in-process pytester run must not keep ours)."""
    previous = config.stash.get(_PREVIOUS, None)
    if previous is not None and signal.getsignal(signal.SIGTERM) is config.stash.get(_HANDLER, None):
        signal.signal(signal.SIGTERM, previous)
        del config.stash[_PREVIOUS]

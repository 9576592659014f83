"""SIGTERM ends a run the way Ctrl-C does, so nothing is left behind.

A CI job that hits its time limit, ``kill``, or a closing terminal sends SIGTERM; by default Python
dies on it at once, leaving the engines the plugin started running (they live in their own session,
so the signal does not reach them) and the report without its final write. Turning SIGTERM into
``KeyboardInterrupt`` lets pytest unwind: the partial report is written with an ``interrupted``
incident and the managed engines are stopped. A handler someone else installed is left alone.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import pytest

_PREVIOUS = pytest.StashKey[Any]()


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt (its message names the signal in the report)."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"terminated by signal {signal.Signals(signum).name}")


def install(config: pytest.Config) -> None:
    """Handle SIGTERM for this run when nobody else does (main thread only, where signals land)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    config.stash[_PREVIOUS] = signal.signal(signal.SIGTERM, _interrupt)


def uninstall(config: pytest.Config) -> None:
    """Give SIGTERM back its previous meaning (an in-process pytester run must not keep ours)."""
    previous = config.stash.get(_PREVIOUS, None)
    if previous is not None and signal.getsignal(signal.SIGTERM) is _interrupt:
        signal.signal(signal.SIGTERM, previous)
        del config.stash[_PREVIOUS]

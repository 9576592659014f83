"""Where the report's files go and how they are written: atomically, beside their events log and spool.

A report path is checked before a run starts (:func:`output_problem`), every write goes through a
temporary file renamed over the target (:func:`atomic_write`), so a viewer, a baseline reader or a
crash never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def log_path_for(json_path: Path) -> Path:
    """The incremental JSON Lines log kept beside the report."""
    return json_path.with_name(json_path.name + ".events.jsonl")


def spool_dir_for(json_path: Path) -> Path:
    """Where every process spools its events during a run (removed after a clean finish)."""
    return json_path.with_name(json_path.name + ".spool")


def output_problem(path: Path) -> str | None:
    """Why a file cannot be written at ``path`` (one line), or None; checked before a run starts.

    A report path under a regular file or pointing at a directory used to crash at the end of a
    benchmark (INTERNALERROR, no report); :func:`atomic_write` needs a writable directory.
    """
    if path.is_dir():
        return f"{path} is a directory"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable"
    return None


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_report(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=1, default=str, allow_nan=False) + "\n"

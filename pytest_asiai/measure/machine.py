"""What the run was measured on: the machine and the source tree, for reports and baseline matching.

Benchmarks are only comparable on the same hardware in the same power state, so the report says
which machine it came from (OS, CPU model, cores, RAM, and on macOS the chip and the power mode),
and which commit of the user's project ran it. Every look-up is best effort: one that does not
apply (macOS-only ones elsewhere) or fails reports ``None``, never a guess.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

COMMAND_TIMEOUT_S = 5.0


def _run(args: list[str], cwd: Path | None = None) -> str | None:
    """stdout of a short command, or None when it is missing, fails or hangs."""
    try:
        done = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def cpu_model() -> str | None:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS)."""
    if platform.system() == "Darwin":
        return _run(["sysctl", "-n", "machdep.cpu.brand_string"])
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or None
    for key in ("model name", "Hardware", "Processor"):
        if m := re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE):
            return m.group(1).strip()
    return platform.processor() or None


def macos_chip() -> str | None:
    """Apple Silicon chip name (e.g. ``Apple M4 Pro``); None off macOS or on Intel Macs."""
    if platform.system() != "Darwin":
        return None
    brand = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
    return brand if brand and brand.startswith("Apple") else None


POWER_MODES = {"0": "automatic", "1": "low power", "2": "high power"}


def parse_pmset(text: str) -> str | None:
    """The power mode from ``pmset -g`` output (``powermode`` on recent macOS, ``lowpowermode`` before)."""
    if m := re.search(r"^\s*powermode\s+(\d)", text, re.MULTILINE):
        return POWER_MODES.get(m.group(1), m.group(1))
    if m := re.search(r"^\s*lowpowermode\s+(\d)", text, re.MULTILINE):
        return "low power" if m.group(1) == "1" else "automatic"
    return None


def macos_power_mode() -> str | None:
    """Low power mode halves throughput on a MacBook: a report must say when it was on."""
    if platform.system() != "Darwin":
        return None
    text = _run(["pmset", "-g"])
    return parse_pmset(text) if text else None


def macos_power_source() -> str | None:
    """``AC Power`` or ``Battery Power`` (``pmset -g ps``)."""
    if platform.system() != "Darwin":
        return None
    text = _run(["pmset", "-g", "ps"])
    m = re.search(r"'([^']+)'", text or "")
    return m.group(1) if m else None


def machine_info() -> dict[str, Any]:
    """The machine block of a report."""
    memory = psutil.virtual_memory().total
    return {
        "hostname": platform.node() or None,
        "os": platform.system() or None,
        "os_release": platform.release() or None,
        "platform": platform.platform(),
        "arch": platform.machine() or None,
        "cpu_model": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_bytes": int(memory),
        "chip": macos_chip(),
        "power_mode": macos_power_mode(),
        "power_source": macos_power_source(),
    }


def machine_id(machine: dict[str, Any] | None) -> str | None:
    """A stable name for the hardware (not the host name), so two identical Macs compare as one.

    ``Linux-x86_64-AMD EPYC 7B13-2c-24g``: OS, architecture, chip or CPU model, logical cores and RAM
    rounded to whole GiB. ``None`` when the report carries no machine block.
    """
    if not machine:
        return None
    ram = machine.get("ram_bytes")
    ram_gb = f"{round(ram / 2**30)}g" if isinstance(ram, int) else "?g"
    cpu = machine.get("chip") or machine.get("cpu_model") or "?"
    return (
        f"{machine.get('os') or '?'}-{machine.get('arch') or '?'}-{cpu}-{machine.get('cores_logical') or '?'}c-{ram_gb}"
    )


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})


def case_machine_id(local: str | None, case: Mapping[str, Any]) -> str | None:
    """Where a case's engine ran: this machine for managed and loopback engines, else its host.

    In a fleet (several Macs, one ``base_url`` each) the engine's host is the machine; pytest runs
    elsewhere and cannot describe it. A description may pin ``machine_id`` (replayed recordings do).
    """
    if case.get("machine_id"):  # pinned in the report (a merged baseline keeps each case's machine)
        return str(case["machine_id"])
    desc = case.get("case") or {}
    engine = case.get("engine") or {}
    if desc.get("machine_id"):
        return str(desc["machine_id"])
    url = engine.get("base_url") or desc.get("base_url")
    if desc.get("managed") or engine.get("managed") or not url:
        return local
    host = urlsplit(str(url)).hostname
    return local if host is None or host in LOOPBACK_HOSTS else f"host:{host}"


def git_info(directory: Path) -> dict[str, Any]:
    """Commit and dirty flag of the git work tree containing ``directory`` (all None outside one)."""
    commit = _run(["git", "rev-parse", "HEAD"], cwd=directory)
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None}
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory)
    branch = _run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=directory)
    return {"commit": commit, "branch": branch, "dirty": None if status is None else bool(status)}

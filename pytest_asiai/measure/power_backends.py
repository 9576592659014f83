"""Power backends: where energy readings come from, on macOS only, and their pure parsers.

- ``ioreport``: the "Energy Model" group of the private ``/usr/lib/libIOReport.dylib`` through
  ctypes, no sudo, as asiai does (docs/asiai-protocol.md §2.7). ``soc = cpu + gpu + ane + dram + dcs``.
- ``powermetrics``: ``sudo -n powermetrics`` text output, only when the user asks for it
  (``--asiai-power=powermetrics`` or ``ASIAI_POWER=powermetrics``): it needs a sudoers rule. ``soc``
  is its combined CPU+GPU+ANE power (no DRAM), recorded as such in ``source``. Its samples are
  stamped when the sampler reads them, up to one interval after they end: windows shorter than
  ~0.5 s are approximate with this backend.

Everywhere else, or when a backend cannot start, :func:`open_backend` returns None and the reason.
The parsers are pure and tested on recorded samples (``tests/test_power.py``); the energy series and
per-request windows that consume the readings are in ``measure/power.py``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: How often the IOReport backend reads its counters (powermetrics samples at the same rate).
INTERVAL_S = 0.2
#: Energy units of IOReport channels, to joules (docs/asiai-protocol.md §2.7; the same table in mactop's ioreport.go).
UNIT_TO_J = {"mJ": 1e-3, "uJ": 1e-6, "µJ": 1e-6, "nJ": 1e-9}
ENV = "ASIAI_POWER"
MODES = ("auto", "ioreport", "powermetrics", "off")


@dataclass(frozen=True, slots=True)
class Joules:
    """Energy over one sampling interval: the SoC total and the GPU share (None when not read)."""

    soc: float
    gpu: float | None = None


# ----------------------------------------------------------------------------- IOReport parsing


def _component(channel: str) -> str | None:
    """asiai's channel mapping (docs/asiai-protocol.md §2.7), case-insensitive: ``CPU Energy`` → cpu, ``GPU`` → gpu
    (mJ), ``GPU Energy`` → gpu_alt (nJ, used only without ``GPU``), ``ANE*``, ``DRAM*``, ``DCS*``."""
    name = channel.strip().lower()
    exact = {"cpu energy": "cpu", "gpu": "gpu", "gpu energy": "gpu_alt"}
    if name in exact:
        return exact[name]
    return next((p for p in ("ane", "dram", "dcs") if name.startswith(p)), None)


def ioreport_joules(channels: Iterable[tuple[str, str, str, float]]) -> Joules | None:
    """One IOReport delta sample, ``(group, channel, unit, value)`` per channel, as joules.

    Only the "Energy Model" group counts; a channel with an unknown unit is skipped (asiai does the
    same). None when no energy channel was found: that is "not measured", not 0 W.
    """
    parts: dict[str, float] = {}
    for group, channel, unit, value in channels:
        component = _component(channel) if group == "Energy Model" else None
        scale = UNIT_TO_J.get(unit.strip())
        if component is None or scale is None:
            continue
        parts[component] = parts.get(component, 0.0) + value * scale
    if "gpu" not in parts and "gpu_alt" in parts:
        parts["gpu"] = parts["gpu_alt"]
    parts.pop("gpu_alt", None)
    if not parts:
        return None
    return Joules(soc=sum(parts.values()), gpu=parts.get("gpu"))


def parse_ioreport_dump(text: str) -> list[tuple[float, Joules | None]]:
    """The IOReport backend's recorded output: ``t=<epoch>`` lines, each followed by channel lines
    ``<group> | <channel> | <unit> | <integer>`` (one delta sample); returns (t, joules) pairs."""
    samples: list[tuple[float, list[tuple[str, str, str, float]]]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("t="):
            samples.append((float(line[2:]), []))
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != 4 or not samples:
            raise ValueError(f"line {lineno}: expected 'group | channel | unit | value' after a t= line: {raw!r}")
        samples[-1][1].append((fields[0], fields[1], fields[2], float(fields[3])))
    return [(t, ioreport_joules(channels)) for t, channels in samples]


# ----------------------------------------------------------------------------- powermetrics parsing

_PM_HEADER = re.compile(r"^\*\*\* Sampled system activity \(.*\) \((?P<ms>[\d.]+)\s*ms elapsed\) \*\*\*")
_PM_POWER = re.compile(r"^(?P<what>CPU|GPU|ANE|Combined) Power(?: \([^)]*\))?:\s*(?P<mw>[\d.]+)\s*mW", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class PowermetricsSample:
    """One ``powermetrics`` sample: its interval and the power lines it printed, in watts."""

    elapsed_s: float
    watts: Mapping[str, float]

    def joules(self) -> Joules | None:
        """Combined (CPU + GPU + ANE) energy over the interval; None without a power line."""
        w = self.watts
        soc = w.get("Combined")
        if soc is None and any(k in w for k in ("CPU", "GPU", "ANE")):
            soc = sum(w.get(k, 0.0) for k in ("CPU", "GPU", "ANE"))
        if soc is None:
            return None
        gpu = w.get("GPU")
        return Joules(soc * self.elapsed_s, None if gpu is None else gpu * self.elapsed_s)


def parse_powermetrics(text: str) -> list[PowermetricsSample]:
    """Samples of ``powermetrics`` text output: a ``*** Sampled system activity (…) (N ms elapsed)
    ***`` header (the format in Mozilla's powermetrics guide), then ``CPU Power: N mW`` lines (the
    Apple Silicon ``cpu_power`` sampler, as joular/MacPowerMonitor's powermonitor-arm.sh reads them)."""
    blocks = re.split(r"(?m)^(?=\*\*\* Sampled system activity)", text)
    out = []
    for block in blocks:
        header = _PM_HEADER.match(block.strip())
        if header is None:
            continue
        watts = {m["what"]: float(m["mw"]) / 1000.0 for m in _PM_POWER.finditer(block)}
        out.append(PowermetricsSample(float(header["ms"]) / 1000.0, watts))
    return out


# ----------------------------------------------------------------------------- backends


class Backend(Protocol):
    """A source of energy deltas: ``read()`` is the energy since the previous read (None: no data)."""

    source: str

    def read(self) -> Joules | None: ...

    def close(self) -> None: ...


class IOReportBackend:
    """The "Energy Model" IOReport group through ctypes (macOS, no sudo).

    Not exercisable on the Linux CI: the channel parsing it feeds (:func:`ioreport_joules`) is what
    the tests cover; the ctypes calls follow the signatures in context-labs/mactop's ioreport.go.
    """

    source = "ioreport"
    _UTF8 = 0x08000100

    def __init__(self) -> None:
        cf = ctypes.CDLL("/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation")
        ior = ctypes.CDLL("/usr/lib/libIOReport.dylib")
        vp, u64 = ctypes.c_void_p, ctypes.c_uint64
        self._sig(cf, "CFStringCreateWithCString", vp, [vp, ctypes.c_char_p, ctypes.c_uint32])
        self._sig(cf, "CFStringGetCString", ctypes.c_bool, [vp, ctypes.c_char_p, ctypes.c_long, ctypes.c_uint32])
        self._sig(cf, "CFDictionaryGetValue", vp, [vp, vp])
        self._sig(cf, "CFArrayGetCount", ctypes.c_long, [vp])
        self._sig(cf, "CFArrayGetValueAtIndex", vp, [vp, ctypes.c_long])
        self._sig(cf, "CFRelease", None, [vp])
        self._sig(ior, "IOReportCopyChannelsInGroup", vp, [vp, vp, u64, u64, u64])
        self._sig(ior, "IOReportCreateSubscription", vp, [vp, vp, ctypes.POINTER(vp), u64, vp])
        self._sig(ior, "IOReportCreateSamples", vp, [vp, vp, vp])
        self._sig(ior, "IOReportCreateSamplesDelta", vp, [vp, vp, vp])
        self._sig(ior, "IOReportSimpleGetIntegerValue", ctypes.c_int64, [vp, ctypes.c_int32])
        for name in ("IOReportChannelGetGroup", "IOReportChannelGetChannelName", "IOReportChannelGetUnitLabel"):
            self._sig(ior, name, vp, [vp])
        self.cf, self.ior = cf, ior
        channels = ior.IOReportCopyChannelsInGroup(self._str("Energy Model"), None, 0, 0, 0)
        if not channels:
            raise OSError("IOReport has no 'Energy Model' channel group on this Mac")
        self._subbed = vp()
        self._sub = ior.IOReportCreateSubscription(None, channels, ctypes.byref(self._subbed), 0, None)
        if not self._sub:
            raise OSError("IOReport subscription to 'Energy Model' failed")
        self._key = self._str("IOReportChannels")
        self._prev = ior.IOReportCreateSamples(self._sub, self._subbed, None)

    @staticmethod
    def _sig(lib: Any, name: str, restype: Any, argtypes: list[Any]) -> None:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes

    def _str(self, text: str) -> Any:
        return self.cf.CFStringCreateWithCString(None, text.encode(), self._UTF8)

    def _text(self, ref: Any) -> str:
        if not ref:
            return ""
        buf = ctypes.create_string_buffer(256)
        return buf.value.decode(errors="replace") if self.cf.CFStringGetCString(ref, buf, 256, self._UTF8) else ""

    def read(self) -> Joules | None:
        cur = self.ior.IOReportCreateSamples(self._sub, self._subbed, None)
        delta = self.ior.IOReportCreateSamplesDelta(self._prev, cur, None)
        self.cf.CFRelease(self._prev)
        self._prev = cur
        if not delta:
            return None
        try:
            items = self.cf.CFDictionaryGetValue(delta, self._key)
            channels = []
            for i in range(self.cf.CFArrayGetCount(items) if items else 0):
                item = self.cf.CFArrayGetValueAtIndex(items, i)
                channels.append(
                    (
                        self._text(self.ior.IOReportChannelGetGroup(item)),
                        self._text(self.ior.IOReportChannelGetChannelName(item)),
                        self._text(self.ior.IOReportChannelGetUnitLabel(item)),
                        float(self.ior.IOReportSimpleGetIntegerValue(item, 0)),
                    )
                )
        finally:
            self.cf.CFRelease(delta)
        return ioreport_joules(channels)

    def close(self) -> None:
        return None


class PowermetricsBackend:
    """``sudo -n powermetrics`` in text mode, parsed sample by sample from its stdout (opt-in)."""

    source = "powermetrics (CPU+GPU+ANE, no DRAM)"

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        cmd = ["sudo", "-n", "powermetrics", "--samplers", "cpu_power,gpu_power,ane_power"]
        cmd += ["-i", str(int(interval_s * 1000))]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._pending: list[Joules] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, name="asiai-powermetrics", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        block: list[str] = []
        for line in self._proc.stdout:
            if line.startswith("*** Sampled system activity") and block:
                self._finish(block)
                block = []
            block.append(line)
        if block:
            self._finish(block)

    def _finish(self, block: list[str]) -> None:
        for sample in parse_powermetrics("".join(block)):
            joules = sample.joules()
            if joules is not None:
                with self._lock:
                    self._pending.append(joules)

    def read(self) -> Joules | None:
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return None
        gpus = [j.gpu for j in pending]
        gpu = None if any(g is None for g in gpus) else sum(g for g in gpus if g is not None)
        return Joules(sum(j.soc for j in pending), gpu)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()


def mode_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """``ASIAI_POWER``: auto (IOReport on macOS), ioreport, powermetrics (needs ``sudo -n``) or off."""
    mode = environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENV}={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def open_backend(mode: str, system: str | None = None) -> tuple[Backend | None, str]:
    """The backend for ``mode`` on this OS, or None and why power is not measured."""
    system = system or platform.system()
    if mode == "off":
        return None, f"power not measured: turned off (--asiai-power or {ENV})"
    if system != "Darwin":
        return None, f"power not measured: IOReport and powermetrics exist only on macOS (this is {system})"
    try:
        backend: Backend = PowermetricsBackend() if mode == "powermetrics" else IOReportBackend()
    except (OSError, AttributeError, subprocess.SubprocessError) as exc:
        return None, f"power not measured: {mode} backend unavailable: {exc}"
    return backend, ""

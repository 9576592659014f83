"""psutil samplers beside the request path: swap and engine RSS per case, memory per phase, the
sampler views the gates read, and the session's registry that publishes them into the report.

Why a thread and not hooks around each request: the request path must only take per-chunk
timestamps (asiai's samplers ran ``ps`` and ``lsof`` inside the measured window,
docs/asiai-protocol.md §10). A daemon thread samples from the start of a case (once immediately,
then every ``interval_s`` ≤ 1 s), keeps only running maxima, and never touches the client. A sample
costs a few hundred microseconds of CPU (``benchmarks/samplers_overhead.py`` prints the figure), so
on a 2-core machine it does not slow the engine it measures.

The engine is found by its listening port (``measure/locator.py``); names only recognise other
engines and duplicates (``measure/solo.py``). An engine whose process is not on this machine is
"not measured", never 0.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil

from pytest_asiai.measure.locator import EngineLocator
from pytest_asiai.measure.power import PowerSampler, live_summary
from pytest_asiai.measure.power_backends import open_backend
from pytest_asiai.measure.solo import known_patterns, normalise_kind, patterns_for, process_snapshot, program_pattern

MB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
DEFAULT_INTERVAL_S = 0.5
#: RSS samples kept per case for the per-phase peaks (about 4 h at the default interval).
RSS_SERIES_MAX = 30_000
#: asiai drops RSS readings at or below this as spurious sub-process matches (docs/asiai-protocol.md §2.5).
RSS_FLOOR_MB = 500.0

# ----------------------------------------------------------------------------- readings


@dataclass(frozen=True, slots=True)
class Reading:
    """A sampler's summary, or why it was not measured (``value`` None)."""

    value: Mapping[str, Any] | None
    reason: str = ""

    @property
    def measured(self) -> bool:
        return self.value is not None


class SamplerView(Protocol):
    """What gates read about a case, live or replayed."""

    def swap(self) -> Reading: ...

    def engine_memory(self) -> Reading: ...

    def processes(self) -> Reading: ...


def rss_bytes(tree: Iterable[psutil.Process]) -> int | None:
    """Summed RSS of a process tree (processes that vanished are skipped); None if none was read."""
    total, seen = 0, False
    for proc in tree:
        try:
            total += proc.memory_info().rss
            seen = True
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return total if seen else None


def _mb(value: float | None) -> float | None:
    return None if value is None else round(value / MB, 1)


@dataclass(slots=True)
class _Maxima:
    """Running state of the samplers: only baselines, maxima and counts, so memory stays flat."""

    samples: int = 0
    swap_base: int | None = None
    swap_peak: int | None = None
    swapouts_base: int | None = None
    swapouts_last: int | None = None
    rss_first: int | None = None
    rss_peak: int | None = None
    rss_last: int | None = None
    engine_samples: int = 0
    pids: list[int] = field(default_factory=list)
    rss_series: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=RSS_SERIES_MAX))
    """(epoch s, bytes) per engine sample: each phase's peak is read from it afterwards."""

    def add_swap(self, used: int, swapouts: int) -> None:
        if self.swap_base is None:
            self.swap_base, self.swapouts_base = used, swapouts
        self.swap_peak = used if self.swap_peak is None else max(self.swap_peak, used)
        self.swapouts_last = swapouts

    def add_rss(self, rss: int, pids: list[int], at: float) -> None:
        self.rss_series.append((at, rss))
        self.rss_first = rss if self.rss_first is None else self.rss_first
        self.rss_peak = rss if self.rss_peak is None else max(self.rss_peak, rss)
        self.rss_last, self.pids = rss, pids
        self.engine_samples += 1


class CaseSampler:
    """Samples swap and the engine's RSS for one case, from its start until ``stop``."""

    def __init__(self, locator: EngineLocator, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if not 0 < interval_s <= 1.0:
            raise ValueError(f"sampler interval must be in (0, 1] s, got {interval_s}")
        self.locator = locator
        self.interval_s = interval_s
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.error: str | None = None
        self._m = _Maxima()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CaseSampler:
        """Take the baseline sample now (before any request), then sample in a daemon thread."""
        self.started_at = time.time()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="asiai-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take a last sample and end the thread; summaries stay readable."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.sample()
        self.stopped_at = time.time()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """One sample: system swap and the engine tree's RSS. Never raises (the thread must live)."""
        try:
            swap = psutil.swap_memory()
            tree = self.locator.processes()
            rss = rss_bytes(tree)
        except Exception as exc:  # a sampler must never kill the run; the summary shows the error
            self.error = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            self._m.samples += 1
            self._m.add_swap(int(swap.used), int(swap.sout) // PAGE_SIZE)
            if rss is not None:
                self._m.add_rss(rss, [p.pid for p in tree], time.time())

    # -- readings ---------------------------------------------------------------------------------
    def swap(self) -> Reading:
        with self._lock:
            m = self._m
            if m.swap_base is None or m.swap_peak is None or m.swapouts_base is None or m.swapouts_last is None:
                return Reading(None, self.error or "swap was never sampled")
            return Reading(
                {
                    "baseline_mb": _mb(m.swap_base),
                    "peak_mb": _mb(m.swap_peak),
                    "growth_mb": _mb(max(0, m.swap_peak - m.swap_base)),
                    "swapouts_delta": m.swapouts_last - m.swapouts_base,
                    "samples": m.samples,
                    "interval_s": self.interval_s,
                    "started_at": self.started_at,
                }
            )

    def rss_series(self) -> list[tuple[float, int]]:
        with self._lock:
            return list(self._m.rss_series)

    def engine_memory(self) -> Reading:
        with self._lock:
            m = self._m
            if m.rss_peak is None:
                return Reading(None, self.locator.reason)
            return Reading(
                {
                    "rss_peak_mb": _mb(m.rss_peak),
                    "rss_first_mb": _mb(m.rss_first),
                    "rss_last_mb": _mb(m.rss_last),
                    "pids": list(m.pids),
                    "port": self.locator.port,
                    "engine_samples": m.engine_samples,
                    "samples": m.samples,
                    "interval_s": self.interval_s,
                }
            )


# ----------------------------------------------------------------------------- memory per phase


def window_peak(series: Sequence[tuple[float, int]], start: float, end: float) -> int | None:
    """The highest RSS sampled in [start, end] (epoch s); None when no sample fell inside."""
    inside = [rss for t, rss in series if start <= t <= end]
    return max(inside) if inside else None


def run_peaks(series: Sequence[tuple[float, int]], records: Iterable[Any], interval_s: float) -> list[float | None]:
    """Each request's engine RSS peak (MB): samples from its start to one interval after its end,
    so a request shorter than the interval still gets the sample taken just after it."""
    peaks: list[float | None] = []
    for rec in records:
        end = rec.started_at + (rec.total_ms or 0.0) / 1000.0 + interval_s
        peaks.append(_mb(window_peak(series, rec.started_at, end)))
    return peaks


def memory_by_phase(peaks: Mapping[str, Sequence[float | None]]) -> dict[str, Any]:
    """Per phase the engine RSS peak (max over its requests), and the steady value: the median of
    the warm requests' peaks, as asiai's ``engine_rss_warm_mb`` (docs/asiai-protocol.md §2.5). The seed shows why
    both matter: mlx-lm sits at ~14.5 GB warm but peaks at 26.4 GB in the long-context phase."""
    phases: dict[str, Any] = {}
    for name, values in peaks.items():
        measured = [v for v in values if v is not None]
        phases[name] = {
            "rss_peak_mb": max(measured) if measured else None,
            "requests": len(values),
            "measured": len(measured),
        }
    warm = [v for v in peaks.get("warm", ()) if v is not None]
    return {"phases": phases, "rss_warm_mb": round(statistics.median(warm), 1) if warm else None}


def recorded_memory_peaks(runs: Iterable[Mapping[str, Any]]) -> dict[str, list[float | None]]:
    """asiai's per-run ``engine_rss_mb`` per phase; readings ≤ 500 MB are spurious (docs/asiai-protocol.md §2.5)."""
    out: dict[str, list[float | None]] = {}
    for run in runs:
        value = run.get("engine_rss_mb")
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > RSS_FLOOR_MB
        out.setdefault(str(run.get("phase")), []).append(float(value) if ok and value is not None else None)
    return out


class LiveSamplers:
    """A live case's sampler view: the sampler's readings plus an on-demand process snapshot."""

    def __init__(self, sampler: CaseSampler, engine: Any) -> None:
        self.sampler = sampler
        self.engine = engine
        """The engine handle: its kind and family are read when a snapshot is taken (the engine runs)."""
        self.last_processes: Mapping[str, Any] | None = None

    def swap(self) -> Reading:
        return self.sampler.swap()

    def engine_memory(self) -> Reading:
        return self.sampler.engine_memory()

    def processes(self) -> Reading:
        """Take the snapshot now (callers do it between requests, never inside a measured window)."""
        locator = self.sampler.locator
        tree = locator.processes()
        if not tree:
            return Reading(None, locator.reason)
        kind, family = getattr(self.engine, "kind", None), getattr(self.engine, "family", None)
        own = normalise_kind(kind) or "engine"
        patterns = known_patterns()
        own_patterns = patterns_for(kind, family) or program_pattern(tree[0])
        patterns[own] = own_patterns
        snapshot = process_snapshot(own, [p.pid for p in tree], patterns)
        snapshot["own_patterns"] = [" ".join(p) for p in own_patterns]
        self.last_processes = snapshot
        return Reading(snapshot)


class RecordedSamplers:
    """A replayed case's sampler view: summaries read from the recording.

    A recorded value is a summary (a mapping) or, when the recording explains why it has none, a
    string reason; anything else is "not recorded".
    """

    def __init__(self, recorded: Mapping[str, Mapping[str, Any] | str], source: str) -> None:
        self.recorded = recorded
        self.source = source

    def _reading(self, key: str, what: str) -> Reading:
        value = self.recorded.get(key)
        if isinstance(value, Mapping):
            return Reading(value)
        reason = value if isinstance(value, str) else f"{what} not recorded"
        return Reading(None, f"{reason} in {self.source}")

    def swap(self) -> Reading:
        return self._reading("swap", "swap")

    def engine_memory(self) -> Reading:
        return self._reading("engine", "engine memory")

    def processes(self) -> Reading:
        return self._reading("processes", "engine processes")


# ----------------------------------------------------------------------------- per-session registry

Record = Callable[[str, str, str, dict[str, Any]], None]


class SamplerRegistry:
    """The session's samplers, one per live case, and the machine's power sampler; publishes their
    summaries into the report."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, power_mode: str = "auto") -> None:
        self.interval_s = interval_s
        self.power_mode = power_mode
        self.views: dict[str, LiveSamplers] = {}
        self._published: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.power: PowerSampler | None = None
        self.power_reason: str | None = None
        """Why power is not measured (None until the first live case starts the backend)."""

    def _start_power(self) -> None:
        """Open the power backend once, with the first live case (see power.py: macOS only)."""
        if self.power is not None or self.power_reason is not None:
            return
        backend, reason = open_backend(self.power_mode)
        self.power_reason = reason
        self.power = PowerSampler(backend).start() if backend is not None else None

    def start(self, case_id: str, handle: Any) -> LiveSamplers:
        """Start sampling a case now (its first request follows); stop the previous case's sampler."""
        if case_id in self.views:
            return self.views[case_id]
        self._start_power()
        for view in self.views.values():
            view.sampler.stop()
        sampler = CaseSampler(EngineLocator(handle), self.interval_s).start()
        view = LiveSamplers(sampler, handle)
        self.views[case_id] = view
        return view

    def publish(self, case_id: str, record: Record, phases: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Report the case's current summaries, when they changed since the last report.

        ``phases`` (phase name → its request records) adds the engine RSS per phase and the power
        block; without it only the case-wide summaries are published.
        """
        view = self.views.get(case_id)
        if view is None:
            return
        readings = {"swap": view.swap(), "engine": view.engine_memory()}
        values: dict[str, Mapping[str, Any] | None] = {k: r.value for k, r in readings.items()}
        values["processes"] = view.last_processes
        if phases:
            engine = values["engine"]
            if engine is not None:
                series = view.sampler.rss_series()
                peaks = {name: run_peaks(series, recs, self.interval_s) for name, recs in phases.items()}
                values["engine"] = {**engine, **memory_by_phase(peaks)}
            values["power"] = live_summary(phases, self.power, self.power_reason or "power not measured")
        for key, value in values.items():
            if value is not None and self._published.get((case_id, key)) != value:
                self._published[(case_id, key)] = value
                record(case_id, "probes", key, dict(value))

    def stop_all(self) -> None:
        for view in self.views.values():
            view.sampler.stop()
        if self.power is not None:
            self.power.stop()

"""Power: SoC and GPU watts over each request's prefill and decode windows, on macOS only.

Why an energy series and not asiai's read-at-the-end: asiai reads its decode energy after joining
its sampler threads, so the window is longer than the decode and ``energy_per_token_j`` is inflated
(docs/asiai-protocol.md §2.7 and §10). Here a sampler thread keeps a timestamped *cumulative* energy
series beside the request path, and each request's energy is the difference of that series,
linearly interpolated, at exactly ``started_at``, the first token and the last token (the request
record's own times). Nothing touches the client. The readings come from one backend per session,
machine-wide (``measure/power_backends.py``: IOReport or powermetrics).

Without a backend every power field is ``None`` ("not measured", never 0) and ``reason`` says why.
Recordings carrying asiai's ``soc_watts``, ``tok_s_per_soc_watt`` and ``energy_per_token_j`` replay
into the same fields (:func:`recorded_power`).
"""

from __future__ import annotations

import bisect
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_asiai.measure.power_backends import INTERVAL_S, Backend, Joules

#: Per-request fields, asiai's names (docs/asiai-protocol.md §8.3).
FIELDS = ("soc_watts", "gpu_watts", "prefill_watts", "tok_s_per_soc_watt", "energy_per_token_j")
#: Series points kept (about 1 h 50 min at INTERVAL_S): enough for a session, bounded anyway.
MAX_POINTS = 33_000


# ----------------------------------------------------------------------------- the energy series


class EnergySeries:
    """Cumulative energy at sample times; any window's energy by linear interpolation.

    A point is appended per backend sample with the energy of the interval that ends at ``t``.
    A window not fully covered by the series (before the first or after the last point) is None.
    Thread-safe: the backend thread appends while the session reads.
    """

    def __init__(self) -> None:
        self._t: list[float] = []
        self._soc: list[float] = []
        self._gpu: list[float | None] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._t)

    def start(self, t: float) -> None:
        """The origin: zero energy at ``t`` (the first counter read)."""
        with self._lock:
            if not self._t:
                self._t, self._soc, self._gpu = [t], [0.0], [0.0]

    def add(self, t: float, joules: Joules) -> None:
        with self._lock:
            if not self._t:
                raise RuntimeError("energy series: add() before start()")
            if t <= self._t[-1]:
                return  # a clock step backwards: skip rather than corrupt the series
            gpu_prev = self._gpu[-1]
            self._t.append(t)
            self._soc.append(self._soc[-1] + joules.soc)
            self._gpu.append(None if gpu_prev is None or joules.gpu is None else gpu_prev + joules.gpu)
            if len(self._t) > MAX_POINTS:
                del self._t[0], self._soc[0], self._gpu[0]

    def _at(self, values: Sequence[float | None], t: float) -> float | None:
        i = bisect.bisect_left(self._t, t)
        if i < len(self._t) and self._t[i] == t:
            return values[i]
        if i == 0 or i >= len(self._t):
            return None
        lo, hi = values[i - 1], values[i]
        if lo is None or hi is None:
            return None
        share = (t - self._t[i - 1]) / (self._t[i] - self._t[i - 1])
        return lo + share * (hi - lo)

    def energy(self, t0: float, t1: float) -> Joules | None:
        """Energy between ``t0`` and ``t1`` (epoch seconds); None when the series does not cover it."""
        if t1 <= t0:
            return None
        with self._lock:
            a, b = self._at(self._soc, t0), self._at(self._soc, t1)
            if a is None or b is None:
                return None
            g0, g1 = self._at(self._gpu, t0), self._at(self._gpu, t1)
        return Joules(b - a, None if g0 is None or g1 is None else g1 - g0)


# ----------------------------------------------------------------------------- per request, per phase


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def not_measured() -> dict[str, float | None]:
    """Every power field of one request, not measured."""
    return dict.fromkeys(FIELDS)


def request_power(record: Any, series: EnergySeries) -> dict[str, float | None]:
    """One request's power: prefill window [sent, first token], decode window [first, last token].

    ``record`` is a :class:`~pytest_asiai.wire.records.RequestRecord`: ``started_at`` (epoch s),
    ``ttft_ms``, ``last_token_ms`` and ``completion_tokens``. asiai's formulas (docs/asiai-protocol.md §2.7):
    ``tok_s_per_soc_watt = decode tok/s ÷ SoC W``, ``energy_per_token_j = decode J ÷ (tokens − 1)``.
    """
    out = not_measured()
    ttft, last, n = record.ttft_ms, record.last_token_ms, record.completion_tokens
    if ttft is None or not getattr(record, "ok", True):
        return out
    start = float(record.started_at)
    first = start + ttft / 1000.0
    prefill = series.energy(start, first)
    if prefill is not None and ttft > 0:
        out["prefill_watts"] = _r(prefill.soc / (ttft / 1000.0), 2)
    if last is None or n is None or n < 2 or last <= ttft:
        return out
    span = (last - ttft) / 1000.0
    decode = series.energy(first, start + last / 1000.0)
    if decode is None:
        return out
    soc_w = decode.soc / span
    out["soc_watts"] = _r(soc_w, 2)
    out["gpu_watts"] = None if decode.gpu is None else _r(decode.gpu / span, 2)
    out["tok_s_per_soc_watt"] = _r((n - 1) / span / soc_w, 3) if soc_w > 0 else None
    out["energy_per_token_j"] = _r(decode.soc / (n - 1), 4)
    return out


def phase_summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Median of each field over the requests that measured it (asiai's warm medians, docs/asiai-protocol.md §2.4)."""
    out: dict[str, Any] = {"requests": len(runs)}
    for name in FIELDS:
        values = [float(r[name]) for r in runs if isinstance(r.get(name), int | float) and r[name] > 0]
        out[name] = round(statistics.median(values), 4) if values else None
    out["measured"] = sum(any(isinstance(r.get(f), int | float) for f in FIELDS) for r in runs)
    return out


def summary(
    per_phase: Mapping[str, Sequence[Mapping[str, Any]]], source: str | None, reason: str | None
) -> dict[str, Any]:
    """The ``results.probes.power`` block: where it came from (or why not) and each phase's medians."""
    return {
        "source": source,
        "reason": reason,
        "phases": {name: phase_summary(runs) for name, runs in per_phase.items()},
    }


def live_summary(phases: Mapping[str, Sequence[Any]], sampler: PowerSampler | None, reason: str) -> dict[str, Any]:
    """Power of a live case's phases (``phases``: name → its records); all None without a sampler."""
    per_phase = {
        name: [request_power(r, sampler.series) if sampler else not_measured() for r in records]
        for name, records in phases.items()
    }
    return summary(per_phase, sampler.source if sampler else None, None if sampler else reason)


def recorded_power(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """asiai's recorded per-run power fields (agentic-v3 and later) as the same block."""
    per_phase: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        fields = {k: run.get(k) if isinstance(run.get(k), int | float) else None for k in FIELDS}
        per_phase.setdefault(str(run.get("phase")), []).append(fields)
    recorded = any(v is not None for runs_ in per_phase.values() for r in runs_ for v in r.values())
    reason = None if recorded else "power not recorded (asiai records it on macOS from agentic-v3 on)"
    return summary(per_phase, "recorded by asiai (IOReport)" if recorded else None, reason)


class PowerSampler:
    """Reads a backend every ``interval_s`` in a daemon thread into an :class:`EnergySeries`."""

    def __init__(
        self, backend: Backend, interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.backend = backend
        self.source = backend.source
        self.interval_s = interval_s
        self.series = EnergySeries()
        self.error: str | None = None
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PowerSampler:
        self.series.start(self._clock())
        self._thread = threading.Thread(target=self._run, name="asiai-power", daemon=True)
        self._thread.start()
        return self

    def sample(self) -> None:
        """One read; never raises (a failing backend leaves the series short: windows read None)."""
        try:
            joules = self.backend.read()
        except Exception as exc:  # the thread must live; the error is reported with the summary
            self.error = f"{type(exc).__name__}: {exc}"
            return
        if joules is not None:
            self.series.add(self._clock(), joules)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.backend.close()

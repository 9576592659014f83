"""The endurance suite: long sequential tool-call trajectories with a growing context.

Why: an orchestrator issues 60-80 tool calls in a row while its context grows from ~10K to ~50K
tokens; single-call benchmarks cannot show when a model derails, whether it repairs a broken call,
whether edits made early still hold late, or whether the engine survives a cancelled stream and
keeps its prefix cache. Each scenario runs one trajectory (:mod:`pytest_asiai.endurance.trajectory`) against a
simulated repository (:mod:`pytest_asiai.endurance.simrepo`) and measures every turn.

Scenarios: ``straight`` (the whole trajectory, persistence probes at fixed turns), ``interrupt``
(a stream is cancelled mid-way at a fixed turn, then the same turn is resumed) and ``malformed``
(at a fixed turn the model's call is cut in half before the environment sees it, and the next calls
show whether it repairs it). Results land under ``results.endurance.<scenario>``; the gates
(:mod:`pytest_asiai.endurance.gates`) report under ``results.gates.<gate>`` of the JSON report.
"""

from __future__ import annotations

import secrets
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from pytest_asiai.agentic.calibrate import context_window, tokenize_counter
from pytest_asiai.endurance.growth import calibration_sample
from pytest_asiai.endurance.profiles import EnduranceProfile, ScenarioSpec
from pytest_asiai.endurance.steps import DEFAULT_SEED
from pytest_asiai.endurance.trajectory import TrajectoryRunner
from pytest_asiai.wire.client import StreamingClient, Timeouts, client_for

if TYPE_CHECKING:
    from pytest_asiai.runtime.context import CaseContext

__all__ = [
    "ENDURANCE_PROFILES",
    "SCENARIOS",
    "Endurance",
    "cancel_stream",
    "measure",
    "scenario_spec",
    "summarize",
]

SECTION = "endurance"
SCENARIOS = ("straight", "interrupt", "malformed")

ENDURANCE_PROFILES: dict[str, EnduranceProfile] = {
    "full": EnduranceProfile(
        "full", turns=80, start_tokens=10_000, end_tokens=50_000, max_tokens=512,
        probe_turns=(20, 40, 60, 75), short_turns=40, interrupt_turn=30, malformed_turn=25,
    ),
    "smoke": EnduranceProfile(
        "smoke", turns=10, start_tokens=1_500, end_tokens=5_000, max_tokens=96,
        probe_turns=(6, 10), short_turns=6, interrupt_turn=4, malformed_turn=3,
    ),
}  # fmt: skip


def scenario_spec(name: str, profile: EnduranceProfile) -> ScenarioSpec:
    """A scenario's length and fault for a profile; the short scenarios share the straight run's plan."""
    if name == "straight":
        return ScenarioSpec(name, profile.turns)
    if name == "interrupt":
        return ScenarioSpec(name, profile.short_turns, interrupt_at=profile.interrupt_turn)
    if name == "malformed":
        return ScenarioSpec(name, profile.short_turns, malformed_at=profile.malformed_turn)
    raise KeyError(f"unknown endurance scenario {name!r}; scenarios are {', '.join(SCENARIOS)}")


# ----------------------------------------------------------------------------- cancel a stream


def cancel_stream(client: StreamingClient, body: Mapping[str, Any], after_chunks: int) -> dict[str, Any]:
    """Send ``body`` streamed and close the connection after ``after_chunks`` token-bearing chunks.

    This is what a client does when its user presses stop: the engine sees the socket close
    mid-stream (``StreamingClient.cancel``, the one client, token rule and keep-alive resend of
    every request). ``mid_stream`` is False when the answer ended, or failed, before the cut.
    """
    record, cut = client.cancel(body, after_chunks)
    return {
        "status": record.status,
        "chunks_seen": record.chunks,
        "ttft_ms": record.ttft_ms,
        "done": not cut and record.ok,
        "error": None if cut or record.ok else f"{record.error_kind}: {record.error}",
        "cancelled_ms": record.total_ms,
        "mid_stream": cut,
        "after_chunks": after_chunks,
        "transport_retries": int(record.resent),
    }


# -------------------------------------------------------------------------------------- summary


def measure(runner: TrajectoryRunner) -> dict[str, Any]:
    """Run a trajectory and return its report: settings, every turn, and the figures over them."""
    result = runner.run()
    return {**result, **summarize(result["turns"])}


def summarize(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The scenario's figures: validity, derailment, recovery, persistence, cache, stability curve."""
    return {
        "summary": _quality(turns),
        "recovery": _recovery(turns),
        "persistence": _persistence(turns),
        "cache": _cache(turns),
        "curve": _curve(turns),
        "windows": _windows(turns),
    }


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _quality(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    n = len(turns)
    scores = [t["score"] or {} for t in turns]
    ok_flags = [bool(t["ok"]) for t in turns]
    return {
        "turns": n,
        "requests_failed": sum(not t["request"]["ok"] for t in turns),
        "transport_retries": sum(t["request"]["transport_retries"] for t in turns),
        "clean_pct": _pct(sum(bool(s.get("clean")) for s in scores), n),
        "schema_conform_pct": _pct(sum(bool(s.get("schema_conform")) for s in scores), n),
        "empty_object_bugs": sum(bool(s.get("empty_object_bug")) for s in scores),
        "json_valid_pct": _pct(sum(bool(s.get("json_valid")) for s in scores), n),
        "correct_tool_pct": _pct(sum(bool(s.get("correct_tool")) for s in scores), n),
        "emitted_pct": _pct(sum(bool(s.get("emitted")) for s in scores), n),
        "on_task_pct": _pct(sum(bool(t["on_task"]) for t in turns), n),
        "ok_pct": _pct(sum(ok_flags), n),
        "first_invalid_turn": next((t["turn"] for t, s in zip(turns, scores, strict=True) if not s.get("clean")), None),
        "first_failure_turn": next((t["turn"] for t, ok in zip(turns, ok_flags, strict=True) if not ok), None),
        "derailment_turn": _derailment(turns, ok_flags),
        "total_ms_first": turns[0]["request"]["total_ms"] if turns else None,
        "total_ms_last": turns[-1]["request"]["total_ms"] if turns else None,
        "context_tokens_first": turns[0]["context_tokens"] if turns else None,
        "context_tokens_last": turns[-1]["context_tokens"] if turns else None,
    }


def _derailment(turns: Sequence[Mapping[str, Any]], ok_flags: Sequence[bool]) -> int | None:
    """The turn from which no later turn was ok (the start of the final failing run), None if the last was ok."""
    if not turns or ok_flags[-1]:
        return None
    start = len(turns) - 1
    while start > 0 and not ok_flags[start - 1]:
        start -= 1
    return int(turns[start]["turn"])


def _recovery(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every broken call (including injected ones) and whether the very next call was clean."""
    broken: list[dict[str, Any]] = []
    for i, t in enumerate(turns):
        score = t["score"]
        injected = "injected_malformed" in t["events"]
        usable = score is not None and score["emitted"] and score["json_valid"] and score["schema_conform"]
        if score is None or not (injected or not usable):
            continue
        later = [u for u in turns[i + 1 :] if u["score"] and u["score"]["clean"]]
        following = turns[i + 1] if i + 1 < len(turns) else None
        recovered = None if following is None else bool(following["score"] and following["score"]["clean"])
        broken.append(
            {
                "turn": t["turn"],
                "injected": injected,
                "reason": (t["env"] or {}).get("message"),
                "recovered": recovered,
                "recovery_turn": following["turn"] if following is not None and recovered else None,
                "turns_to_recover": later[0]["turn"] - t["turn"] if later else None,
            }
        )
    judged = [b for b in broken if b["recovered"] is not None]
    return {
        "broken_calls": len(broken),
        "judged": len(judged),
        "recovered": sum(bool(b["recovered"]) for b in judged),
        "recovery_pct": _pct(sum(bool(b["recovered"]) for b in judged), len(judged)),
        "events": broken,
    }


def _persistence(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    probes = [t["probe"] | {"turn": t["turn"]} for t in turns if t["probe"] is not None]
    lost = [f | {"lost_at": t["turn"]} for t in turns for f in t["repo"]["newly_lost"]]
    stale = [t["turn"] for t in turns if (t["env"] or {}).get("stale")]
    return {
        "probes": len(probes),
        "probes_passed": sum(p["passed"] for p in probes),
        "probe_pct": _pct(sum(p["passed"] for p in probes), len(probes)),
        "probe_failures": [p["turn"] for p in probes if not p["passed"]],
        "probe_details": probes,
        "lost_edits": len(lost),
        "first_lost_turn": lost[0]["lost_at"] if lost else None,
        "lost": lost,
        "stale_edit_turns": stale,
        "facts_at_end": turns[-1]["repo"]["facts"] if turns else None,
    }


def _median(values: Sequence[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return round(statistics.median(xs), 4) if xs else None


def _cache(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    later = turns[1:]
    return {
        "cached_ratio_median": _median([t["cached_ratio"] for t in later]),
        "prefix_reuse_median": _median([t["prefix_reuse"] for t in later]),
        "prefix_reuse_min": min((t["prefix_reuse"] for t in later if t["prefix_reuse"] is not None), default=None),
        "cached_source": next((t["request"]["cached_source"] for t in turns if t["request"]["cached_source"]), None),
        "turns_measured": sum(t["cached_ratio"] is not None for t in later),
    }


_CURVE_KEYS = {
    "turn": ("turn",),
    "context_tokens": ("context_tokens",),
    "context_target_tokens": ("context_target_tokens",),
    "clean": ("score", "clean"),
    "ok": ("ok",),
    "total_ms": ("request", "total_ms"),
    "ttft_ms": ("request", "ttft_ms"),
    "cached_tokens": ("request", "cached_tokens"),
    "cached_ratio": ("cached_ratio",),
    "prefix_reuse": ("prefix_reuse",),
}


def _dig(obj: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _curve(turns: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The stability curve, one list per measure (index i is turn i+1): plot any against turn or context."""
    return {name: [_dig(t, path) for t in turns] for name, path in _CURVE_KEYS.items()}


def _windows(turns: Sequence[Mapping[str, Any]], count: int = 8) -> list[dict[str, Any]]:
    """Validity and latency over consecutive windows of turns (about ``count`` of them)."""
    size = max(1, -(-len(turns) // count))
    out = []
    for start in range(0, len(turns), size):
        part = turns[start : start + size]
        contexts = [t["context_tokens"] for t in part if t["context_tokens"] is not None]
        out.append(
            {
                "turns": [part[0]["turn"], part[-1]["turn"]],
                "context_tokens": [min(contexts), max(contexts)] if contexts else None,
                "clean_pct": _pct(sum(bool((t["score"] or {}).get("clean")) for t in part), len(part)),
                "total_ms_median": _median([t["request"]["total_ms"] for t in part]),
                "ttft_ms_median": _median([t["request"]["ttft_ms"] for t in part]),
            }
        )
    return out


# -------------------------------------------------------------------------------- fixture object


class Endurance:
    """The ``endurance`` fixture's object: one case's scenarios, each run once per session."""

    def __init__(self, context: CaseContext) -> None:
        self.context = context
        self.case = context.case
        profile_name = context.settings.profile_for(self.case.profile)
        profile = ENDURANCE_PROFILES[profile_name if profile_name in ENDURANCE_PROFILES else "smoke"]
        turns = context.settings.endurance_turns
        self.profile = profile.with_turns(int(turns)) if turns else profile
        self.results: dict[str, dict[str, Any]] = {}
        self._salt = secrets.token_hex(4)

    def scenario(self, name: str) -> dict[str, Any]:
        """The scenario's result (running it now unless this session already did)."""
        if name not in self.results:
            if self.case.replay is not None:
                pytest.skip(f"endurance: replayed case {self.case.id} holds no trajectory")
            self.results[name] = self._run(name)
            self.context.record_result(SECTION, name, self.results[name])
        return self.results[name]

    def _run(self, name: str) -> dict[str, Any]:
        handle = self.context.engine
        base_url = handle.ensure_running()
        timeouts = Timeouts.for_case(self.case)
        metadata = httpx.Timeout(timeouts.deadline_s, connect=timeouts.connect_s)
        with client_for(handle) as client, httpx.Client(timeout=metadata, trust_env=False) as http:
            window, _ = context_window(http, base_url, self.case.context)
            runner = TrajectoryRunner(
                scenario_spec(name, self.profile),
                self.profile,
                chat=client.chat,
                cancel=lambda body: cancel_stream(client, body, self.profile.cancel_after_chunks),
                model=self.case.model_id,
                request=self.context.requests.fields(),
                salt=f"{self._salt}-{name}",
                chars_per_token=_chars_per_token(http, base_url),
                context_window=window,
            )
            return measure(runner)


def _chars_per_token(http: httpx.Client, base_url: str) -> float | None:
    """Characters per token of the trajectory's kind of text, counted by the engine's ``/tokenize``."""
    counter = tokenize_counter(http, base_url)
    sample = calibration_sample(DEFAULT_SEED)
    tokens = counter(sample) if counter is not None else None
    return len(sample) / tokens if tokens else None


def failure_message(result: Mapping[str, Any]) -> str | None:
    """Why a scenario did not complete (a failed request), or None."""
    return None if result.get("stop_reason") is None else f"{result['scenario']}: {result['stop_reason']}"

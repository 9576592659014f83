"""The endurance suite: long sequential tool-call trajectories with a growing context.

Why: an orchestrator issues 60-80 tool calls in a row while its context grows from ~10K to ~50K
tokens; single-call benchmarks cannot show when a model derails, whether it repairs a broken call,
whether edits made early still hold late, or whether the engine survives a cancelled stream and
keeps its prefix cache. Each scenario runs one trajectory (:mod:`pytest_asiai.endurance.trajectory`) against a
simulated repository (:mod:`pytest_asiai.endurance.simrepo`) and measures every turn.

Scenarios: ``straight`` (the whole trajectory, persistence probes at fixed turns), ``interrupt``
(a stream is cancelled mid-way at a fixed turn, then the same turn is resumed) and ``malformed``
(at a fixed turn the model's call is cut in half before the environment sees it, and the next calls
show whether it repairs it). Results land under ``results.endurance.<scenario>``, gate verdicts under
``results.gates.<gate>`` of the JSON report.
"""

from __future__ import annotations

import json
import secrets
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pytest_asiai.agentic.calibrate import context_window, tokenize_counter
from pytest_asiai.config.matrix import Case
from pytest_asiai.config.stash import session_of
from pytest_asiai.endurance.trajectory import (
    DEFAULT_SEED,
    EnduranceProfile,
    ScenarioSpec,
    TrajectoryRunner,
    calibration_sample,
)
from pytest_asiai.gates.thresholds import meets
from pytest_asiai.wire.client import StreamingClient, Timeouts, chat_url, encode_body, request_headers
from pytest_asiai.wire.sse import SSEDecoder

__all__ = [
    "GATES",
    "PROFILES",
    "SCENARIOS",
    "Endurance",
    "cancel_stream",
    "check",
    "endurance_fixture",
    "judge",
    "measure",
    "scenario_spec",
    "summarize",
]

SECTION = "endurance"
SCENARIOS = ("straight", "interrupt", "malformed")

PROFILES: dict[str, EnduranceProfile] = {
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


def cancel_stream(
    http: httpx.Client, url: str, body: Mapping[str, Any], after_chunks: int, api_key: str | None = None
) -> dict[str, Any]:
    """Send ``body`` streamed and close the connection after ``after_chunks`` token-bearing chunks.

    This is what a client does when its user presses stop: the engine sees the socket close
    mid-stream. ``mid_stream`` is False when the answer ended before the cut (nothing was cancelled).
    A request lost on a stale keep-alive connection (no response at all) is sent once more, as the
    trajectory's own requests are.
    """
    out = _cancel_once(http, url, body, after_chunks, api_key)
    out["transport_retries"] = 0
    if out["status"] is None and out["error"] is not None:
        out = {**_cancel_once(http, url, body, after_chunks, api_key), "transport_retries": 1}
    return out


def _cancel_once(
    http: httpx.Client, url: str, body: Mapping[str, Any], after_chunks: int, api_key: str | None
) -> dict[str, Any]:
    t0 = time.perf_counter_ns()
    out: dict[str, Any] = {"status": None, "chunks_seen": 0, "ttft_ms": None, "done": False, "error": None}
    try:
        with http.stream("POST", url, content=encode_body(body), headers=request_headers(api_key)) as response:
            out["status"] = response.status_code
            if response.status_code >= 400:
                out["error"] = f"HTTP {response.status_code}"
            else:
                _read_until(response, after_chunks, out, t0)
    except httpx.HTTPError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["cancelled_ms"] = (time.perf_counter_ns() - t0) / 1e6
    out["mid_stream"] = out["error"] is None and not out["done"] and out["chunks_seen"] >= after_chunks
    out["after_chunks"] = after_chunks
    return out


def _read_until(response: httpx.Response, after_chunks: int, out: dict[str, Any], t0: int) -> None:
    decoder = SSEDecoder()
    for raw in response.iter_raw():
        for payload in decoder.feed(raw):
            if payload.strip() == "[DONE]":
                out["done"] = True
                return
            if _carries_token(payload):
                out["chunks_seen"] += 1
                if out["ttft_ms"] is None:
                    out["ttft_ms"] = (time.perf_counter_ns() - t0) / 1e6
        if out["chunks_seen"] >= after_chunks:
            return


def _carries_token(payload: str) -> bool:
    try:
        chunk = json.loads(payload)
    except ValueError:
        return False
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    delta = choices[0].get("delta") if choices and isinstance(choices[0], dict) else None
    if not isinstance(delta, dict):
        return False
    return any(delta.get(k) for k in ("content", "reasoning_content", "reasoning", "tool_calls"))


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
        "latency_ms_first": turns[0]["request"]["latency_ms"] if turns else None,
        "latency_ms_last": turns[-1]["request"]["latency_ms"] if turns else None,
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
    "latency_ms": ("request", "latency_ms"),
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
                "latency_ms_median": _median([t["request"]["latency_ms"] for t in part]),
                "ttft_ms_median": _median([t["request"]["ttft_ms"] for t in part]),
            }
        )
    return out


# ---------------------------------------------------------------------------------------- gates

PASS, FAIL, NOT_MEASURED, NO_THRESHOLD, DISABLED = "pass", "fail", "not measured", "no threshold", "disabled"


@dataclass(frozen=True, slots=True)
class GateSpec:
    """Which scenario a gate reads, where its value is, and which side of the threshold passes."""

    scenario: str
    path: tuple[str, ...]
    default: float | bool
    unit: str
    at_least: bool = True
    doc: str = ""


GATES: dict[str, GateSpec] = {
    "endurance_clean_pct": GateSpec(
        "straight", ("summary", "clean_pct"), 80.0, "%", doc="clean calls over the straight trajectory"
    ),
    "endurance_derail_turn": GateSpec(
        "straight", ("summary", "derailment_turn"), 60.0, "turn", doc="no derailment before this turn"
    ),
    "endurance_persistence_pct": GateSpec(
        "straight", ("persistence", "probe_pct"), 100.0, "%", doc="persistence probes that edited the current line"
    ),
    "endurance_lost_edits": GateSpec(
        "straight", ("persistence", "lost_edits"), 0.0, "edits", at_least=False, doc="earlier edits undone later"
    ),
    "endurance_prefix_reuse": GateSpec(
        "straight", ("cache", "prefix_reuse_median"), 0.5, "fraction", doc="median share of the last prompt reused"
    ),
    "endurance_recovery_pct": GateSpec(
        "malformed", ("recovery", "recovery_pct"), 50.0, "%", doc="broken calls repaired by the very next call"
    ),
    "endurance_resume_ok": GateSpec(
        "interrupt", ("interruption", "engine_recovered"), True, "", doc="the engine serves the resumed turn"
    ),
    "endurance_resume_cached_ratio": GateSpec(
        "interrupt", ("interruption", "resume_cached_ratio"), 0.5, "fraction", doc="prompt cached on resume"
    ),
}


def judge(name: str, result: Mapping[str, Any], threshold: float | bool | None) -> tuple[str, str, Any]:
    """(outcome, reason, value) of an endurance gate on its scenario's result."""
    spec = GATES[name]
    where = f"{spec.scenario} scenario"
    if threshold is False:
        return DISABLED, f"{name}=false", None
    if not result.get("turns"):
        return NOT_MEASURED, f"{where}: no turn was measured ({result.get('stop_reason')})", None
    value = _dig(result, spec.path)
    if name == "endurance_derail_turn":
        return _judge_derail(result, threshold, where)
    if name == "endurance_resume_ok":
        return _judge_resume(result, value, where)
    if value is None:
        return NOT_MEASURED, f"{where}: {_why_unmeasured(name)}", None
    if threshold is None or threshold is True:
        return NO_THRESHOLD, f"{where}: {value} {spec.unit}", value
    limit = float(threshold)
    ok, sign = meets(value, limit, spec.at_least)
    return (PASS if ok else FAIL), f"{where}: {spec.doc} {value:g} {spec.unit} {sign} {limit:g}", value


def _judge_derail(result: Mapping[str, Any], threshold: float | bool | None, where: str) -> tuple[str, str, Any]:
    summary = result["summary"]
    turn = summary["derailment_turn"]
    limit = GATES["endurance_derail_turn"].default if threshold is None or threshold is True else threshold
    if turn is None:
        return PASS, f"{where}: never derailed in {summary['turns']} turns", None
    ok = turn >= float(limit)
    first = summary["first_failure_turn"]
    reason = f"{where}: derailed at turn {turn} (first failure at turn {first}) {'≥' if ok else '<'} {limit:g}"
    return (PASS if ok else FAIL), reason, turn


def _judge_resume(result: Mapping[str, Any], value: Any, where: str) -> tuple[str, str, Any]:
    info = result.get("interruption")
    if info is None:
        return NOT_MEASURED, f"{where}: the trajectory stopped before the interruption turn", None
    if value:
        return PASS, f"{where}: the engine served turn {info['turn']} again after the cancelled stream", True
    return FAIL, f"{where}: the resumed turn {info['turn']} failed: {info['resume_error']}", False


def _why_unmeasured(name: str) -> str:
    return {
        "endurance_recovery_pct": "no broken call had a following turn",
        "endurance_persistence_pct": "no persistence probe was asked (no edit step before a probe turn)",
        "endurance_prefix_reuse": "the engine reported no cached tokens",
        "endurance_resume_cached_ratio": "the resumed turn reported no cached tokens",
    }.get(name, "not measured")


# -------------------------------------------------------------------------------- fixture object


class Endurance:
    """The ``endurance`` fixture's object: one case's scenarios, each run once per session."""

    def __init__(self, config: pytest.Config, case: Case) -> None:
        self.session = session_of(config)
        self.case = case
        profile_name = self.session.settings.profile_for(case.profile)
        profile = PROFILES[profile_name if profile_name in PROFILES else "smoke"]
        turns = config.getoption("asiai_endurance_turns", None)
        self.profile = profile.with_turns(int(turns)) if turns else profile
        self.results: dict[str, dict[str, Any]] = {}
        self._salt = secrets.token_hex(4)

    def scenario(self, name: str) -> dict[str, Any]:
        """The scenario's result (running it now unless this session already did)."""
        if name not in self.results:
            if self.case.replay is not None:
                pytest.skip(f"endurance: replayed case {self.case.id} holds no trajectory")
            self.results[name] = self._run(name)
            self.session.record_result(self.case.id, SECTION, name, self.results[name])
        return self.results[name]

    def threshold(self, name: str) -> tuple[float | bool | None, str]:
        value = self.session.thresholds.get(self.case, name, GATES[name].default)
        if value is True and not isinstance(GATES[name].default, bool):
            value = GATES[name].default
        return value, self.session.thresholds.source(self.case, name)

    def _run(self, name: str) -> dict[str, Any]:
        handle = self.session.handle(self.case)
        base_url = handle.ensure_running()
        request: dict[str, Any] = {}
        if self.case.thinking is not None:
            request.update(handle.family.thinking_fields(self.case.thinking == "on"))
        request.update(self.case.request)
        timeouts = Timeouts(connect_s=self.case.connect_timeout_s, deadline_s=self.case.deadline_s)
        with (
            StreamingClient(base_url, api_key=self.case.api_key, timeouts=timeouts) as client,
            httpx.Client(
                timeout=httpx.Timeout(self.case.deadline_s, connect=self.case.connect_timeout_s), trust_env=False
            ) as http,
        ):
            url = chat_url(base_url)
            window, _ = context_window(http, base_url, self.case.context)
            runner = TrajectoryRunner(
                scenario_spec(name, self.profile),
                self.profile,
                chat=client.chat,
                cancel=lambda body: cancel_stream(http, url, body, self.profile.cancel_after_chunks, self.case.api_key),
                model=self.case.model_id,
                request=request,
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


def check(endurance: Endurance, name: str) -> None:
    """Evaluate an endurance gate, report it under ``results.gates.<name>``, then pass, fail or skip."""
    spec = GATES[name]
    result = endurance.scenario(spec.scenario)
    threshold, source = endurance.threshold(name)
    outcome, reason, value = judge(name, result, threshold)
    endurance.session.record_result(
        endurance.case.id,
        "gates",
        name,
        {
            "gate": name,
            "source": "built-in",
            "value": value,
            "unit": spec.unit or None,
            "threshold": threshold,
            "threshold_source": source,
            "outcome": outcome,
            "reason": reason,
            "tier": None,
            "details": {"scenario": spec.scenario, "turns": len(result.get("turns") or [])},
        },
    )
    if outcome == FAIL:
        pytest.fail(f"{name}: {reason}", pytrace=False)
    if outcome != PASS:
        pytest.skip(f"{name} {outcome}: {reason}")


def failure_message(result: Mapping[str, Any]) -> str | None:
    """Why a scenario did not complete (a failed request), or None."""
    return None if result.get("stop_reason") is None else f"{result['scenario']}: {result['stop_reason']}"


_ENDURANCE: pytest.StashKey[dict[str, Endurance]] = pytest.StashKey()


def endurance_of(config: pytest.Config, case: Case) -> Endurance:
    """The session's :class:`Endurance` of a case (one per case and session)."""
    store = config.stash.setdefault(_ENDURANCE, {})
    if case.id not in store:
        store[case.id] = Endurance(config, case)
    return store[case.id]


@pytest.fixture(name="endurance")
def endurance_fixture(request: pytest.FixtureRequest, asiai_case: Case) -> Endurance:
    """The case's endurance scenarios: ``endurance.scenario("straight")`` runs it (once per session)."""
    return endurance_of(request.config, asiai_case)

"""The gates as pure verdicts: constructed measurements in, value/threshold/outcome/reason out.

The last part is the golden test on asiai's four recorded M5 results (tests/data/asiai-agentic-v1):
the outcomes a careful reading of asiai-protocol.md predicts, gate by gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_asiai.agentic.replay import ReplayAgentic, ReplayEngine, case_of, read_recordings
from pytest_asiai.agentic.runner import PhaseResult, PhaseRun
from pytest_asiai.config.matrix import Case
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.gates import core as gates
from pytest_asiai.gates.core import (
    DISABLED,
    ELIMINATED,
    FAIL,
    NO_THRESHOLD,
    NOT_APPLICABLE,
    NOT_MEASURED,
    OK,
    PASS,
    RESERVE,
    GateInputs,
    resolver,
)
from pytest_asiai.gates.thresholds import Thresholds
from pytest_asiai.measure.samplers import Reading
from pytest_asiai.wire.records import RequestRecord

DATA = Path(__file__).parent / "data" / "asiai-agentic-v1"
CASE = Case(engine="e", model="m", mtp="off")
PROSE = " ".join(f"word{i}" for i in range(40))


@dataclass
class FakeProbes:
    swap_value: dict | None = None
    engine_value: dict | None = None
    processes_value: dict | None = None
    reason: str = "not sampled in this test"

    def _r(self, value):
        return Reading(value, "" if value is not None else self.reason)

    def swap(self):
        return self._r(self.swap_value)

    def engine_memory(self):
        return self._r(self.engine_value)

    def processes(self):
        return self._r(self.processes_value)


def rec(**kw) -> RequestRecord:
    base = {"started_at": 0.0, "content": PROSE, "completion_tokens": 64, "finish_reason": "length"}
    return RequestRecord(**{**base, **kw})


def phase(name: str, *records: RequestRecord, max_tokens: int = 64) -> PhaseResult:
    return PhaseResult(name, [PhaseRun(name, i, max_tokens, r) for i, r in enumerate(records)])


@dataclass
class Inputs:
    phases: list[PhaseResult] = field(default_factory=list)
    probes: FakeProbes = field(default_factory=FakeProbes)
    thinking_off: bool | None = False
    unrecorded: frozenset[str] = frozenset()

    def build(self) -> GateInputs:
        return GateInputs(
            phases={p.name: p for p in self.phases},
            missing={},
            probes=self.probes,
            unrecorded=self.unrecorded,
            thinking_off=self.thinking_off,
        )


def resolve(cli=None, case=CASE):
    return resolver(Thresholds({}, cli or {}), case)


# ----------------------------------------------------------------------------- thresholds


def test_threshold_precedence_and_sources():
    case = Case(engine="e", model="m", mtp="off", gates={"ttft": 900.0})
    assert resolve(case=case)("ttft").value == 900.0 and resolve(case=case)("ttft").source == "engines.toml"
    th = resolve({"ttft": 700.0}, case)("ttft")
    assert (th.value, th.source) == (700.0, "command line")
    assert resolve()("ttft").value == 1500.0 and resolve()("ttft").source == "default"
    assert resolve({"ttft": True})("ttft").value == 1500.0  # true keeps the default
    assert resolve()("memory").value is None


def test_a_gate_set_false_is_disabled_not_passed():
    warm = phase("warm", rec(ttft_ms=100.0))
    result = gates.gate_ttft(Inputs([warm]).build(), resolve({"ttft": False}))
    assert result.outcome == DISABLED and "command line" in result.reason


# ----------------------------------------------------------------------------- valid


def test_failed_requests_count_against_validity():
    ok = [rec(ttft_ms=10.0) for _ in range(4)]
    failed = rec(error="HTTP 500", error_kind="http", content="")
    result = gates.gate_valid(Inputs([phase("cold", *ok, failed)]).build(), resolve())
    assert (result.outcome, result.value, result.unit) == (PASS, 80.0, "%")
    assert result.tier == RESERVE  # valid, but under asiai's 95% "clean" line
    assert "cold#4 failed (http)" in result.reason


def test_degenerate_and_failed_requests_fail_validity():
    records = [rec(), rec(), rec(content="  "), rec(content="go on " * 30), rec(error="x", error_kind="timeout")]
    result = gates.gate_valid(Inputs([phase("warm", *records)]).build(), resolve())
    assert (result.outcome, result.value, result.tier) == (FAIL, 40.0, ELIMINATED)
    reasons = [d["reason"] for d in result.details["invalid"]]
    assert reasons == ["empty", "ngram_repetition", "failed (timeout)"]
    assert result.threshold == 80.0 and result.threshold_source == "default"


def test_validity_ignores_reasoning():
    result = gates.gate_valid(Inputs([phase("cold", rec(content="", reasoning_chars=900))]).build(), resolve())
    assert result.outcome == FAIL and result.details["invalid"][0]["reason"] == "empty"


def test_validity_not_measured_without_text_or_requests():
    unrecorded = Inputs([phase("cold", rec())], unrecorded=frozenset({"text"})).build()
    assert gates.gate_valid(unrecorded, resolve()).outcome == NOT_MEASURED
    assert gates.gate_valid(Inputs().build(), resolve()).outcome == NOT_MEASURED


# ----------------------------------------------------------------------------- ttft


@pytest.mark.parametrize(
    ("ttfts", "outcome", "tier", "words", "bound"),
    [
        ([100.0, 400.0, 300.0], PASS, OK, "≤ 500 ms (ttft_ok)", "ttft_ok"),
        ([100.0, 1400.0, 1200.0], PASS, RESERVE, "> 500 ms (ttft_ok): reserve", "ttft_ok"),
        ([600.0], PASS, RESERVE, "≤ 1500 ms (ttft): passes", "ttft_ok"),
        ([2000.0], FAIL, RESERVE, "> 1500 ms (ttft): fails, reserve", "ttft"),
        ([3500.0, 3100.0], FAIL, ELIMINATED, "hard fail", "ttft_hard"),
    ],
)
def test_ttft_soft_and_hard(ttfts, outcome, tier, words, bound):
    """asiai's bands (digest §3.9): reserve above 500 ms, the gate fails above 1500, eliminated above 3000."""
    warm = phase("warm", *(rec(ttft_ms=t) for t in ttfts))
    result = gates.gate_ttft(Inputs([warm]).build(), resolve())
    assert (result.outcome, result.tier) == (outcome, tier)
    assert words in result.reason
    assert result.details["bound"] == bound


def test_ttft_bands_are_overridable():
    """A raised ttft_ok moves the reserve band; a raised gate passes 2000 ms, still reserve (above ttft_ok)."""
    warm = phase("warm", rec(ttft_ms=1200.0))
    no_band = gates.gate_ttft(Inputs([warm]).build(), resolve({"ttft_ok": 1300.0}))
    assert (no_band.outcome, no_band.tier, no_band.details["ok_threshold_source"]) == (PASS, OK, "command line")
    slow = phase("warm", rec(ttft_ms=2000.0))
    raised = gates.gate_ttft(Inputs([slow]).build(), resolve({"ttft": 2500.0}))
    assert (raised.outcome, raised.tier, raised.details["bound"]) == (PASS, RESERVE, "ttft_ok")


def test_ttft_not_measured_when_warm_failed_or_missing():
    failed = phase("warm", rec(ttft_ms=50.0), rec(error="boom", error_kind="http"))
    result = gates.gate_ttft(Inputs([failed]).build(), resolve())
    assert result.outcome == NOT_MEASURED and "warm failed" in result.reason
    assert gates.gate_ttft(Inputs().build(), resolve()).outcome == NOT_MEASURED


# ----------------------------------------------------------------------------- reuse


def _reuse(cold_ttft, prefix, cli=None):
    cold = phase("cold", rec(ttft_ms=cold_ttft, cached_tokens=0, prompt_tokens=1000))
    pts = [phase(f"prefix-test-{i + 1}", r) for i, r in enumerate(prefix)]
    names = [p.name for p in pts]
    return gates.gate_reuse(Inputs([cold, *pts]).build(), resolve(cli), names)


def test_reuse_from_the_reported_fraction():
    result = _reuse(1000.0, [rec(ttft_ms=200.0, cached_tokens=800, prompt_tokens=1000)] * 3)
    assert (result.outcome, result.value, result.unit, result.tier) == (PASS, 0.8, "fraction", OK)
    assert result.details["verdict_source"] == "reported" and result.details["ttft_ratio"] == 0.2
    assert "source: reported cached_tokens" in result.reason


def test_reported_zero_fails_and_a_collapsing_ttft_is_flagged():
    result = _reuse(1000.0, [rec(ttft_ms=100.0, cached_tokens=0, prompt_tokens=1000)])
    assert result.outcome == FAIL and result.value == 0.0 and result.tier == ELIMINATED
    assert result.details["effective_but_unreported"] is True
    assert "flag: effective but unreported" in result.reason


def test_reported_but_ineffective_is_flagged_and_reserve():
    result = _reuse(1000.0, [rec(ttft_ms=980.0, cached_tokens=700, prompt_tokens=1000)])
    assert result.outcome == PASS and result.tier == RESERVE
    assert result.details["reported_but_ineffective"] is True and "reported but ineffective" in result.reason


def test_without_cached_tokens_the_ttft_ratio_decides():
    effective = _reuse(1000.0, [rec(ttft_ms=150.0)])
    assert (effective.outcome, effective.unit, effective.details["verdict_source"]) == (PASS, "ratio", "ttft_ratio")
    assert effective.details["effective_but_unreported"] is True
    no_reuse = _reuse(1000.0, [rec(ttft_ms=900.0)])
    assert no_reuse.outcome == FAIL and "source: TTFT ratio" in no_reuse.reason
    stricter = _reuse(1000.0, [rec(ttft_ms=150.0)], {"reuse_ttft_ratio": 0.1})
    assert stricter.outcome == FAIL and stricter.threshold == 0.1


def test_reuse_not_measured_without_prefix_tests():
    cold = phase("cold", rec(ttft_ms=10.0))
    result = gates.gate_reuse(Inputs([cold]).build(), resolve(), ["prefix-test-1"])
    assert result.outcome == NOT_MEASURED and "no prefix test measured" in result.reason


# ----------------------------------------------------------------------------- early stop


def test_early_stop_ignores_a_chosen_stop_and_counts_unknown_finishes():
    records = [
        rec(completion_tokens=5, finish_reason="stop"),  # the model chose to stop: fine
        rec(completion_tokens=5, finish_reason=None),  # cut, finish unknown
        rec(completion_tokens=40, finish_reason="length"),
    ]
    result = gates.gate_early_stop(Inputs([phase("cold", *records)]).build(), resolve())
    assert (result.outcome, result.value) == (PASS, 1)
    records.append(rec(completion_tokens=2, finish_reason="length"))
    result = gates.gate_early_stop(Inputs([phase("cold", *records)]).build(), resolve())
    assert (result.outcome, result.value, result.tier) == (FAIL, 2, ELIMINATED)
    assert "cold#1 5/64" in result.reason and "cold#3 2/64" in result.reason


def test_early_stop_skips_failed_and_unreported_requests():
    records = [rec(error="x", error_kind="http", completion_tokens=1), rec(completion_tokens=None)]
    result = gates.gate_early_stop(Inputs([phase("cold", *records)]).build(), resolve())
    assert result.outcome == NOT_MEASURED


# ----------------------------------------------------------------------------- probes


def test_swap_gate_reads_the_sampler():
    probes = FakeProbes(swap_value={"growth_mb": 12.5, "swapouts_delta": 3, "baseline_mb": 100.0, "peak_mb": 112.5})
    result = gates.gate_swap(Inputs(probes=probes).build(), resolve())
    assert (result.outcome, result.value, result.unit) == (PASS, 12.5, "MB")
    assert result.details["baseline_mb"] == 100.0 and result.details["peak_mb"] == 112.5
    probes.swap_value = {"growth_mb": 12.5, "swapouts_delta": 1500}
    failed = gates.gate_swap(Inputs(probes=probes).build(), resolve())
    assert failed.outcome == FAIL and "1500 swap-outs ≥ 1000" in failed.reason
    missing = gates.gate_swap(Inputs(probes=FakeProbes(reason="remote engine at h")).build(), resolve())
    assert missing.outcome == NOT_MEASURED and missing.reason == "remote engine at h"


def test_solo_and_duplicates():
    snapshot = {
        "engine_pids": [10],
        "duplicates": [{"pid": 11, "engine": "llamacpp", "command": "llama-server -m x"}],
        "others": [],
    }
    inp = Inputs(probes=FakeProbes(processes_value=snapshot)).build()
    solo, dups = gates.gate_solo(inp, resolve()), gates.gate_duplicates(inp, resolve())
    assert (solo.outcome, solo.value) == (PASS, 0)
    assert (dups.outcome, dups.value, dups.tier) == (FAIL, 1, ELIMINATED) and "pid 11" in dups.reason
    partial = Inputs(probes=FakeProbes(processes_value={"duplicates": []})).build()
    assert gates.gate_solo(partial, resolve()).outcome == NOT_MEASURED


def test_memory_has_no_default_threshold():
    probes = FakeProbes(engine_value={"rss_peak_mb": 512.0, "pids": [1]})
    result = gates.gate_memory(Inputs(probes=probes).build(), resolve())
    assert (result.outcome, result.value, result.threshold) == (NO_THRESHOLD, 512.0, None)
    assert gates.gate_memory(Inputs(probes=probes).build(), resolve({"memory": 1024.0})).outcome == PASS
    failed = gates.gate_memory(Inputs(probes=probes).build(), resolve({"memory": 256.0}))
    assert failed.outcome == FAIL and "512 MB > 256 MB" in failed.reason


# ----------------------------------------------------------------------------- thinking


def test_thinking_gate():
    clean = [phase("cold", rec())]
    assert gates.gate_thinking(Inputs(clean, thinking_off=False).build(), resolve()).outcome == NOT_APPLICABLE
    assert gates.gate_thinking(Inputs(clean, thinking_off=None).build(), resolve()).outcome == NOT_MEASURED
    assert gates.gate_thinking(Inputs(clean, thinking_off=True).build(), resolve()).outcome == PASS
    leaked = [phase("cold", rec(), rec(reasoning_chars=120), rec(content="<think>x</think> answer"))]
    result = gates.gate_thinking(Inputs(leaked, thinking_off=True).build(), resolve())
    assert (result.outcome, result.value) == (FAIL, 2)
    assert "cold#1 streamed 120 reasoning chars" in result.reason and "cold#2 has inline <think>" in result.reason


def test_results_serialise_with_the_report_keys():
    result = gates.gate_ttft(Inputs([phase("warm", rec(ttft_ms=12.0))]).build(), resolve())
    data = result.to_dict()
    assert {"value", "threshold", "threshold_source", "outcome", "reason", "tier", "details"} <= set(data)
    assert data["source"] == "built-in" and data["gate"] == "ttft"


# ----------------------------------------------------------------------------- golden: asiai's M5 recordings

#: Gate outcomes per recorded file with default thresholds. v1 files hold no answer text, no
#: finish_reason, no reasoning, no probes and no request fields: those gates are "not measured".
COMMON = {
    "valid": NOT_MEASURED,
    "ttft": PASS,
    "swap": NOT_MEASURED,
    "solo": NOT_MEASURED,
    "duplicates": NOT_MEASURED,
    "thinking": NOT_MEASURED,
    "memory": NOT_MEASURED,
}
GOLDEN = {
    # llama.cpp on a hybrid (DeltaNet) model: cached 0 on every prefix test, prefix TTFT ≈ cold.
    "m5-llamacpp-27b-mtp.json": {**COMMON, "reuse": (FAIL, 0.0), "early_stop": (PASS, 0), "ttft": (PASS, 150.0)},
    "m5-llamacpp-35b-mtp.json": {**COMMON, "reuse": (FAIL, 0.0), "early_stop": (PASS, 0), "ttft": (PASS, 73.0)},
    # mlx-lm + MTP: every request cut short (1-72 tokens of 400/200), prefix cache reported and effective.
    "m5-mlxlm-27b-mtp.json": {**COMMON, "reuse": (PASS, 0.933), "early_stop": (FAIL, 8), "ttft": (PASS, 268.0)},
    # only prefix-test-1 and -3 cut (4 tokens); cold-prefix 269/400 and the long phases 186/200 are not.
    "m5-mlxlm-35b-mtp.json": {**COMMON, "reuse": (PASS, 0.933), "early_stop": (FAIL, 2), "ttft": (PASS, 146.0)},
}
TTFT_RATIOS = {
    "m5-llamacpp-27b-mtp.json": 1.205,
    "m5-llamacpp-35b-mtp.json": 1.051,
    "m5-mlxlm-27b-mtp.json": 0.025,
    "m5-mlxlm-35b-mtp.json": 0.107,
}


def replayed(name: str, tmp_path: Path) -> ReplayAgentic:
    (recording,) = read_recordings(DATA / name)
    handle = ReplayEngine(case_of(recording), EngineManager(tmp_path), lambda h: None)
    return ReplayAgentic(handle, emit=lambda event: None)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_gate_outcomes_on_asiai_recordings(name, tmp_path):
    agentic = replayed(name, tmp_path)
    run = gates.run_phase_names(agentic)
    assert run == [
        "cold", "warm", "prefix-test-1", "prefix-test-2", "prefix-test-3", "cold-prefix", "long-context", "long-prefix",
    ]  # fmt: skip
    for gate, expected in GOLDEN[name].items():
        if gate == "reuse":
            names = gates.prefix_names(agentic)
            result = gates.gate_reuse(gates.gather(agentic, ["cold", *names], agentic.probes), resolve(), names)
        else:
            result = gates.EVALUATORS[gate](gates.gather(agentic, run, agentic.probes), resolve())
        outcome, value = expected if isinstance(expected, tuple) else (expected, None)
        assert result.outcome == outcome, (gate, result.reason)
        if value is not None:
            assert result.value == pytest.approx(value), (gate, result.reason)


@pytest.mark.parametrize("name", sorted(TTFT_RATIOS))
def test_golden_reuse_publishes_both_signals(name, tmp_path):
    agentic = replayed(name, tmp_path)
    names = gates.prefix_names(agentic)
    result = gates.gate_reuse(gates.gather(agentic, ["cold", *names], agentic.probes), resolve(), names)
    assert result.details["ttft_ratio"] == pytest.approx(TTFT_RATIOS[name], abs=0.001)
    assert result.details["verdict_source"] == "reported"
    assert not result.details["reported_but_ineffective"] and not result.details["effective_but_unreported"]


def test_golden_mlxlm_27b_early_stop_names_every_cut_request(tmp_path):
    agentic = replayed("m5-mlxlm-27b-mtp.json", tmp_path)
    result = gates.gate_early_stop(gates.gather(agentic, gates.run_phase_names(agentic), agentic.probes), resolve())
    assert [(c["phase"], c["completion_tokens"]) for c in result.details["cut"]] == [
        ("cold", 9), ("warm", 9), ("prefix-test-1", 1), ("prefix-test-2", 9), ("prefix-test-3", 1),
        ("cold-prefix", 72), ("long-context", 12), ("long-prefix", 12),
    ]  # fmt: skip
    assert "finish_reason not recorded" in result.reason


# ----------------------------------------------------------------------------- which tests are user gates


@dataclass
class FakeCallspec:
    params: dict
    id: str


@dataclass
class FakeItem:
    params: dict
    callspec_id: str
    fixturenames: tuple = ("agentic", "asiai_case")
    markers: tuple = ()
    originalname: str = "test_mine"
    name: str = "test_mine[x]"

    @property
    def callspec(self):
        return FakeCallspec(self.params, self.callspec_id)

    def get_closest_marker(self, name):
        return name if name in self.markers else None


def test_user_gate_keys():
    params = {"asiai_case": CASE}
    assert gates.user_gate_key(FakeItem(params, CASE.id)) == "test_mine"
    assert gates.user_gate_key(FakeItem({**params, "floor": 10}, f"{CASE.id}-10")) == "test_mine[10]"
    assert gates.user_gate_key(FakeItem(params, CASE.id, fixturenames=("engine", "asiai_case"))) is None
    for builtin in ("phase_name", "gate_name", "asiai_metric"):
        assert gates.user_gate_key(FakeItem({**params, builtin: "x"}, f"{CASE.id}-x")) is None
    assert gates.user_gate_key(FakeItem(params, CASE.id, markers=("burst",))) is None
    assert gates.user_gate_key(FakeItem({}, "")) is None

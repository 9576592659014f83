"""The gates as pure verdicts: constructed measurements in, value/threshold/outcome/reason out.

The last part is the golden test on asiai's four recorded M5 results (tests/data/asiai-agentic-v1):
the outcomes a careful reading of docs/asiai-protocol.md predicts, gate by gate.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_asiai.agentic.replay import ReplayEngine, ReplaySource, case_of, read_recordings
from pytest_asiai.agentic.results import Agentic, PhaseResult, PhaseRun
from pytest_asiai.burst import gates as burst_module
from pytest_asiai.burst.gates import GATES as BURST_GATES
from pytest_asiai.config.matrix import Case
from pytest_asiai.endurance import gates as endurance_module
from pytest_asiai.endurance.gates import GATES as ENDURANCE_GATES
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.gates import phases as phases_module
from pytest_asiai.gates import reuse as reuse_module
from pytest_asiai.gates import verdict as gates_verdict
from pytest_asiai.gates.inputs import GateInputs, gather, prefix_names, run_phase_names
from pytest_asiai.gates.path import settle
from pytest_asiai.gates.phases import (
    EVALUATORS,
    gate_duplicates,
    gate_early_stop,
    gate_memory,
    gate_solo,
    gate_swap,
    gate_thinking,
    gate_ttft,
    gate_valid,
    resolver,
)
from pytest_asiai.gates.phases import GATES as PHASE_GATES
from pytest_asiai.gates.reuse import gate_reuse
from pytest_asiai.gates.thresholds import CaseThresholds, Threshold, Thresholds, known_names
from pytest_asiai.gates.user import user_gate_key
from pytest_asiai.gates.verdict import (
    DISABLED,
    ELIMINATED,
    FAIL,
    NO_THRESHOLD,
    NOT_APPLICABLE,
    NOT_MEASURED,
    OK,
    PASS,
    RESERVE,
    Gate,
    judge_value,
)
from pytest_asiai.measure.samplers import Reading
from pytest_asiai.toolcall.gates import GATES as TOOLCALL_GATES
from pytest_asiai.wire.records import RequestRecord

DATA = Path(__file__).parent / "data" / "asiai-agentic-v1"
CASE = Case(engine="e", model="m", mtp="off")
PROSE = " ".join(f"word{i}" for i in range(40))


@dataclass
class FakeSamplers:
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
    samplers: FakeSamplers = field(default_factory=FakeSamplers)
    thinking_off: bool | None = False
    unrecorded: frozenset[str] = frozenset()

    def build(self) -> GateInputs:
        return GateInputs(
            phases={p.name: p for p in self.phases},
            missing={},
            samplers=self.samplers,
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
    result = gate_ttft(Inputs([warm]).build(), resolve({"ttft": False}))
    assert result.outcome == DISABLED and "command line" in result.reason


# ----------------------------------------------------------------------------- valid


def test_failed_requests_count_against_validity():
    ok = [rec(ttft_ms=10.0) for _ in range(4)]
    failed = rec(error="HTTP 500", error_kind="http", content="")
    result = gate_valid(Inputs([phase("cold", *ok, failed)]).build(), resolve())
    assert (result.outcome, result.value, result.unit) == (PASS, 80.0, "%")
    assert result.tier == RESERVE  # valid, but under asiai's 95% "clean" line
    assert "cold#4 failed (http)" in result.reason


def test_degenerate_and_failed_requests_fail_validity():
    records = [rec(), rec(), rec(content="  "), rec(content="go on " * 30), rec(error="x", error_kind="timeout")]
    result = gate_valid(Inputs([phase("warm", *records)]).build(), resolve())
    assert (result.outcome, result.value, result.tier) == (FAIL, 40.0, ELIMINATED)
    reasons = [d["reason"] for d in result.details["invalid"]]
    assert reasons == ["empty", "ngram_repetition", "failed (timeout)"]
    assert result.threshold == 80.0 and result.threshold_source == "default"


def test_validity_ignores_reasoning():
    result = gate_valid(Inputs([phase("cold", rec(content="", reasoning_chars=900))]).build(), resolve())
    assert result.outcome == FAIL and result.details["invalid"][0]["reason"] == "empty"


def test_validity_not_measured_without_text_or_requests():
    unrecorded = Inputs([phase("cold", rec())], unrecorded=frozenset({"text"})).build()
    assert gate_valid(unrecorded, resolve()).outcome == NOT_MEASURED
    assert gate_valid(Inputs().build(), resolve()).outcome == NOT_MEASURED


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
    """asiai's bands (docs/asiai-protocol.md §3.9): reserve > 500 ms, the gate fails > 1500, eliminated > 3000."""
    warm = phase("warm", *(rec(ttft_ms=t) for t in ttfts))
    result = gate_ttft(Inputs([warm]).build(), resolve())
    assert (result.outcome, result.tier) == (outcome, tier)
    assert words in result.reason
    assert result.details["bound"] == bound


def test_ttft_bands_are_overridable():
    """A raised ttft_ok moves the reserve band; a raised gate passes 2000 ms, still reserve (above ttft_ok)."""
    warm = phase("warm", rec(ttft_ms=1200.0))
    no_band = gate_ttft(Inputs([warm]).build(), resolve({"ttft_ok": 1300.0}))
    assert (no_band.outcome, no_band.tier, no_band.details["ok_threshold_source"]) == (PASS, OK, "command line")
    slow = phase("warm", rec(ttft_ms=2000.0))
    raised = gate_ttft(Inputs([slow]).build(), resolve({"ttft": 2500.0}))
    assert (raised.outcome, raised.tier, raised.details["bound"]) == (PASS, RESERVE, "ttft_ok")


def test_ttft_not_measured_when_warm_failed_or_missing():
    failed = phase("warm", rec(ttft_ms=50.0), rec(error="boom", error_kind="http"))
    result = gate_ttft(Inputs([failed]).build(), resolve())
    assert result.outcome == NOT_MEASURED and "warm failed" in result.reason
    assert gate_ttft(Inputs().build(), resolve()).outcome == NOT_MEASURED


# ----------------------------------------------------------------------------- reuse


def _reuse(cold_ttft, prefix, cli=None):
    cold = phase("cold", rec(ttft_ms=cold_ttft, cached_tokens=0, prompt_tokens=1000))
    pts = [phase(f"prefix-test-{i + 1}", r) for i, r in enumerate(prefix)]
    names = [p.name for p in pts]
    return gate_reuse(Inputs([cold, *pts]).build(), resolve(cli), names)


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
    result = gate_reuse(Inputs([cold]).build(), resolve(), ["prefix-test-1"])
    assert result.outcome == NOT_MEASURED and "no prefix test measured" in result.reason


# ----------------------------------------------------------------------------- early stop


def test_early_stop_ignores_a_chosen_stop_and_counts_unknown_finishes():
    records = [
        rec(completion_tokens=5, finish_reason="stop"),  # the model chose to stop: fine
        rec(completion_tokens=5, finish_reason=None),  # cut, finish unknown
        rec(completion_tokens=40, finish_reason="length"),
    ]
    result = gate_early_stop(Inputs([phase("cold", *records)]).build(), resolve())
    assert (result.outcome, result.value) == (PASS, 1)
    records.append(rec(completion_tokens=2, finish_reason="length"))
    result = gate_early_stop(Inputs([phase("cold", *records)]).build(), resolve())
    assert (result.outcome, result.value, result.tier) == (FAIL, 2, ELIMINATED)
    assert "cold#1 5/64" in result.reason and "cold#3 2/64" in result.reason


def test_early_stop_skips_failed_and_unreported_requests():
    records = [rec(error="x", error_kind="http", completion_tokens=1), rec(completion_tokens=None)]
    result = gate_early_stop(Inputs([phase("cold", *records)]).build(), resolve())
    assert result.outcome == NOT_MEASURED


# ----------------------------------------------------------------------------- probes


def test_swap_gate_reads_the_sampler():
    samplers = FakeSamplers(swap_value={"growth_mb": 12.5, "swapouts_delta": 3, "baseline_mb": 100.0, "peak_mb": 112.5})
    result = gate_swap(Inputs(samplers=samplers).build(), resolve())
    assert (result.outcome, result.value, result.unit) == (PASS, 12.5, "MB")
    assert result.details["baseline_mb"] == 100.0 and result.details["peak_mb"] == 112.5
    samplers.swap_value = {"growth_mb": 12.5, "swapouts_delta": 1500}
    failed = gate_swap(Inputs(samplers=samplers).build(), resolve())
    assert failed.outcome == FAIL and "1500 swap-outs ≥ 1000" in failed.reason
    missing = gate_swap(Inputs(samplers=FakeSamplers(reason="remote engine at h")).build(), resolve())
    assert missing.outcome == NOT_MEASURED and missing.reason == "remote engine at h"


def test_solo_and_duplicates():
    snapshot = {
        "engine_pids": [10],
        "duplicates": [{"pid": 11, "engine": "llamacpp", "command": "llama-server -m x"}],
        "others": [],
    }
    inp = Inputs(samplers=FakeSamplers(processes_value=snapshot)).build()
    solo, dups = gate_solo(inp, resolve()), gate_duplicates(inp, resolve())
    assert (solo.outcome, solo.value) == (PASS, 0)
    assert (dups.outcome, dups.value, dups.tier) == (FAIL, 1, ELIMINATED) and "pid 11" in dups.reason
    partial = Inputs(samplers=FakeSamplers(processes_value={"duplicates": []})).build()
    assert gate_solo(partial, resolve()).outcome == NOT_MEASURED


def test_memory_has_no_default_threshold():
    samplers = FakeSamplers(engine_value={"rss_peak_mb": 512.0, "pids": [1]})
    result = gate_memory(Inputs(samplers=samplers).build(), resolve())
    assert (result.outcome, result.value, result.threshold) == (NO_THRESHOLD, 512.0, None)
    assert gate_memory(Inputs(samplers=samplers).build(), resolve({"memory": 1024.0})).outcome == PASS
    failed = gate_memory(Inputs(samplers=samplers).build(), resolve({"memory": 256.0}))
    assert failed.outcome == FAIL and "512 MB > 256 MB" in failed.reason


# ----------------------------------------------------------------------------- thinking


def test_thinking_gate():
    clean = [phase("cold", rec())]
    assert gate_thinking(Inputs(clean, thinking_off=False).build(), resolve()).outcome == NOT_APPLICABLE
    assert gate_thinking(Inputs(clean, thinking_off=None).build(), resolve()).outcome == NOT_MEASURED
    assert gate_thinking(Inputs(clean, thinking_off=True).build(), resolve()).outcome == PASS
    leaked = [phase("cold", rec(), rec(reasoning_chars=120), rec(content="<think>x</think> answer"))]
    result = gate_thinking(Inputs(leaked, thinking_off=True).build(), resolve())
    assert (result.outcome, result.value) == (FAIL, 2)
    assert "cold#1 streamed 120 reasoning chars" in result.reason and "cold#2 has inline <think>" in result.reason


def test_results_serialise_with_the_report_keys():
    result = gate_ttft(Inputs([phase("warm", rec(ttft_ms=12.0))]).build(), resolve())
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


def replayed(name: str, tmp_path: Path) -> Agentic:
    (recording,) = read_recordings(DATA / name)
    handle = ReplayEngine(case_of(recording), EngineManager(tmp_path), lambda h: None)
    return Agentic(ReplaySource(handle, emit=lambda event: None))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_gate_outcomes_on_asiai_recordings(name, tmp_path):
    agentic = replayed(name, tmp_path)
    run = run_phase_names(agentic)
    assert run == [
        "cold", "warm", "prefix-test-1", "prefix-test-2", "prefix-test-3", "cold-prefix", "long-context", "long-prefix",
    ]  # fmt: skip
    for gate, expected in GOLDEN[name].items():
        if gate == "reuse":
            names = prefix_names(agentic)
            result = gate_reuse(gather(agentic, ["cold", *names], agentic.samplers), resolve(), names)
        else:
            result = EVALUATORS[gate](gather(agentic, run, agentic.samplers), resolve())
        outcome, value = expected if isinstance(expected, tuple) else (expected, None)
        assert result.outcome == outcome, (gate, result.reason)
        if value is not None:
            assert result.value == pytest.approx(value), (gate, result.reason)


@pytest.mark.parametrize("name", sorted(TTFT_RATIOS))
def test_golden_reuse_publishes_both_signals(name, tmp_path):
    agentic = replayed(name, tmp_path)
    names = prefix_names(agentic)
    result = gate_reuse(gather(agentic, ["cold", *names], agentic.samplers), resolve(), names)
    assert result.details["ttft_ratio"] == pytest.approx(TTFT_RATIOS[name], abs=0.001)
    assert result.details["verdict_source"] == "reported"
    assert not result.details["reported_but_ineffective"] and not result.details["effective_but_unreported"]


def test_golden_mlxlm_27b_early_stop_names_every_cut_request(tmp_path):
    agentic = replayed("m5-mlxlm-27b-mtp.json", tmp_path)
    result = gate_early_stop(gather(agentic, run_phase_names(agentic), agentic.samplers), resolve())
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
    assert user_gate_key(FakeItem(params, CASE.id)) == "test_mine"
    assert user_gate_key(FakeItem({**params, "floor": 10}, f"{CASE.id}-10")) == "test_mine[10]"
    assert user_gate_key(FakeItem(params, CASE.id, fixturenames=("engine", "asiai_case"))) is None
    for builtin in ("phase_name", "gate_name", "asiai_metric"):
        assert user_gate_key(FakeItem({**params, builtin: "x"}, f"{CASE.id}-x")) is None
    assert user_gate_key(FakeItem(params, CASE.id, markers=("burst",))) is None
    assert user_gate_key(FakeItem({}, "")) is None


# ----------------------------------------------------------------------------- the one gate path


def test_true_means_the_default_resolved_once():
    numeric = Threshold.resolved(True, 80.0, "ini")
    assert (numeric.value, numeric.source, numeric.number()) == (80.0, "ini", 80.0)
    yes_no = Threshold.resolved(True, True, "command line")
    assert (yes_no.value, yes_no.number(), yes_no.disabled) == (True, None, False)
    assert Threshold.resolved(True, None, "ini").value is None  # an opt-in gate stays without a threshold
    assert Threshold.resolved(False, 80.0, "ini").disabled
    thresholds = Thresholds({"valid": True}, {"burst_valid": True})
    assert thresholds.resolve(CASE, "valid", 80.0) == Threshold(80.0, "ini")
    assert thresholds.resolve(CASE, "burst_valid", 80.0) == Threshold(80.0, "command line")
    assert CaseThresholds(thresholds, CASE).resolve("memory", None) == Threshold(None, "default")


def test_every_built_in_gate_is_declared_the_same_way():
    tables = {"phases": PHASE_GATES, "burst": BURST_GATES, "endurance": ENDURANCE_GATES, "toolcall": TOOLCALL_GATES}
    for suite, table in tables.items():
        assert table and all(isinstance(g, Gate) and g.name == name for name, g in table.items()), suite
    names = [name for table in tables.values() for name in table]
    assert len(names) == len(set(names)) and set(names) <= set(known_names())


def test_judge_value_reports_one_shape_whatever_the_outcome():
    gate = Gate("g", 10.0, "ms", at_least=False, what="latency", show="{value:.1f} ms p95")
    verdicts = [
        judge_value(gate, 5.0, Threshold(10.0, "default"), key="g[n2]", where="burst of 2"),
        judge_value(gate, 50.0, Threshold(10.0, "ini")),
        judge_value(gate, None, Threshold(10.0, "default")),
        judge_value(gate, None, Threshold(10.0, "default"), failures=["turn 0: http: HTTP 500"]),
        judge_value(gate, 5.0, Threshold(None, "default")),
        judge_value(gate, 5.0, Threshold(False, "command line")),
    ]
    assert [v.outcome for v in verdicts] == [PASS, FAIL, NOT_MEASURED, FAIL, NO_THRESHOLD, DISABLED]
    assert verdicts[0].reason == "burst of 2: 5.0 ms p95 ≤ 10" and verdicts[1].reason == "50.0 ms p95 > 10"
    assert verdicts[2].reason == "no latency were measured" and verdicts[2].value is None
    assert verdicts[3].reason == "latency not measured: turn 0: http: HTTP 500"
    assert verdicts[4].reason.endswith("set one with --asiai-gate g=VALUE")
    assert verdicts[5].reason == "disabled (g=false from the command line)" and verdicts[5].value == 5.0
    shape = set(gates_verdict.GateResult("x", PASS, "r").to_dict())
    for v in verdicts:
        data = v.to_dict()
        assert set(data) == shape and data["gate"] == "g" and data["source"] == "built-in" and data["unit"] == "ms"
    assert verdicts[0].name == "g[n2]" and verdicts[0].label == "g" and verdicts[1].label is None


def test_the_path_records_then_concludes_with_the_verdict():
    recorded: list[tuple[str, str, dict]] = []

    class Context:
        def record_result(self, section, key, value):
            recorded.append((section, key, value))

    gate = Gate("g", 10.0, "%", what="clean turns")
    passed = judge_value(gate, 12.0, Threshold(10.0, "default"), key="g[basic]")
    assert settle(Context(), passed) is passed
    with pytest.raises(pytest.fail.Exception, match=r"^g\[basic\]: clean turns: 8 % < 10$"):
        settle(Context(), judge_value(gate, 8.0, Threshold(10.0, "default"), key="g[basic]"))
    with pytest.raises(pytest.skip.Exception, match=r"^g not measured: burst of 3: no clean turns were measured"):
        settle(Context(), judge_value(gate, None, Threshold(10.0, "default"), key="g[n3]", where="burst of 3"))
    assert [(s, k, v["outcome"]) for s, k, v in recorded] == [
        ("gates", "g[basic]", PASS),
        ("gates", "g[basic]", FAIL),
        ("gates", "g[n3]", NOT_MEASURED),
    ]


def test_verdicts_are_pure():
    """The verdict modules read no session and write no result: recording is gates/path.py's."""
    for module in (gates_verdict, phases_module, reuse_module, endurance_module, burst_module):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m == "pytest" or m.startswith("pytest_asiai.runtime")}, module.__name__
        assert "record_result" not in Path(module.__file__).read_text(encoding="utf-8"), module.__name__

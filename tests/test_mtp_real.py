"""The MTP axis: draft acceptance and the on/off decode delta, in pure functions and on the real engine.

On llama.cpp ``mtp = "on"`` is speculative decoding; SmolLM2 has no MTP head, so the "on" case drafts
with a draft model (the same GGUF: every draft should be accepted at temperature 0).
"""

from __future__ import annotations

import json

import pytest
from real_engine import copy_suites, engines_toml

from pytest_asiai.engines import prometheus
from pytest_asiai.measure import mtp
from pytest_asiai.report.mtp import mtp_deltas
from pytest_asiai.wire.records import RequestRecord

# ------------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    ("timings", "expected"),
    [
        ({"draft_n": 56, "draft_n_accepted": 42}, {"draft_n": 56, "draft_n_accepted": 42, "acceptance": 0.75}),
        ({"draft_n": 0, "draft_n_accepted": 0}, {"draft_n": 0, "draft_n_accepted": 0, "acceptance": None}),
        ({"cache_n": 3}, {"draft_n": None, "draft_n_accepted": None, "acceptance": None}),
        (None, {"draft_n": None, "draft_n_accepted": None, "acceptance": None}),
        ({"draft_n": 8.0, "draft_n_accepted": True}, {"draft_n": 8, "draft_n_accepted": None, "acceptance": None}),
    ],
)
def test_draft_stats_from_timings(timings, expected):
    assert mtp.draft_stats(timings) == expected


def test_draft_acceptance_of_a_record():
    assert mtp.draft_acceptance(RequestRecord(0.0, timings={"draft_n": 10, "draft_n_accepted": 9})) == 0.9
    assert mtp.draft_acceptance(RequestRecord(0.0)) is None


def test_acceptance_from_two_metrics_scrapes():
    before = prometheus.values(
        "llamacpp:spec_decode_num_draft_tokens_total 56\nllamacpp:spec_decode_num_accepted_tokens_total 56\n"
    )
    after = prometheus.values(
        "llamacpp:spec_decode_num_draft_tokens_total 96\nllamacpp:spec_decode_num_accepted_tokens_total 86\n"
    )
    assert mtp.metrics_acceptance(before, after) == 0.75
    assert mtp.metrics_acceptance(before, before) is None  # nothing drafted in the window
    assert mtp.metrics_acceptance({}, {"llamacpp:prompt_tokens_total": 1.0}) is None  # not drafting


def _case(engine: str, model: str, setting: str, warm: float | None, cold: float | None, timings=None) -> dict:
    def phase(decode):
        run = {"timings": timings, "metrics": {"tokens_per_chunk": 1.0}}
        return {"runs": [run], "stats": {"decode_tok_s": {"median": decode}}}

    return {
        "case": {"engine": engine, "model": model, "mtp": setting},
        "phases": {"cold": phase(cold), "warm": phase(warm)},
    }


def test_mtp_deltas_pairs_off_and_on_of_the_same_model():
    cases = [
        _case("llamacpp", "qwen", "off", 50.0, 48.0),
        _case("llamacpp", "qwen", "on", 80.0, 70.0, {"draft_n": 20, "draft_n_accepted": 15}),
        _case("mlxlm", "qwen", "on", 90.0, 90.0),  # no "off" partner: not compared
        _case("omlx", "qwen", "off", None, 40.0),  # warm not measured: cold is used
        _case("omlx", "qwen", "on", None, None),  # nothing measured: no made-up delta
    ]
    deltas = mtp_deltas(cases)
    assert set(deltas) == {"llamacpp-qwen", "omlx-qwen"}
    assert deltas["llamacpp-qwen"]["off"] == 50.0 and deltas["llamacpp-qwen"]["on"] == 80.0
    assert deltas["llamacpp-qwen"]["delta_pct"] == pytest.approx(60.0)
    assert deltas["llamacpp-qwen"]["acceptance"] == 0.75
    assert deltas["omlx-qwen"] == {
        "off": 40.0,
        "on": None,
        "delta_pct": None,
        "acceptance": None,
        "tokens_per_chunk_off": 1.0,
        "tokens_per_chunk_on": 1.0,
    }


# ---------------------------------------------------------------------------------- real engine

DRAFT = ["--model-draft", "{model_path}", "--spec-type", "draft-simple", "--spec-draft-n-max", "4"]

USER_GATE = """
import pytest
from pytest_asiai.measure import mtp

pytestmark = pytest.mark.agentic


def test_draft_acceptance(agentic):
    acceptance = mtp.draft_acceptance(agentic.phase("warm").records[0])
    agentic.record_metric("draft_acceptance", acceptance)
    assert (acceptance is not None) is (agentic.case.mtp == "on")
"""


def test_mtp_on_and_off_of_smollm2_side_by_side(pytester):
    block = f'mtp = "both"\nmtp_on = {{ args = {json.dumps(DRAFT)} }}'
    pytester.makefile(".toml", engines=engines_toml(model_block=block))
    copy_suites(pytester.path, "test_agentic.py")
    pytester.makepyfile(test_mtp=USER_GATE)
    report_path = pytester.path / "report.json"
    select = "(cold or warm or draft) and not prefix"
    result = pytester.runpytest_subprocess(
        "-m", "agentic", "-k", select, f"--asiai-json={report_path}", "-p", "no:cacheprovider"
    )
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=6)
    cases = {c["id"]: c for c in json.loads(report_path.read_text())["cases"]}
    off, on = cases["llamacpp-smollm2-135m-mtp_off"], cases["llamacpp-smollm2-135m-mtp_on"]
    assert "--model-draft" in on["case"]["launch_args"] and "--model-draft" not in off["case"]["launch_args"]
    warm_on = on["phases"]["warm"]["runs"][0]
    stats = mtp.draft_stats(warm_on["timings"])
    assert stats["draft_n"] and stats["acceptance"] is not None and stats["acceptance"] >= 0.8, stats
    assert mtp.draft_stats(off["phases"]["warm"]["runs"][0]["timings"])["draft_n"] is None
    assert on["metrics"]["draft_acceptance"] == stats["acceptance"] and off["metrics"]["draft_acceptance"] is None
    assert warm_on["metrics"]["tokens_per_chunk"] is not None
    for case in (off, on):  # the client's rate is the engine's own, drafting or not
        for phase in case["phases"].values():
            run = phase["runs"][0]
            assert run["metrics"]["decode_tok_s"] == pytest.approx(run["timings"]["predicted_per_second"], rel=0.03)
    report = json.loads(report_path.read_text())
    delta = report["mtp"]["llamacpp-smollm2-135m"]
    assert delta == mtp_deltas(cases.values())["llamacpp-smollm2-135m"]
    assert delta["off"] > 0 and delta["on"] > 0 and delta["acceptance"] == stats["acceptance"]
    assert delta["delta_pct"] == pytest.approx((delta["on"] - delta["off"]) / delta["off"] * 100)
    # The terminal shows the pair side by side after the tier table, with the delta in percent.
    result.stdout.fnmatch_lines(
        ["*off t/s*on t/s*delta*accept*", f"*llamacpp-smollm2-135m*{delta['delta_pct']:+.1f}%*"]
    )
    print(f"MTP on/off (same-model draft): {json.dumps(delta)}")

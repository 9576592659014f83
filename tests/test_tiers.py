"""Tiers and the tier table over report-model cases (docs/asiai-protocol.md §3.9 logic with our gates)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from real_engine import SUITES, copy_suites
from report_helpers import load_valid

from pytest_asiai.report.table import summary_lines
from pytest_asiai.report.tiers import (
    ELIMINATED,
    RESERVE,
    VIABLE,
    WINNER,
    rank,
    session_estimate,
    tiers_by_case,
    verdict,
)


def gate(tier: str | None, value: float | None = None, unit: str | None = None) -> dict:
    outcome = {"ok": "pass", "reserve": "pass", "eliminated": "fail", None: "not measured"}[tier]
    return {"value": value, "unit": unit, "threshold": None, "outcome": outcome, "reason": "", "tier": tier}


def case(
    cid: str,
    decode: float | None,
    gates: dict,
    machine: str = "m1",
    ttft: float | None = 100.0,
    ram_mb: float | None = None,
) -> dict:
    stats = {"decode_tok_s": {"median": decode, "max": decode and decode * 1.1}, "ttft_ms": {"median": ttft}}
    results: dict = {"gates": gates}
    if ram_mb is not None:
        results["probes"] = {"engine": {"rss_peak_mb": ram_mb}}
    return {
        "id": cid,
        "case": {"machine_id": machine},
        "engine": None,
        "phases": {"warm": {"name": "warm", "runs": [], "stats": stats}},
        "results": results,
    }


def test_verdict_is_the_worst_measured_gate():
    assert verdict({"a": gate("ok"), "b": gate(None)}) == ("ok", [])
    assert verdict({"a": gate("ok"), "b": gate("reserve", 2000.0, "ms")}) == ("reserve", ["b 2000 ms"])
    worst = verdict({"a": gate("eliminated", 0.0, "fraction"), "b": gate("reserve"), "c": gate("eliminated")})
    assert worst == ("eliminated", ["a 0", "c"])
    assert verdict({"a": gate(None)}) == (None, [])


def test_tiers_split_by_half_the_best_passing_decode():
    cases = [
        case("fast", 100.0, {"ttft": gate("ok")}),
        case("half", 50.0, {"ttft": gate("ok")}),
        case("slow", 40.0, {"ttft": gate("ok")}),
        case("reserve-fastest", 120.0, {"ttft": gate("reserve")}),
        case("bad", 500.0, {"reuse": gate("eliminated")}),
        case("ungated", 10.0, {}),
    ]
    (block,) = rank(cases, None).values()
    tiers = {r.case_id: r.tier for r in block}
    # top is the reserve row's 120 t/s: winners need ≥ 60, so "half" (50) is only viable.
    assert tiers == {
        "fast": WINNER,
        "half": VIABLE,
        "slow": VIABLE,
        "reserve-fastest": RESERVE,
        "bad": ELIMINATED,
        "ungated": None,
    }
    assert [r.case_id for r in block] == ["fast", "half", "slow", "reserve-fastest", "bad", "ungated"]
    assert [r.case_id for r in block if r.star] == ["fast"]


def test_the_star_goes_to_the_best_viable_when_nobody_is_fast_and_never_to_reserve():
    cases = [case("r", 100.0, {"g": gate("reserve")}), case("v", 10.0, {"g": gate("ok")})]
    (block,) = rank(cases, None).values()
    assert [(r.case_id, r.tier, r.star) for r in block] == [("v", VIABLE, True), ("r", RESERVE, False)]
    (only_reserve,) = rank([case("r", 100.0, {"g": gate("reserve")})], None).values()
    assert not only_reserve[0].star


def test_blocks_per_machine_rank_independently():
    cases = [case("a", 10.0, {"g": gate("ok")}, "m5"), case("b", 90.0, {"g": gate("ok")}, "m4")]
    assert tiers_by_case(cases, None) == {"a": WINNER, "b": WINNER}
    assert list(rank(cases, None)) == ["m5", "m4"]


def test_live_cases_fall_back_to_the_local_machine():
    live = case("live", 10.0, {"g": gate("ok")})
    live["case"] = {"managed": True}
    assert list(rank([live], "Linux-x86_64-cpu-2c-8g")) == ["Linux-x86_64-cpu-2c-8g"]


def test_table_shows_dashes_causes_and_stars():
    cases = {
        "good": case("good", 91.25, {"valid": gate("ok", 100.0, "%")}, ram_mb=512.0),
        "gone": case("gone", None, {"reuse": gate("eliminated", 0.0, "fraction")}, ttft=None),
    }
    lines = summary_lines(cases)
    assert lines[0] == "machine m1"
    text = "\n".join(lines)
    assert "★ Tier 1 — winner + fast" in text and "✗ Tier 4 — eliminated" in text
    good = next(line for line in lines if "good" in line)
    assert good.startswith("★ good") and "91.2" in good and "0.5" in good and "100" in good
    gone = next(line for line in lines if " gone" in line)
    assert gone.count("—") == 10 and gone.endswith("✗ reuse 0")  # version … burst: every column


def test_no_measured_case_gives_no_table():
    assert summary_lines({}) == []
    assert summary_lines({"x": {"id": "x", "phases": {}, "results": {}}}) == []


def test_mtp_on_and_off_of_one_model_are_side_by_side_with_the_decode_delta():
    def mtp_case(setting: str, decode: float, timings: dict | None = None) -> dict:
        c = case(f"llamacpp-qwen-mtp_{setting}", decode, {"valid": gate("ok", 100.0, "%")})
        c["case"].update(engine="llamacpp", model="qwen", mtp=setting)
        c["phases"]["warm"]["runs"] = [{"timings": timings, "metrics": {"tokens_per_chunk": 1.0}}]
        return c

    cases = {
        "off": mtp_case("off", 50.0),
        "on": mtp_case("on", 80.0, {"draft_n": 20, "draft_n_accepted": 15}),
        "lonely": {**case("mlx-x-mtp_on", 9.0, {}), "case": {"machine_id": "m1", "engine": "mlx", "model": "x"}},
    }
    lines = summary_lines(cases)
    header = next(i for i, line in enumerate(lines) if "off t/s" in line)
    assert lines[header - 1] == "" and "delta" in lines[header] and "accept" in lines[header]
    (row,) = lines[header + 1 :]
    assert row.split() == ["llamacpp-qwen", "50.0", "80.0", "+60.0%", "0.75", "1.00→1.00"]


def test_no_mtp_pair_adds_no_mtp_block():
    cases = {"good": case("good", 91.25, {"valid": gate("ok", 100.0, "%")})}
    assert not any("off t/s" in line for line in summary_lines(cases))


def test_the_largest_measured_burst_shows_its_aggregate_rate():
    def burst(rate: float | None) -> dict:
        return {"summary": {"aggregate_tok_s": {"median": rate}}, "verdict": "parallel"}

    measured = case("b", 50.0, {"valid": gate("ok", 100.0, "%")})
    measured["results"]["burst"] = {"4": burst(120.5), "8": burst(201.25), "30": burst(None)}
    (row,) = rank([measured], None)["m1"]
    assert (row.burst_size, row.burst_tok_s) == (8, 201.25), "30 calls measured no rate: the largest measured wins"
    line = next(line for line in summary_lines({"b": measured}) if line.startswith("★ b"))
    assert line.endswith("201.2@8")
    assert "burst t/s" in summary_lines({"b": measured})[1]


# ----------------------------------------------------------------------------- seed 001, replayed

SEED = Path(__file__).parent / "data" / "seed001"
M5, M4 = "Darwin-arm64-Apple M5 Max-18c-128g", "Darwin-arm64-Apple M4 Pro-14c-64g"
#: Seed 001's published tier table (campaign 2026-06-03), row by row: machine, our case id, the
#: published tier and t/s/W (None: the table's "—"). tests/data/seed001/README.md says how the
#: recordings were rebuilt from it.
PUBLISHED = [
    (M5, "llamacpp-qwopus3.6-35b-a3b-q4-k-s-mtp-mtp_on", WINNER, 1.590),
    (M5, "llamacpp-qwen3.6-35b-a3b-q4-k-s-mtp-mtp_on", WINNER, 1.513),
    (M5, "llamacpp-qwopus3.6-35b-a3b-q4-k-s-mtp_off", WINNER, 1.507),
    (M5, "llamacpp-qwen3.6-35b-a3b-q4-k-s-mtp_off", WINNER, 1.403),
    (M5, "llamacpp-qwen3.6-27b-q4-k-xl-mtp-mtp_on", VIABLE, 0.378),
    (M5, "llamacpp-qwopus3.6-27b-q4-k-xl-mtp-mtp_on", VIABLE, 0.367),
    (M5, "llamacpp-qwopus3.6-27b-q4-k-xl-mtp_off", VIABLE, 0.342),
    (M5, "llamacpp-qwen3.6-27b-q4-k-xl-mtp_off", VIABLE, 0.340),
    (M5, "mlxlm-qwopus3.6-27b-mlx-4bit-mtp_off", RESERVE, 0.461),
    (M5, "rapidmlx-qwen3.6-27b-mlx-4bit-mtp_off", RESERVE, 0.357),
    (M5, "omlx-qwen3.6-27b-mlx-4bit-mtp_off", RESERVE, 0.346),
    (M5, "mlx_vlm-qwen3.6-27b-mlx-4bit-mtp-mtp_on", ELIMINATED, None),
    (M5, "mlx_vlm-qwen3.6-27b-mlx-4bit-mtp_off", ELIMINATED, None),
    (M5, "vllm_mlx-qwen3.6-27b-mlx-4bit-mtp_off", ELIMINATED, None),
    (M4, "llamacpp-qwen3.6-35b-a3b-q5-k-xl-mtp-mtp_on", WINNER, 1.557),
    (M4, "llamacpp-qwen3.6-35b-a3b-q5-k-xl-mtp_off", WINNER, 1.553),
    (M4, "llamacpp-qwen3.6-27b-q5-k-xl-mtp_off", VIABLE, 0.279),
    (M4, "llamacpp-qwen3.6-27b-q5-k-xl-mtp-mtp_on", VIABLE, 0.272),
]


def _table_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """Each table line's case id → (its machine block, the line)."""
    rows, machine = {}, ""
    for line in stdout.splitlines():
        if line.startswith("machine "):
            machine = line[len("machine ") :]
        fields = line[2:].split()
        if fields and fields[0] in {cid for _, cid, _, _ in PUBLISHED}:
            rows[fields[0]] = (machine, line)
    return rows


@pytest.fixture
def seed_run(pytester: pytest.Pytester) -> tuple[pytest.RunResult, Path]:
    copy_suites(pytester.path, "test_agentic.py")
    pytester.makepyfile(test_gate_suite=(SUITES / "test_gates.py").read_text(encoding="utf-8"))
    result = pytester.runpytest(f"--asiai-replay={SEED}", "--asiai-json=r.json", "--asiai-html=r.html")
    return result, pytester.path


def test_seed_001_replays_into_its_published_tiers_and_t_s_w(seed_run):
    """The 18 rebuilt rows land in their published tier with their published t/s/W, in the
    terminal table, the JSON report and the HTML report; the mlx-lm row is reserve by ttft_ok."""
    result, path = seed_run
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # eliminated rows fail their gates, omlx fails ttft
    report = load_valid(path / "r.json")
    cases = {c["id"]: c for c in report["cases"]}
    terminal = _table_rows(result.stdout.str())
    page = (path / "r.html").read_text(encoding="utf-8")
    assert len(cases) == len(terminal) == len(PUBLISHED) == 18
    for machine, cid, tier, tsw in PUBLISHED:
        case = cases[cid]
        assert (case["machine_id"], case["tier"]) == (machine, tier), cid
        warm_power = case["results"]["probes"]["power"]["phases"]["warm"]["tok_s_per_soc_watt"]
        assert warm_power == tsw, cid
        block, line = terminal[cid]
        assert block == machine, cid
        shown = "—" if tsw is None else f"{tsw:.3f}"
        assert f" {shown} " in line, line
        row = re.search(rf'<tr data-case="{re.escape(cid)}" data-tier="{tier}">(.*?)</tr>', page)
        assert row is not None, cid
        assert f'data-col="tsw">{shown}</td>' in row.group(1), cid
    mlxlm = cases["mlxlm-qwopus3.6-27b-mlx-4bit-mtp_off"]["results"]["gates"]["ttft"]
    assert (mlxlm["outcome"], mlxlm["tier"], mlxlm["details"]["bound"]) == ("pass", RESERVE, "ttft_ok")
    assert terminal["mlxlm-qwopus3.6-27b-mlx-4bit-mtp_off"][1].endswith("⚠ ttft 600 ms > ttft_ok 500")
    mlxlm_row = re.search(r'<tr data-case="mlxlm-qwopus3.6-27b-mlx-4bit-mtp_off".*?</tr>', page)
    assert mlxlm_row is not None
    assert 'data-col="session">858</td>' in mlxlm_row.group(0)  # 60 × (0.6 s + 400 / 29.2 tok/s)
    assert 'data-col="ram">26.4</td>' in mlxlm_row.group(0) and 'data-col="ram_warm">14.5</td>' in mlxlm_row.group(0)
    omlx = cases["omlx-qwen3.6-27b-mlx-4bit-mtp_off"]["results"]["gates"]["ttft"]
    assert (omlx["outcome"], omlx["tier"], omlx["details"]["bound"]) == ("fail", RESERVE, "ttft")


def test_session_estimate_is_the_may_tables_lower_bound():
    assert session_estimate(600.0, 29.2, 400) == round(60 * (0.6 + 400 / 29.2), 1)
    assert session_estimate(None, 29.2, 400) is None and session_estimate(600.0, None, 400) is None

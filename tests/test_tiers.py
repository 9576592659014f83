"""Tiers and the tier table over report-model cases (asiai §3.9 logic with our gates)."""

from __future__ import annotations

from pytest_asiai.table import summary_lines
from pytest_asiai.tiers import ELIMINATED, RESERVE, VIABLE, WINNER, rank, tiers_by_case, verdict


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
    assert gone.count("—") == 8 and gone.endswith("✗ reuse 0")


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

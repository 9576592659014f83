"""Typed report results: one reader for every consumer, one name per quantity, tiers ranked in one place."""

from __future__ import annotations

import copy

from report_helpers import META, synthetic_case, synthetic_report

from pytest_asiai.report.baseline import Metric, case_key
from pytest_asiai.report.fold import ReportModel
from pytest_asiai.report.html import render
from pytest_asiai.report.junit import phase_properties
from pytest_asiai.report.model import Stat, as_case, parse_case, parse_stats, per_call, total_ms
from pytest_asiai.report.regression import BaselineCheck
from pytest_asiai.report.tiers import row_of

OLD_BURST = {
    "latency_ms": {"p50": 10.0, "p95": 20.0, "p99": 30.0, "max": 40.0},
    "passes": [{"calls": [{"latency_ms": 5.0, "ttft_ms": 1.0}, {"latency_ms": None, "ttft_ms": None}]}],
}
NEW_BURST = {
    "total_ms": {"p50": 10.0, "p95": 20.0, "p99": 30.0, "max": 40.0},
    "passes": [{"calls": [{"total_ms": 5.0, "ttft_ms": 1.0}, {"total_ms": None, "ttft_ms": None}]}],
}


def test_unmeasured_statistics_are_none_never_zero_and_booleans_are_not_numbers():
    stat = Stat.parse({"n": 0, "median": None, "min": True, "max": "7", "cv": 0.0})
    assert (stat.median, stat.min, stat.max, stat.cv) == (None, None, None, 0.0)
    case = parse_case({"id": "c", "phases": {"warm": {"stats": {"ttft_ms": {"median": 12}}}}})
    assert case.stat("warm", "ttft_ms") == 12.0 and isinstance(case.stat("warm", "ttft_ms"), float)
    assert case.stat("warm", "decode_tok_s") is None and case.stat("cold", "ttft_ms") is None


def test_every_consumer_reads_the_same_phase_median():
    report = synthetic_report(synthetic_case("llamacpp"))
    raw = report["cases"][0]
    case = as_case(raw, report["machine_id"])
    warm_ttft = case.stat("warm", "ttft_ms")
    assert warm_ttft is not None
    assert row_of(raw, report["machine_id"]).ttft_ms == warm_ttft
    assert Metric("warm", "ttft_ms").value(raw) == Metric("warm", "ttft_ms").value(case) == warm_ttft
    stats = raw["phases"]["warm"]["stats"]
    assert ("warm.ttft_ms", round(warm_ttft, 3)) in phase_properties("warm", parse_stats(stats))


def test_a_burst_total_time_reads_the_same_under_its_old_name():
    assert total_ms({"latency_ms": 3.0}) == total_ms({"total_ms": 3.0}) == 3.0
    assert per_call(OLD_BURST) == per_call(NEW_BURST) == [5.0]
    assert per_call(OLD_BURST, "ttft_ms") == per_call(NEW_BURST, "ttft_ms") == [1.0]
    old, new = (parse_case({"id": "c", "results": {"burst": {"16": b}}}) for b in (OLD_BURST, NEW_BURST))
    assert old.bursts["16"].total_quantiles == new.bursts["16"].total_quantiles == OLD_BURST["latency_ms"]


def test_old_and_new_reports_render_the_same_burst_and_endurance():
    base = synthetic_report(synthetic_case("llamacpp"))
    pages = []
    for burst, key in ((OLD_BURST, "latency_ms"), (NEW_BURST, "total_ms")):
        report = copy.deepcopy(base)
        curve = {"turn": [1, 2], "context_tokens": [100, 200], "clean": [True, False], key: [510.0, None]}
        report["cases"][0]["results"]["burst"] = {"16": burst}
        report["cases"][0]["results"]["endurance"] = {"straight": {"curve": curve}}
        pages.append(render(report))
    assert pages[0] == pages[1]
    assert "latency p95 ms" in pages[0] and "turn 1 · 100 tok: 510 ms" in pages[0]


def test_the_report_tier_is_ranked_at_build_and_an_old_tier_event_is_ignored():
    model = ReportModel(META)
    for case_id, event in synthetic_case("llamacpp"):
        model.apply(case_id, event)
    (case_id,) = model.cases
    model.apply(case_id, {"type": "tier", "tier": "eliminated"})  # an events log from an older version
    assert model.build(finished=False)["cases"][0]["tier"] == "winner"  # its one gate declared "ok"


def test_a_live_case_is_compared_by_its_key_and_value_without_a_report_shaped_dict(tmp_path):
    report = synthetic_report(synthetic_case("llamacpp"))
    path = tmp_path / "base.json"
    path.write_text(__import__("json").dumps(report), encoding="utf-8")
    check = BaselineCheck(path, {})
    raw = report["cases"][0]
    metric = Metric("warm", "ttft_ms")
    old = metric.value(raw)
    assert old is not None
    key = case_key(raw, report["machine_id"])
    verdict = check.compare(key, metric, old * 10, "b2")
    assert verdict.outcome == "regressed" and verdict.old == old and verdict.new_version == "b2"
    assert check.compare((None,) * 6, metric, 1.0, None).outcome == "no_baseline"

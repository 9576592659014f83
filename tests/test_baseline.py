"""Baselines: record, pass, regress beyond tolerance (a failing test, exit 1), update, improve (a warning)."""

from __future__ import annotations

import json

import pytest
from report_helpers import META, copy_suite, engines_toml, load_valid, phase_dict, plugin_args, request_record  # noqa: F401
from scripted_engine import Behaviour

from pytest_asiai.agentic.protocol import PHASE_NAMES
from pytest_asiai.report.baseline import (
    Metric,
    case_key,
    compare_reports,
    compare_values,
    merge_baseline,
    parse_tolerances,
    tolerance_for,
)
from pytest_asiai.report.fold import ReportModel
from pytest_asiai.report.regression import local_machine_id

FAST = Behaviour(headers_delay_ms=60, decode_ms_per_token=5)
SLOW = Behaviour(headers_delay_ms=600, decode_ms_per_token=5)
METRICS = ("-k", "cold.ttft_ms or warm.ttft_ms or warm.decode_tok_s")
# Wide tolerances: CI machines are noisy; the scripted slowdown is +900 %.
TOLERANCES = ("--asiai-tolerance", "ttft_ms=150%", "--asiai-tolerance", "decode_tok_s=100%")
CASE = "scripted-m-mtp_off"


@pytest.fixture
def project(pytester, scripted_engine):
    scripted_engine.behaviour = FAST
    pytester.makefile(".toml", engines=engines_toml(("scripted", scripted_engine.base_url)))
    copy_suite(pytester.path, "test_regression.py")
    return pytester


def write_scripted_baseline(path, *, case_id=CASE, machine=None, ttft_ms=65.0, decode=190.0):
    """A baseline as a fast scripted engine would have recorded it, without spending a run on it."""
    model = ReportModel({**META, "machine_id": local_machine_id()})
    describe = {
        "id": case_id,
        "engine": "scripted",
        "kind": "llamacpp",
        "model": "m",
        "mtp": "off",
        "base_url": "x",
        "launch_args": None,
        "api_key_env": None,
        "profile": "smoke",
    }
    engine = {"name": "scripted", "kind": "llamacpp", "base_url": "x", "model": "m", "mtp": "off", "version": "b11434"}
    model.apply(case_id, {"type": "case", "case": describe, "engine": engine, "profile": "smoke", "runs": 1})
    for name in ("cold", "warm"):
        model.apply(case_id, {"type": "phase", "phase": phase_dict(name, [request_record(ttft_ms, decode)])})
    report = model.build(finished=True, exit_status=0)
    if machine is not None:
        report["cases"][0]["machine_id"] = machine
    path.write_text(json.dumps(report))


def run(project, *args):
    return project.runpytest("--asiai-baseline=base.json", *METRICS, *TOLERANCES, "-p", "no:randomly", *args)


def regression_results(project, report="r.json"):
    (case,) = load_valid(project.path / report)["cases"]
    return case["results"]["regression"]


def test_baseline_flow_end_to_end(project, scripted_engine):
    # 1. record: no baseline yet, the update writes one; nothing fails.
    result = run(project, "--asiai-update-baseline", "--asiai-json=r.json")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*baseline updated: base.json (1 case(s) from this run, 0 kept)*"])
    baseline = load_valid(project.path / "base.json")
    first_cold = baseline["cases"][0]["phases"]["cold"]["stats"]["ttft_ms"]["median"]
    assert first_cold >= 60
    assert {r["outcome"] for r in regression_results(project).values()} == {"updated"}

    # 2. the same engine passes against it.
    result = run(project, "--asiai-json=r.json")
    result.assert_outcomes(passed=3)
    assert {r["outcome"] for r in regression_results(project).values()} == {"passed"}

    # 3. ten times slower to first token: a failing test per TTFT metric, with old, new and change; exit 1.
    scripted_engine.behaviour = SLOW
    result = run(project, "--asiai-json=r.json", "--junitxml=j.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            f"*_ test_regression[[]{CASE}-cold.ttft_ms] _*",
            "E * AssertionError: regression: cold.ttft_ms: * ms → * ms (+*%, lower is better, tolerance 150%)",
        ]
    )
    cold = regression_results(project)["cold.ttft_ms"]
    assert cold["outcome"] == "regressed" and cold["old"] == first_cold and cold["change_pct"] > 300
    assert regression_results(project)["warm.decode_tok_s"]["outcome"] == "passed"
    assert 'name="regression.cold.ttft_ms.outcome" value="regressed"' in (project.path / "j.xml").read_text()

    # 4. accept the new figures: the baseline is rewritten and the run passes.
    run(project, "--asiai-update-baseline").assert_outcomes(passed=3)
    updated = load_valid(project.path / "base.json")["cases"][0]["phases"]["cold"]["stats"]["ttft_ms"]["median"]
    assert updated > 5 * first_cold
    run(project).assert_outcomes(passed=3)

    # 5. back to fast: an improvement beyond tolerance passes but says the baseline is stale.
    scripted_engine.behaviour = FAST
    result = run(project)
    result.assert_outcomes(passed=3, warnings=2)
    result.stdout.fnmatch_lines(["*BaselineImprovement: improvement: cold.ttft_ms*refresh the baseline*"])


def test_regression_fails_alike_with_and_without_xdist(project, scripted_engine, plugin_args):  # noqa: F811
    write_scripted_baseline(project.path / "base.json")
    scripted_engine.behaviour = SLOW
    result = run(project, "--asiai-json=r.json", *plugin_args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    failed = {k for k, r in regression_results(project).items() if r["outcome"] == "regressed"}
    assert failed == {"cold.ttft_ms", "warm.ttft_ms"}
    result.stdout.fnmatch_lines(["E * AssertionError: regression: cold.ttft_ms: 65.0 ms → * ms *"])


def test_missing_baseline_warns_and_skips_unless_required(project):
    result = run(project, "--asiai-json=r.json")
    result.assert_outcomes(skipped=3, warnings=4)
    result.stdout.fnmatch_lines(["*BaselineMissing: baseline base.json does not exist*"])
    assert {r["outcome"] for r in regression_results(project).values()} == {"no_baseline"}
    required = run(project, "--asiai-require-baseline")
    assert required.ret == pytest.ExitCode.TESTS_FAILED
    required.assert_outcomes(failed=3)


def test_cases_match_by_what_was_measured_not_by_node_id(project):
    write_scripted_baseline(project.path / "base.json", case_id="renamed-in-an-old-release")
    run(project, "--asiai-json=r.json").assert_outcomes(passed=3)
    assert regression_results(project)["cold.ttft_ms"]["old"] == pytest.approx(65.0)
    write_scripted_baseline(project.path / "base.json", machine="Darwin-arm64-Apple M4 Pro-14c-64g")
    result = run(project, "--asiai-json=r.json")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*no case in base.json matches scripted (llamacpp) m mtp_off profile smoke on *"])


def test_no_baseline_option_generates_no_regression_test(project):
    result = project.runpytest("--collect-only", "-q")
    assert "test_regression[" not in result.stdout.str()
    result.stdout.fnmatch_lines(["no tests collected (1 deselected)*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--asiai-update-baseline"], "--asiai-update-baseline: needs --asiai-baseline PATH*"),
        (["--asiai-baseline=b.json", "--asiai-tolerance=ttft_ms=fast"], "*'fast' is not a percentage"),
        (["--asiai-baseline=b.json", "--asiai-tolerance=speed=5%"], "*unknown metric 'speed'*"),
        (["--asiai-baseline=engines.toml"], "*engines.toml: not JSON*"),
    ],
    ids=["update-without-path", "bad-tolerance", "unknown-metric", "not-a-report"],
)
def test_bad_baseline_options_are_one_line_usage_errors(project, args, message):
    result = project.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


# -- pure functions ----------------------------------------------------------------------------------------

TTFT, DECODE = Metric("warm", "ttft_ms"), Metric("warm", "decode_tok_s")


def test_direction_decides_what_a_regression_is():
    assert compare_values(TTFT, 100.0, 125.0, 20).outcome == "regressed"
    assert compare_values(TTFT, 100.0, 119.0, 20).outcome == "passed"
    assert compare_values(TTFT, 100.0, 70.0, 20).outcome == "improved"
    assert compare_values(TTFT, 100.0, 85.0, 20).outcome == "passed"  # 100 is not 20 % worse than 85
    assert compare_values(TTFT, 630.0, 88.0, 150).outcome == "improved", "improvements are not capped at -100 %"
    assert compare_values(DECODE, 100.0, 75.0, 20).outcome == "regressed"
    assert compare_values(DECODE, 100.0, 130.0, 20).outcome == "improved"
    assert compare_values(DECODE, 100.0, 110.0, 20).outcome == "passed"
    assert compare_values(DECODE, 100.0, 85.0, 20).change_pct == pytest.approx(-15.0)
    assert compare_values(TTFT, None, 50.0, 20).outcome == "no_baseline"
    missing = compare_values(TTFT, 50.0, None, 20)
    assert missing.outcome == "not_measured" and not missing.ok, "a value that vanished is not a pass"


def test_tolerances_parse_and_resolve_most_specific_first():
    tolerances = parse_tolerances(["ttft_ms=30%", "warm.ttft_ms = 50", "decode_tok_s=5%"])
    assert tolerances == {"ttft_ms": 30.0, "warm.ttft_ms": 50.0, "decode_tok_s": 5.0}
    assert tolerance_for(TTFT, tolerances) == 50.0
    assert tolerance_for(Metric("cold", "ttft_ms"), tolerances) == 30.0
    assert tolerance_for(Metric("cold", "ttft_ms"), {}) == 20.0 and tolerance_for(DECODE, {}) == 10.0
    with pytest.raises(ValueError, match="expected METRIC=PCT"):
        parse_tolerances(["ttft_ms"])
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_tolerances(["ttft_ms=-1%"])


def _case(engine="e", version="b1", model="m", machine="here", ttft=100.0, node_id="x"):
    stats = {"ttft_ms": {"median": ttft}, "decode_tok_s": {"median": 50.0}}
    return {
        "id": node_id,
        "case": {"engine": engine, "kind": "llamacpp", "model": model, "mtp": "off", "managed": True},
        "engine": {"name": engine, "kind": "llamacpp", "version": version, "model": model, "mtp": "off"},
        "profile": "smoke",
        "machine_id": machine,
        "phases": {"warm": {"stats": stats}},
    }


def test_matching_ignores_ids_and_versions_but_not_machines():
    assert case_key(_case(version="b1", node_id="a")) == case_key(_case(version="b2", node_id="b"))
    assert case_key(_case(machine="here")) != case_key(_case(machine="host:mac-2"))
    old, new = {"cases": [_case(version="b1")]}, {"cases": [_case(version="b2", ttft=150.0)]}
    (comp,) = compare_reports(old, new, {})
    ttft = next(v for v in comp.verdicts if v.metric == TTFT)
    assert ttft.outcome == "regressed" and (ttft.old_version, ttft.new_version) == ("b1", "b2")


def test_merge_replaces_matched_cases_and_keeps_the_others():
    old = {"machine_id": "here", "cases": [_case(engine="a", ttft=1.0), _case(engine="b", ttft=2.0)]}
    new = {"machine_id": "here", "cases": [_case(engine="b", ttft=3.0)]}
    merged = merge_baseline(old, new)
    assert [(c["case"]["engine"], c["phases"]["warm"]["stats"]["ttft_ms"]["median"]) for c in merged["cases"]] == [
        ("a", 1.0),
        ("b", 3.0),
    ]


def test_replayed_reports_are_compared_with_the_baseline_too(pytester):
    """No engine: the recorded report is replayed as cases and compared like a live run."""
    copy_suite(pytester.path, "test_regression.py")
    write_scripted_baseline(pytester.path / "base.json")
    write_scripted_baseline(pytester.path / "slower.json", ttft_ms=400.0)
    same = pytester.runpytest("--asiai-replay=base.json", "--asiai-baseline=base.json", "-k", "ttft_ms")
    not_recorded = len(PHASE_NAMES) - 2  # the recording holds cold and warm only: the others skip
    same.assert_outcomes(passed=2, skipped=not_recorded)
    slower = pytester.runpytest("--asiai-replay=slower.json", "--asiai-baseline=base.json", "-k", "ttft_ms")
    slower.assert_outcomes(failed=2, skipped=not_recorded)
    slower.stdout.fnmatch_lines(["E * AssertionError: regression: cold.ttft_ms: 65.0 ms → 400.0 ms (+515.4%, *"])

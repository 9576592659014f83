"""The JSON report: self-describing, schema-valid, secret-free, and the same as its rebuilt log."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_helpers import copy_suite, engines_toml, load_valid, plugin_args, synthetic_case, synthetic_report  # noqa: F401
from scripted_engine import Behaviour

from pytest_asiai.measure import machine
from pytest_asiai.report.events import case_for_nodeid, plain_nodeid
from pytest_asiai.report.files import log_path_for
from pytest_asiai.report.fold import ReportModel, rebuild
from pytest_asiai.report.redact import REDACTED, Redactor, scrub_args
from pytest_asiai.report.schema import schema_problem, validate_report

SECRET = "sk-test-7c1f0e9a4b2d"


@pytest.fixture
def project(pytester, scripted_engine):
    scripted_engine.behaviour = Behaviour(prefill_ms_per_token=0.02, decode_ms_per_token=0.5, send_timings=True)
    pytester.makefile(".toml", engines=engines_toml(("scripted", scripted_engine.base_url)))
    copy_suite(pytester.path, "test_agentic.py")
    return pytester


def test_report_describes_the_run_and_every_case(project, scripted_engine):
    result = project.runpytest("-m", "agentic", "-k", "cold or warm", "--asiai-json=out/r.json")
    assert result.ret == 0, result.stdout.str()
    report = load_valid(project.path / "out" / "r.json")
    assert report["schema"] == "pytest-asiai/report-v1"
    assert report["plugin_version"] and report["pytest_version"] == pytest.__version__
    assert report["started_at"] <= report["finished_at"] and report["complete"] is True
    assert report["exit_status"] == 0 and report["incidents"] == []
    assert "--asiai-json=out/r.json" in report["command_line"]
    assert report["git"] == {"commit": None, "branch": None, "dirty": None}  # pytester's directory is no work tree
    hw = report["machine"]
    assert hw["os"] == platform.system() and hw["cores_logical"] == os.cpu_count() and hw["ram_bytes"] > 2**28
    assert hw["chip"] is None and hw["power_mode"] is None  # macOS-only probes
    assert report["machine_id"] == machine.machine_id(hw)
    (case,) = report["cases"]
    assert case["machine_id"] == report["machine_id"]  # a loopback engine runs on this machine
    assert case["case"]["engine"] == "scripted" and case["case"]["mtp"] == "off"
    assert case["case"]["launch_args"] is None and case["case"]["api_key_env"] is None
    engine = case["engine"]
    assert (engine["kind"], engine["version"], engine["base_url"]) == ("llamacpp", "b11434", scripted_engine.base_url)
    assert case["profile"] == "smoke" and case["runs"] == 1
    cold = case["phases"]["cold"]
    assert cold["runs"][0]["ok"] and cold["stats"]["ttft_ms"]["median"] == cold["runs"][0]["ttft_ms"]
    names = [t["name"] for t in case["tests"] if t["name"].startswith("test_phase")]
    assert names[:2] == ["test_phase[scripted-m-mtp_off-cold]", "test_phase[scripted-m-mtp_off-warm]"]
    assert all(t["markers"] == ["agentic"] and t["worker"] is None for t in case["tests"])


def test_final_report_equals_the_one_rebuilt_from_its_log(project):
    project.runpytest("-m", "agentic", "-k", "cold or warm", "--asiai-json=r.json")
    final = load_valid(project.path / "r.json")
    rebuilt = rebuild(log_path_for(project.path / "r.json"))
    validate_report(rebuilt)
    assert rebuilt["cases"] == final["cases"]
    assert rebuilt["complete"] is True and rebuilt["exit_status"] == final["exit_status"]
    assert not (project.path / "r.json.spool").exists(), "the spool is removed after a clean finish"


USER_GATE = """
from pytest_asiai.config.stash import session_of

def test_my_warm_gate(agentic, asiai_case, request):
    warm = agentic.phase("warm")
    session_of(request.config).record_result(
        asiai_case.id, "gates", "my_warm_ttft",
        {"value": warm.ttft_ms, "threshold": 5000.0, "outcome": "pass", "reason": None},
    )
    agentic.record_metric("warm_to_cold", warm.ttft_ms / agentic.phase("cold").ttft_ms)
    assert warm.ttft_ms < 5000.0
"""


def test_junit_carries_key_figures_as_properties(project, plugin_args):  # noqa: F811
    project.makepyfile(test_mine=USER_GATE)
    args = ["-m", "agentic or not agentic", "-k", "cold or warm", "--junitxml=j.xml", "--asiai-json=r.json"]
    result = project.runpytest(*args, *plugin_args, "-p", "no:randomly")
    assert result.ret == 0, result.stdout.str()
    assert "xunit2" not in result.stdout.str(), "no record_property warning under the default junit_family"
    cases = {tc.get("name"): tc for tc in ET.parse(project.path / "j.xml").getroot().iter("testcase")}
    props = {name: {p.get("name"): p.get("value") for p in tc.iter("property")} for name, tc in cases.items()}
    cold = props["test_phase[scripted-m-mtp_off-cold]"]
    assert float(cold["cold.ttft_ms"]) > 0 and float(cold["cold.decode_tok_s"]) > 0
    assert int(cold["cold.cached_tokens"]) <= 1  # the chat template's first token may be shared
    warm = props["test_phase[scripted-m-mtp_off-warm]"]
    assert int(warm["warm.cached_tokens"]) > 0 and "cold.ttft_ms" not in warm
    gate = props["test_my_warm_gate[scripted-m-mtp_off]"]
    assert gate["gates.my_warm_ttft.threshold"] == "5000.0" and gate["gates.my_warm_ttft.outcome"] == "pass"
    assert float(gate["gates.my_warm_ttft.value"]) == pytest.approx(float(warm["warm.ttft_ms"]), abs=1e-3)
    report = load_valid(project.path / "r.json")
    (case,) = report["cases"]
    assert case["results"]["gates"]["my_warm_ttft"]["threshold"] == 5000.0
    assert 0 < case["metrics"]["warm_to_cold"] < 1
    assert {t["name"]: t["outcome"] for t in case["tests"]}["test_my_warm_gate[scripted-m-mtp_off]"] == "passed"


def test_secrets_never_reach_any_file(pytester, scripted_engine, monkeypatch):
    monkeypatch.setenv("ASIAI_TEST_KEY", SECRET)
    toml = engines_toml(("scripted", scripted_engine.base_url), extra='api_key_env = "ASIAI_TEST_KEY"')
    pytester.makefile(".toml", engines=toml)
    copy_suite(pytester.path, "test_agentic.py")
    pytester.makepyfile(
        test_leak=f"""
        def test_leaky_metric(agentic):
            agentic.phase("cold")
            agentic.record_metric("note", "token was {SECRET}")
        """
    )
    args = ("-m", "agentic or not agentic", "-k", "cold or leaky")
    result = pytester.runpytest(*args, "--asiai-json=r.json", "--asiai-html=r.html", "--junitxml=j.xml")
    assert result.ret == 0, result.stdout.str()
    written = [p for p in pytester.path.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".html", ".xml")]
    assert {p.name for p in written} >= {"r.json", "r.json.events.jsonl", "r.html", "j.xml"}
    for path in written:
        assert SECRET not in path.read_text(encoding="utf-8"), path
    report = load_valid(pytester.path / "r.json")
    (case,) = report["cases"]
    assert case["case"]["api_key_env"] == "ASIAI_TEST_KEY" and case["metrics"]["note"] == f"token was {REDACTED}"
    assert "authorization" not in (pytester.path / "r.json").read_text(encoding="utf-8").lower()


def test_redactor_scrubs_values_and_secret_flags():
    redactor = Redactor([SECRET, "ab"])  # too short to be a key: left alone
    assert redactor.scrub({"a": [f"x{SECRET}y", 1, None], "b": "ab"}) == {"a": [f"x{REDACTED}y", 1, None], "b": "ab"}
    assert scrub_args(["llama-server", "--api-key", "k1", "--port", "1"]) == [
        "llama-server",
        "--api-key",
        REDACTED,
        "--port",
        "1",
    ]
    assert scrub_args(["--api-key=k1"]) == [f"--api-key={REDACTED}"]


def _minimal_report() -> dict:
    model = ReportModel(
        {
            "plugin_version": "0",
            "pytest_version": "9",
            "python_version": "3",
            "started_at": 1.0,
            "command_line": [],
            "git": {"commit": None, "dirty": None},
            "machine": machine.machine_info(),
            "machine_id": "m",
        }
    )
    model.apply(
        "e-m-mtp_off",
        {
            "type": "result",
            "section": "gates",
            "key": "warm_ttft",
            "value": {"value": 12.0, "threshold": 1500.0, "outcome": "pass", "reason": None},
        },
    )
    model.apply("e-m-mtp_off", {"type": "result", "section": "burst", "key": "b8", "value": {"anything": [1, 2]}})
    return model.build(finished=True, exit_status=0)


def test_schema_defines_the_shapes_it_knows_and_leaves_sections_open():
    report = _minimal_report()
    assert schema_problem(report) is None
    broken = json.loads(json.dumps(report))
    del broken["cases"][0]["results"]["gates"]["warm_ttft"]["threshold"]
    assert "'threshold' is a required property" in schema_problem(broken)
    leaked = json.loads(json.dumps(report))
    leaked["cases"][0]["engine"] = {
        "name": "e",
        "kind": "k",
        "base_url": None,
        "model": "m",
        "mtp": "off",
        "version": None,
        "api_key": SECRET,
    }
    assert schema_problem(leaked) is not None
    extra = {**report, "surprise": 1}
    with pytest.raises(jsonschema.ValidationError):
        validate_report(extra)


EVENTS = st.one_of(
    st.builds(
        lambda k, v: {"type": "metric", "name": k, "value": v},
        st.text(min_size=1, max_size=8),
        # beyond 2**53 an integer is "not measured" (null): tests/test_hostile_files.py covers that
        st.one_of(
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**53), 2**53),
            st.text(),
        ),
    ),
    st.builds(
        lambda s, k, o: {
            "type": "result",
            "section": s,
            "key": k,
            "value": {"value": None, "threshold": 1.0, "outcome": o, "reason": "x"},
        },
        st.sampled_from(["gates", "toolcall"]),
        st.text(min_size=1, max_size=8),
        st.sampled_from(["pass", "fail"]),
    ),
    st.builds(
        lambda n, o: {"type": "test", "nodeid": f"t.py::{n}", "name": n, "outcome": o, "message": None},
        st.text(min_size=1, max_size=8),
        st.sampled_from(["passed", "failed", "skipped"]),
    ),
    st.builds(lambda m: {"type": "incident", "kind": "worker_down", "message": m, "at": 1.0}, st.text(max_size=20)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a-m-mtp_off", "b-m-mtp_on"]), EVENTS), max_size=25))
def test_any_event_sequence_builds_a_valid_report_and_its_log_rebuilds_it(tmp_path_factory, events):
    log = tmp_path_factory.mktemp("log") / "r.json.events.jsonl"
    meta = {
        "plugin_version": "0",
        "pytest_version": "9",
        "python_version": "3",
        "started_at": 1.0,
        "command_line": ["-x"],
        "git": {"commit": None, "dirty": None},
        "machine": {
            "os": None,
            "arch": None,
            "cpu_model": None,
            "cores_logical": None,
            "ram_bytes": None,
            "chip": None,
            "power_mode": None,
        },
        "machine_id": None,
    }
    model = ReportModel(meta)
    lines = [json.dumps({"type": "meta", "meta": meta})]
    for case_id, event in events:
        model.apply(case_id, event)
        lines.append(json.dumps({"case_id": case_id, **event}))
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    built = model.build(finished=False)
    validate_report(built)
    assert rebuild(log)["cases"] == built["cases"]


def test_rebuild_tolerates_a_last_line_cut_short_but_not_garbage_inside(tmp_path):
    log = tmp_path / "r.json.events.jsonl"
    meta = _minimal_report()
    head = json.dumps(
        {
            "type": "meta",
            "meta": {
                k: meta[k]
                for k in (
                    "plugin_version",
                    "pytest_version",
                    "python_version",
                    "started_at",
                    "command_line",
                    "git",
                    "machine",
                    "machine_id",
                )
            },
        }
    )
    metric = json.dumps({"case_id": "c", "type": "metric", "name": "x", "value": 1})
    log.write_text(f"{head}\n{metric}\n{metric[:10]}", encoding="utf-8")
    assert rebuild(log)["cases"][0]["metrics"] == {"x": 1}
    log.write_text(f"{head}\nnot json\n{metric}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"r.json.events.jsonl:2: not a JSON line"):
        rebuild(log)


def test_node_ids_lose_the_xdist_group_suffix_and_map_to_their_case():
    assert plain_nodeid("t.py::test_phase[a-m-mtp_off-cold]@local:a") == "t.py::test_phase[a-m-mtp_off-cold]"
    assert plain_nodeid("t.py::test_x@127.0.0.1:8080") == "t.py::test_x"
    assert plain_nodeid("a@b/t.py::test_x[p]") == "a@b/t.py::test_x[p]"
    cases = ["a-m-mtp_off", "a-m-mtp_off2", "b-m-mtp_on"]
    assert case_for_nodeid("t.py::test_phase[a-m-mtp_off-cold]@g", cases) == "a-m-mtp_off"
    assert case_for_nodeid("t.py::test_engine[b-m-mtp_on]", cases) == "b-m-mtp_on"
    assert case_for_nodeid("t.py::test_plain", cases) is None


def test_machine_probes_and_ids():
    assert machine.parse_pmset(" lowpowermode         1\n") == "low power"
    assert machine.parse_pmset("System-wide power settings:\n powermode            2\n") == "high power"
    assert machine.parse_pmset("sleep 1\n") is None
    info = {
        "os": "Darwin",
        "arch": "arm64",
        "chip": "Apple M4 Pro",
        "cpu_model": "Apple M4 Pro",
        "cores_logical": 14,
        "ram_bytes": 64 * 2**30,
    }
    assert machine.machine_id(info) == "Darwin-arm64-Apple M4 Pro-14c-64g"
    local = {"case": {"managed": True, "base_url": None}, "engine": {"base_url": "http://127.0.0.1:5"}}
    remote = {"case": {"base_url": "http://mac-2.lan:8080/v1"}, "engine": None}
    assert machine.case_machine_id("here", local) == "here"
    assert machine.case_machine_id("here", remote) == "host:mac-2.lan"


def test_git_commit_and_dirty_flag(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    assert machine.git_info(tmp_path)["commit"] is None
    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    clean = machine.git_info(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "f.txt").write_text("b")
    assert machine.git_info(tmp_path)["dirty"] is True


def test_report_paths_sit_beside_the_report():
    assert log_path_for(Path("out/r.json")) == Path("out/r.json.events.jsonl")


MALFORMED_GATE = """
from pytest_asiai.config.stash import session_of

def test_sloppy_gate(agentic, asiai_case, request):
    agentic.phase("cold")
    session_of(request.config).record_result(asiai_case.id, "gates", "sloppy", {"value": 1.0})
"""


def test_a_malformed_result_never_breaks_the_run_or_the_valid_report(project):
    project.makepyfile(test_sloppy=MALFORMED_GATE)
    result = project.runpytest("-m", "agentic or not agentic", "-k", "sloppy", "--asiai-json=r.json")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["asiai report does not match its schema*'threshold' is a required property*"])
    invalid = json.loads((project.path / "r.json.invalid").read_text())
    assert invalid["cases"][0]["results"]["gates"]["sloppy"] == {"value": 1.0}
    assert invalid["cases"][0]["phases"]["cold"]["runs"][0]["ok"], "the measurements are all there"
    if (project.path / "r.json").exists():  # an earlier, valid version of the report stays valid
        load_valid(project.path / "r.json")


def _with_mtp(events: list, setting: str, decode_scale: float) -> list:
    """A synthetic case re-labelled as one MTP setting of the same engine × model."""
    out = []
    for case_id, event in events:
        new_id = case_id.replace("mtp_off", f"mtp_{setting}")
        event = json.loads(json.dumps(event))
        if event["type"] == "case":
            event["case"].update(id=new_id, mtp=setting)
        if event["type"] == "phase" and setting == "on":
            for run in event["phase"]["runs"]:
                run["timings"] = {"draft_n": 40, "draft_n_accepted": 30}
            event["phase"]["stats"]["decode_tok_s"]["median"] *= decode_scale
        out.append((new_id, event))
    return out


def test_the_report_pairs_mtp_on_and_off_of_one_model():
    from pytest_asiai.report.schema import validate_report

    base = synthetic_case("llamacpp", decode=100.0)
    report = synthetic_report(_with_mtp(base, "off", 1.0), _with_mtp(base, "on", 1.25))
    validate_report(report)
    pair = report["mtp"]["llamacpp-smollm2-135m"]
    assert pair["off"] == pytest.approx(100.0) and pair["on"] == pytest.approx(125.0)
    assert pair["delta_pct"] == pytest.approx(25.0) and pair["acceptance"] == 0.75
    assert synthetic_report(base)["mtp"] == {}, "one setting alone is not a pair"

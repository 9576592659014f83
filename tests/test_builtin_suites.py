"""The built-in suites run beside the user's own tests (pytest_asiai/runtime/suites.py).

These pytester projects hold no copy of ``suites/``: the phases and gates come from the installed
package (here the editable install, whose ``pytest_asiai.suites`` is the repository's suites/).
tests/test_wheel.py checks the same from a built wheel in a fresh virtual environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted_engine import ScriptedEngine

from pytest_asiai.runtime.suites import suites_dir

USER_GATE = "import pytest\n\n@pytest.mark.agentic\ndef test_mine(agentic):\n    assert agentic.phase('cold').ok\n"


def engines_toml(base_url: str) -> str:
    return (
        f'profile = "smoke"\n[[engines]]\nname = "scripted"\nkind = "llamacpp"\nbase_url = "{base_url}"\n'
        'deadline_s = 20\n[[engines.models]]\nname = "m"\n'
    )


@pytest.fixture
def project(pytester: pytest.Pytester, scripted_engine: ScriptedEngine, monkeypatch) -> pytest.Pytester:
    """A user's project: an engines.toml, one gate of the user's, and no suites of its own."""
    monkeypatch.delenv("ASIAI_SUITES", raising=False)
    pytester.makefile(".toml", engines=engines_toml(scripted_engine.base_url))
    pytester.makepyfile(test_mine=USER_GATE)
    return pytester


def collected_files(result: pytest.RunResult) -> set[str]:
    return {line.split("::")[0] for line in result.stdout.lines if "::" in line}


def test_the_package_carries_the_suites():
    directory = suites_dir()
    assert directory is not None
    assert {p.name for p in directory.glob("test_*.py")} >= {"test_agentic.py", "test_gates.py", "test_burst.py"}


def test_built_in_suites_run_beside_the_users_tests(project):
    result = project.runpytest("-m", "agentic", "--collect-only", "-q")
    assert collected_files(result) == {"test_mine.py", "test_agentic.py", "test_gates.py"}
    result.stdout.fnmatch_lines(
        ["test_mine.py::test_mine[[]scripted-m-mtp_off[]]", "test_agentic.py::test_phase[[]scripted-m-mtp_off-cold[]]"]
    )


def test_a_run_measures_with_the_built_in_phases_and_the_users_gate(project):
    result = project.runpytest("-m", "agentic", "-k", "cold or warm or mine", "--asiai-json=r.json", "-v")
    result.assert_outcomes(passed=4, deselected=result.parseoutcomes()["deselected"])  # cold-prefix matches too
    result.stdout.fnmatch_lines(["test_agentic.py::test_phase[[]scripted-m-mtp_off-warm[]] PASSED*"])
    assert (project.path / "r.json").exists()


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        (("--asiai-suites=none",), {"test_mine.py"}),
        (("--asiai-suites=gates",), {"test_mine.py", "test_gates.py"}),
        (("-o", "asiai_suites=agentic"), {"test_mine.py", "test_agentic.py"}),
        (("test_mine.py",), {"test_mine.py"}),  # paths named: only those
        (("test_mine.py", "--asiai-suites=agentic"), {"test_mine.py", "test_agentic.py"}),
    ],
)
def test_choosing_the_built_in_suites(project, how, expected):
    result = project.runpytest("-m", "agentic", "--collect-only", "-q", *how)
    assert collected_files(result) == expected


def test_environment_choice(project, monkeypatch):
    monkeypatch.setenv("ASIAI_SUITES", "none")
    assert collected_files(project.runpytest("--collect-only", "-q")) == {"test_mine.py"}


def test_a_project_copy_of_a_suite_replaces_the_built_in_one(project):
    source = Path(suites_dir() or "") / "test_agentic.py"
    project.mkpydir("bench").joinpath("test_agentic.py").write_text(source.read_text(encoding="utf-8"))
    result = project.runpytest("-m", "agentic", "--collect-only", "-q", "-k", "cold and not prefix and test_phase")
    assert [line for line in result.stdout.lines if "::" in line] == [
        "bench/test_agentic.py::test_phase[scripted-m-mtp_off-cold]"
    ]


def test_without_an_engine_matrix_nothing_is_added(pytester, monkeypatch):
    """Having the plugin installed must not break a project's unrelated test runs."""
    monkeypatch.delenv("ASIAI_SUITES", raising=False)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_an_unknown_suite_is_a_one_line_usage_error(project):
    result = project.runpytest_subprocess("--asiai-suites=agentic,bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        "ERROR: --asiai-suites: unknown suite 'bogus' (expected auto, all, none or some of "
        "agentic, gates, regression, burst, toolcall, endurance)"
    ]

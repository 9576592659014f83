"""A path option written with a space is a one-line usage error when pytest would misread it
(pytest_asiai/config/pathargs.py, pytest-dev/pytest#8846)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_asiai.config.pathargs import PATH_OPTIONS, misread

DATA = Path(__file__).parent / "data" / "asiai-agentic-v1"


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """Recorded results in a directory outside the project."""
    path = tmp_path_factory.mktemp("results")
    for recording in sorted(DATA.glob("*.json"))[:1]:
        (path / recording.name).write_bytes(recording.read_bytes())
    return path


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """testpaths = bench; a broken tree beside it that only a misplaced rootdir would collect."""
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["bench"]\n')
    pytester.mkdir("bench").joinpath("test_ok.py").write_text("def test_ok():\n    pass\n")
    pytester.mkdir("other").joinpath("test_broken.py").write_text("import not_a_module\n")
    return pytester


@pytest.mark.parametrize("option", PATH_OPTIONS)
def test_an_existing_path_outside_the_project_after_a_space_is_misread(option, outside, tmp_path):
    assert misread(["-m", "agentic", option, str(outside)], tmp_path) == (option, str(outside))


@pytest.mark.parametrize(
    "args",
    [
        ["--asiai-replay=/"],  # the = form is never misread
        ["--asiai-json", "reports/run.json"],  # inside the invocation directory
        ["--asiai-json", "/nonexistent/dir/run.json"],  # pytest ignores missing paths
        ["--asiai-engine", "/"],  # not a path option
    ],
)
def test_harmless_forms_pass(args, tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "run.json").write_text("{}")
    assert misread(args, tmp_path) is None


def test_replay_written_with_a_space_exits_4_with_the_fix(project, outside):
    result = project.runpytest_subprocess("-m", "agentic", "--asiai-replay", str(outside))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: --asiai-replay {outside}: pytest takes a path written after a space for a test path "
        f"(pytest-dev/pytest#8846); write --asiai-replay={outside}"
    ]
    assert "test_broken" not in result.stdout.str()


def test_the_equals_form_keeps_the_rootdir_and_testpaths(project, outside):
    result = project.runpytest_subprocess("--asiai-replay=" + str(outside))
    result.stdout.fnmatch_lines([f"rootdir: {project.path}*", "*1 passed*"])
    assert "test_broken" not in result.stdout.str()

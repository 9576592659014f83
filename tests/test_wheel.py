"""The built wheel, installed (not editable) into a fresh virtual environment, runs the built-in suites.

This is what a user gets from ``pip install pytest-asiai``: no repository, no ``suites/`` copy, only
an engines.toml in an empty directory. The wheel is built from this tree without build isolation
(setuptools comes with the ``test`` extra). Its dependencies are installed from a wheelhouse kept in
the engine cache (``$ASIAI_CACHE_DIR/wheelhouse``), filled from the package index the first time
only, so the environment costs seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from real_engine import REPO, cache_dir, engines_toml

from pytest_asiai.report.schema import schema_problem

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


#: The real run: seconds on a quiet machine, many minutes on a loaded one (real_engine.py's tests allow an hour).
TIMEOUT_S = 1800


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a command; fail the test with its output when it fails or times out."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S, **kwargs)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else str(exc.stdout)
        pytest.fail(f"{' '.join(args)} did not end within {TIMEOUT_S} s:\n{out[-3000:]}")
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # setuptools builds in the tree's build/ (gitignored); a module deleted since an earlier build would
    # otherwise still be copied from build/lib into the wheel.
    shutil.rmtree(REPO / "build" / "lib", ignore_errors=True)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)])
    (built,) = out.glob("pytest_asiai-*.whl")
    return built


def pip_install(python: Path, wheelhouse: Path, wheel: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index"]
    return subprocess.run([*args, "--find-links", str(wheelhouse), str(wheel)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh virtual environment holding the wheel and its dependencies; returns its bin directory."""
    env_dir = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    python = env_dir / "bin" / "python"
    wheelhouse = cache_dir() / "wheelhouse"
    if pip_install(python, wheelhouse, wheel).returncode != 0:
        run([sys.executable, "-m", "pip", "download", "-q", "-d", str(wheelhouse), str(wheel)])
        for own in wheelhouse.glob("pytest_asiai-*.whl"):
            own.unlink()
        installed = pip_install(python, wheelhouse, wheel)
        assert installed.returncode == 0, installed.stderr
    return env_dir / "bin"


def test_the_wheel_carries_every_module_and_the_suites(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {
        f"pytest_asiai/{p.relative_to(REPO / 'pytest_asiai').as_posix()}"
        for p in (REPO / "pytest_asiai").rglob("*")
        if p.suffix in (".py", ".json", ".typed") and "__pycache__" not in p.parts
    }
    suites = {f"pytest_asiai/suites/{p.name}" for p in (REPO / "suites").glob("*.py")}
    assert "pytest_asiai/suites/test_agentic.py" in suites
    assert source | suites <= names, f"missing from the wheel: {sorted((source | suites) - names)}"


def test_installed_wheel_runs_cold_and_warm_from_an_empty_directory(venv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ASIAI_SUITES", "PYTHONPATH", "PYTEST_ADDOPTS")}
    probe = "import pytest_asiai.suites as s; print(s.__file__)"
    where = run([str(venv / "python"), "-c", probe], cwd=tmp_path, env=env).stdout
    assert where.startswith(str(venv.parent)), f"the suites come from {where}, not the fresh environment"
    (tmp_path / "engines.toml").write_text(engines_toml(), encoding="utf-8")
    args = [str(venv / "pytest"), "-m", "agentic", "-k", "cold or warm", "-p", "no:cacheprovider", "-v"]
    proc = run([*args, "--asiai-json=report.json"], cwd=tmp_path, env=env)
    for phase in ("cold", "warm"):
        assert f"test_agentic.py::test_phase[llamacpp-smollm2-135m-mtp_off-{phase}] PASSED" in proc.stdout
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert schema_problem(report) is None
    (case,) = report["cases"]
    assert case["phases"]["cold"]["runs"][0]["ok"] and case["phases"]["warm"]["runs"][0]["ok"]
    assert case["phases"]["warm"]["runs"][0]["cached_tokens"] > 0

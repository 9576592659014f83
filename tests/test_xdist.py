"""pytest-xdist: each engine's tests on one worker, in order; one report and one table, from the
controller; the same cases and tests as a serial run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from report_helpers import XDIST_MODES, copy_suite, engines_toml, load_valid, outcomes_by_case
from scripted_engine import Behaviour, ScriptedEngine

from pytest_asiai.runtime.distribute import ENGINE_SCHEDULING, choose_engine_scheduling, dist_chosen
from pytest_asiai.runtime.scheduling import scope_for


@pytest.fixture
def two_engines():
    """Two engines on two hosts (ports): two xdist groups that may run side by side."""
    with ScriptedEngine(Behaviour(decode_ms_per_token=2)) as a, ScriptedEngine(Behaviour(decode_ms_per_token=2)) as b:
        yield a, b


USER_TEST = """
def test_engine_answers(engine):
    assert engine.version == "b11434"
"""


def test_serial_n0_and_n2_agree_and_keep_each_engine_on_one_worker(pytester, two_engines):
    a, b = two_engines
    pytester.makefile(".toml", engines=engines_toml(("alpha", a.base_url), ("beta", b.base_url)))
    copy_suite(pytester.path, "test_agentic.py")
    pytester.makepyfile(test_user=USER_TEST)
    reports = {}
    for mode, args in XDIST_MODES.items():
        result = pytester.runpytest(
            "-m", "agentic or not agentic", "-k", "cold or warm or answers", f"--asiai-json={mode}.json", "-v", *args
        )
        assert result.ret == 0, result.stdout.str()
        assert result.stdout.str().count("asiai results") == 1, "only the controller prints the table"
        if mode == "n2":
            result.stdout.fnmatch_lines(["scheduling tests via EngineGroupScheduling"])
        reports[mode] = load_valid(pytester.path / f"{mode}.json")
    serial = outcomes_by_case(reports["serial"])
    assert set(serial) == {"alpha-m-mtp_off", "beta-m-mtp_off"}
    for mode in ("n0", "n2"):
        assert {k: sorted(v) for k, v in outcomes_by_case(reports[mode]).items()} == {
            k: sorted(v) for k, v in serial.items()
        }, mode
    for case in reports["n2"]["cases"]:
        workers = {t["worker"] for t in case["tests"]}
        assert len(workers) == 1 and workers <= {"gw0", "gw1"}, case["tests"]
        phases = [t["name"].rsplit("-", 1)[1].rstrip("]") for t in case["tests"] if t["name"].startswith("test_phase")]
        assert phases[:2] == ["cold", "warm"], "one engine's phases run in protocol order"
        assert all("@" not in t["nodeid"] for t in case["tests"])
        assert case["phases"]["warm"]["runs"][0]["cached_tokens"] > 0, "warm ran after cold on the same engine"
    # Each engine was measured once per run: no worker repeated another's phases.
    assert len(a.requests) == len(b.requests)


def _config(args, numprocesses=2, dist="no"):
    option = SimpleNamespace(numprocesses=numprocesses, dist=dist)
    return SimpleNamespace(
        option=option, invocation_params=SimpleNamespace(args=tuple(args)), getini=lambda name: [], stash=pytest.Stash()
    )


def test_engine_scheduling_becomes_the_default_under_n_but_a_chosen_mode_wins(monkeypatch):
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    config = _config(["-n", "2"])
    assert choose_engine_scheduling(config) and config.option.dist == "load" and config.stash[ENGINE_SCHEDULING]
    already_load = _config(["-n", "2"], dist="load")  # xdist's own hook ran first
    assert choose_engine_scheduling(already_load) and already_load.stash[ENGINE_SCHEDULING]
    chosen = _config(["-n", "2", "--dist", "load"], dist="load")
    assert not choose_engine_scheduling(chosen) and ENGINE_SCHEDULING not in chosen.stash
    assert not choose_engine_scheduling(_config([], numprocesses=0))
    monkeypatch.setenv("PYTEST_ADDOPTS", "--dist=worksteal")
    assert not choose_engine_scheduling(_config(["-n", "2"]))
    assert dist_chosen(["-d"]) and dist_chosen(["--dist=each"]) and not dist_chosen(["--distribution"])


def test_a_test_is_scheduled_with_its_engine_host_whatever_its_node_id_looks_like():
    hosts = {"alpha-m-mtp_off": "local", "beta-m-mtp_on": "local", "mac-1-q-mtp_off": "mac-1.local"}
    assert scope_for("test_agentic.py::test_phase[alpha-m-mtp_off-cold]", hosts) == "asiai-host:local"
    assert scope_for("test_agentic.py::test_phase[beta-m-mtp_on-warm]@local", hosts) == "asiai-host:local"
    assert scope_for("suites/test_gates.py::test_gate[mac-1-q-mtp_off-ttft]", hosts) == "asiai-host:mac-1.local"
    assert scope_for("test_user.py::test_engine_answers[alpha-m-mtp_off]", hosts) == "asiai-host:local"
    # A test without a case is its own unit (xdist's ``load`` behaviour), suffix or not.
    assert scope_for("test_misc.py::test_other[3]@g", hosts) == "test_misc.py::test_other[3]"
    assert scope_for("test_misc.py::test_plain", hosts) == "test_misc.py::test_plain"

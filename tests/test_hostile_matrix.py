"""Hostile engines.toml files (issue 14 items 1, 5, 7, 8): one-line usage errors, never a run that lies.

Each test here failed on the code before the fix it covers: a case-id collision silently measured
one engine twice, values ``validate`` accepted crashed or misbehaved at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_asiai.config.matrix import MatrixError, load_matrix, select_cases


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engines.toml"
    path.write_text(text, encoding="utf-8")
    return path


def remote(name: str, model: str, url: str = "http://127.0.0.1:1/v1", extra: str = "") -> str:
    return f'[[engines]]\nname = "{name}"\nbase_url = "{url}"\n{extra}[[engines.models]]\nname = "{model}"\n'


def managed(extra: str = "", command: str = '["srv", "--port", "{port}"]', model_extra: str = "") -> str:
    return (
        f'[[engines]]\nname = "m"\n[engines.managed]\ncommand = {command}\n{extra}'
        f'[[engines.models]]\nname = "x"\n{model_extra}'
    )


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(MatrixError) as info:
        load_matrix(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "engines.toml") in message
    return message


# -- item 1: two engines never collapse into one case ------------------------------------------------


def test_case_id_collision_is_an_error_naming_both_engines(tmp_path):
    message = error_of(tmp_path, remote("a-b", "c") + remote("a", "b-c"))
    assert "a-b-c-mtp_off" in message
    assert "'a-b'" in message and "'a'" in message


def test_distinct_ids_still_load(tmp_path):
    cases = load_matrix(write(tmp_path, remote("a-b", "c") + remote("a", "d")))
    assert [c.id for c in cases] == ["a-b-c-mtp_off", "a-d-mtp_off"]


# -- item 5: managed engines bind to loopback ----------------------------------------------------------


def test_managed_engine_on_all_interfaces_is_refused(tmp_path):
    message = error_of(tmp_path, managed('host = "0.0.0.0"\n'))
    assert "engines[0].managed.host" in message and "expose = true" in message


def test_managed_engine_exposed_on_purpose_is_reported(tmp_path):
    (case,) = load_matrix(write(tmp_path, managed('host = "0.0.0.0"\nexpose = true\n')))
    assert case.managed is not None and case.managed.host == "0.0.0.0"
    assert case.describe()["exposed"] == "0.0.0.0"


def test_managed_engine_on_loopback_is_not_exposed(tmp_path):
    (case,) = load_matrix(write(tmp_path, managed('host = "::1"\n')))
    assert case.describe()["exposed"] is None


# -- item 7: filters that match nothing ----------------------------------------------------------------


def test_filter_matching_nothing_names_it_and_the_choices(tmp_path):
    cases = load_matrix(write(tmp_path, remote("alpha", "m1") + remote("beta", "m2")))
    with pytest.raises(MatrixError, match=r"--asiai-engine 'zzz' matches no case \(engines: alpha, beta\)"):
        select_cases(cases, ["zzz"], [], [])
    with pytest.raises(MatrixError, match=r"--asiai-model 'nope' matches no case \(models: m1, m2\)"):
        select_cases(cases, [], ["nope"], [])
    with pytest.raises(MatrixError, match=r"--asiai-mtp 'on' matches no case \(mtp: off\)"):
        select_cases(cases, [], [], ["on"])


def test_filters_that_exclude_each_other_are_an_error(tmp_path):
    cases = load_matrix(write(tmp_path, remote("alpha", "m1") + remote("beta", "m2")))
    with pytest.raises(MatrixError, match="together match no case"):
        select_cases(cases, ["alpha"], ["m2"], [])
    assert [c.id for c in select_cases(cases, ["beta"], [], [])] == ["beta-m2-mtp_off"]


# -- item 8: accepted by validate, broken at run time -----------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:abc", "port"),
        ("http://127.0.0.1:99999/v1", "port"),
        ("http://127.0.0.1 :8080", "space"),
        ("http://", "no host"),
        ("http:///v1", "no host"),
    ],
)
def test_bad_base_url_is_a_usage_error(tmp_path, url, problem):
    message = error_of(tmp_path, remote("e", "m", url=url))
    assert "engines[0].base_url" in message and problem in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (remote("e", "m", extra="deadline_s = inf\n"), "engines[0].deadline_s"),
        (remote("e", "m", extra="deadline_s = nan\n"), "engines[0].deadline_s"),
        (remote("e", "m", extra="connect_timeout_s = inf\n"), "engines[0].connect_timeout_s"),
        (managed("startup_timeout_s = inf\n"), "engines[0].managed.startup_timeout_s"),
        ("gates = { ttft = nan }\n" + remote("e", "m"), "gates.ttft"),
        (remote("e", "m", extra="gates = { ttft = -inf }\n"), "engines[0].gates.ttft"),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path, text, key):
    message = error_of(tmp_path, text)
    assert key in message and "finite" in message


def test_health_path_needs_a_leading_slash(tmp_path):
    message = error_of(tmp_path, managed('health_path = "health"\n'))
    assert "engines[0].managed.health_path" in message and "/" in message


def test_unknown_placeholder_is_refused(tmp_path):
    message = error_of(tmp_path, managed(command='["srv", "--port", "{prot}"]'))
    assert "engines[0].managed.command" in message and "{prot}" in message and "{port}" in message


def test_unset_variable_without_default_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("ASIAI_SURELY_UNSET", raising=False)
    message = error_of(tmp_path, managed(command='["srv", "--key", "${ASIAI_SURELY_UNSET}", "{port}"]'))
    assert "ASIAI_SURELY_UNSET" in message and "not set" in message
    monkeypatch.setenv("ASIAI_SURELY_UNSET", "v")
    (case,) = load_matrix(tmp_path / "engines.toml")
    assert case.managed is not None and "v" in case.managed.command


def test_unset_variable_with_default_still_works(tmp_path, monkeypatch):
    monkeypatch.delenv("ASIAI_SURELY_UNSET", raising=False)
    (case,) = load_matrix(write(tmp_path, managed(command='["srv", "${ASIAI_SURELY_UNSET:-dflt}", "{port}"]')))
    assert case.managed is not None and "dflt" in case.managed.command


def test_misspelt_gate_name_is_refused_with_a_suggestion(tmp_path):
    message = error_of(tmp_path, remote("e", "m", extra="gates = { tfft = 1 }\n"))
    assert "engines[0].gates.tfft" in message and "ttft" in message


def test_negative_threshold_is_refused(tmp_path):
    message = error_of(tmp_path, "gates = { ttft = -5 }\n" + remote("e", "m"))
    assert "gates.ttft" in message and "negative" in message


def test_known_suite_gates_are_accepted(tmp_path):
    text = remote("e", "m", extra="gates = { burst_p95_ms = 100, endurance_clean_pct = 90, toolcall_clean = false }\n")
    (case,) = load_matrix(write(tmp_path, text))
    assert case.gates["burst_p95_ms"] == 100


def test_a_bom_is_accepted(tmp_path):
    path = tmp_path / "engines.toml"
    path.write_bytes(b"\xef\xbb\xbf" + remote("e", "m").encode())
    assert [c.id for c in load_matrix(path)] == ["e-m-mtp_off"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_fifo_is_refused_without_reading(tmp_path):
    path = tmp_path / "engines.toml"
    os.mkfifo(path)
    with pytest.raises(MatrixError, match="not a regular file"):
        load_matrix(path)


def test_deeply_nested_array_is_a_one_line_error(tmp_path):
    depth = 50_000
    message = error_of(tmp_path, "x = " + "[" * depth + "]" * depth + "\n" + remote("e", "m"))
    assert "nested too deeply" in message

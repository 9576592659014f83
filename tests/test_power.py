"""Power (pytest_asiai/measure/power.py): the parsers on recorded backend output, the decode-window
arithmetic, asiai's recorded fields on replay, and "not measured" (null, never 0) off macOS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_helpers import copy_suite, engines_toml, load_valid
from scripted_engine import Behaviour

from pytest_asiai.measure import power, power_backends
from pytest_asiai.measure.power import FIELDS, EnergySeries, PowerSampler, recorded_power, request_power
from pytest_asiai.measure.power_backends import Joules, ioreport_joules, parse_ioreport_dump, parse_powermetrics
from pytest_asiai.wire.records import RequestRecord

DATA = Path(__file__).parent / "data" / "power"
SEED = Path(__file__).parent / "data" / "seed001"


# ----------------------------------------------------------------------------- powermetrics


def test_powermetrics_text_gives_watts_and_joules_per_sample():
    samples = parse_powermetrics((DATA / "powermetrics-cpu-gpu-ane.txt").read_text())
    assert [s.elapsed_s for s in samples] == [0.20045, 0.1998]
    first = samples[0]
    assert first.watts == {"CPU": 4.521, "GPU": 38.21, "ANE": 0.0, "Combined": 42.731}
    joules = first.joules()
    assert joules is not None
    assert joules.soc == pytest.approx(42.731 * 0.20045) and joules.gpu == pytest.approx(38.21 * 0.20045)


def test_powermetrics_without_a_combined_line_sums_what_it_printed():
    (sample,) = parse_powermetrics((DATA / "powermetrics-cpu-only.txt").read_text())
    joules = sample.joules()
    assert joules is not None and joules.soc == pytest.approx(1.234 * 1.00412) and joules.gpu is None
    assert parse_powermetrics("no sample header here\nCPU Power: 5 mW\n") == []


# ----------------------------------------------------------------------------- IOReport


def test_ioreport_dump_follows_asiais_channel_mapping():
    (t0, first), (t1, second) = parse_ioreport_dump((DATA / "ioreport-energy-model.txt").read_text())
    assert (t0, t1) == (1780473600.0, 1780473600.2)
    # GPU (mJ) wins over GPU Energy (nJ); EACC_CPU0 and the CPU Stats group do not count.
    assert first == Joules(soc=pytest.approx(0.905 + 7.642 + 0.0 + 0.412 + 0.238), gpu=pytest.approx(7.642))
    # Without GPU, GPU Energy (nJ) is the GPU; ANE0 in uJ counts; a channel in W (unknown unit) is skipped.
    assert second == Joules(soc=pytest.approx(0.811 + 8.01 + 0.0015 + 0.43 + 0.241), gpu=pytest.approx(8.01))


def test_ioreport_without_energy_channels_is_not_measured_and_bad_lines_name_their_line():
    assert ioreport_joules([("CPU Stats", "CPU Energy", "mJ", 5.0)]) is None
    assert ioreport_joules([]) is None
    with pytest.raises(ValueError, match=r"line 2: expected 'group \| channel \| unit \| value'"):
        parse_ioreport_dump("t=1.0\nEnergy Model | GPU | 12\n")


# ----------------------------------------------------------------------------- windows


def _record(ttft_ms: float, last_ms: float, tokens: int, started_at: float = 100.0) -> RequestRecord:
    return RequestRecord(
        started_at=started_at, status=200, ttft_ms=ttft_ms, last_token_ms=last_ms, completion_tokens=tokens
    )


def _series(points: list[tuple[float, float]]) -> EnergySeries:
    """A series from (time, watts over the interval ending then) pairs, starting at t=100."""
    series, prev = EnergySeries(), 100.0
    series.start(prev)
    for t, watts in points:
        series.add(t, Joules(watts * (t - prev), 0.8 * watts * (t - prev)))
        prev = t
    return series


def test_energy_windows_interpolate_and_are_none_outside_the_series():
    series = _series([(101.0, 10.0), (103.0, 40.0)])
    assert series.energy(100.5, 102.0) == Joules(pytest.approx(5.0 + 40.0), pytest.approx(0.8 * 45.0))
    assert series.energy(99.0, 101.0) is None and series.energy(102.0, 104.0) is None
    assert series.energy(102.0, 102.0) is None


def test_request_power_splits_prefill_and_decode_windows():
    """Prefill at 10 W for 1 s, decode at 40 W for 2 s, 81 tokens: asiai's formulas on exact windows."""
    series = _series([(101.0, 10.0), (103.5, 40.0)])
    fields = request_power(_record(ttft_ms=1000.0, last_ms=3000.0, tokens=81), series)
    assert fields == {
        "soc_watts": 40.0,
        "gpu_watts": 32.0,
        "prefill_watts": 10.0,
        "tok_s_per_soc_watt": 1.0,  # 80 tokens / 2 s / 40 W
        "energy_per_token_j": 1.0,  # 80 J / 80 tokens
    }


def test_request_power_outside_the_series_or_without_tokens_is_not_measured():
    series = _series([(101.0, 10.0)])
    assert request_power(_record(500.0, 3000.0, 50), series) == {
        **dict.fromkeys(FIELDS),
        "prefill_watts": 10.0,
    }
    assert set(request_power(_record(500.0, 500.0, 1), series).values()) == {None, 10.0}
    failed = RequestRecord(started_at=100.0, status=500, error="boom", error_kind="http")
    assert request_power(failed, series) == dict.fromkeys(FIELDS)


class _Recorded:
    """A backend that plays back recorded powermetrics samples, one per read."""

    source = "powermetrics (recorded)"

    def __init__(self, text: str) -> None:
        self.joules = [s.joules() for s in parse_powermetrics(text)]

    def read(self) -> Joules | None:
        return self.joules.pop(0) if self.joules else None

    def close(self) -> None:
        return None


def test_sampler_on_recorded_powermetrics_output_gives_a_requests_watts():
    clock = iter([100.2, 100.4])
    sampler = PowerSampler(_Recorded((DATA / "powermetrics-cpu-gpu-ane.txt").read_text()), clock=lambda: next(clock))
    sampler.series.start(100.0)
    sampler.sample()
    sampler.sample()
    sampler.sample()  # no third sample recorded: nothing added, no error
    assert len(sampler.series) == 3 and sampler.error is None
    fields = request_power(_record(ttft_ms=100.0, last_ms=300.0, tokens=9), sampler.series)
    assert fields["soc_watts"] == pytest.approx((42.731 * 0.20045 / 0.2 + 44.1 * 0.1998 / 0.2) / 2, abs=0.01)


# ----------------------------------------------------------------------------- replay and off macOS


def test_asiai_recorded_power_replays_into_the_same_fields():
    doc = json.loads((SEED / "09-m5-mlxlm-qwopus3.6-27b-mlx-4bit.json").read_text())
    block = recorded_power(doc["runs"])
    assert block["source"] == "recorded by asiai (IOReport)" and block["reason"] is None
    warm = block["phases"]["warm"]
    assert warm["tok_s_per_soc_watt"] == 0.461 and warm["soc_watts"] == 63.34 and warm["requests"] == 5
    unpowered = json.loads((SEED / "12-m5-mlx_vlm-qwen3.6-27b-mlx-4bit-mtp.json").read_text())
    none = recorded_power(unpowered["runs"])
    assert none["source"] is None and "not recorded" in none["reason"]
    assert all(v is None for p in none["phases"].values() for k, v in p.items() if k in FIELDS)


def test_no_backend_off_macos_and_every_field_is_null():
    backend, reason = power_backends.open_backend("auto", system="Linux")
    assert backend is None and "only on macOS (this is Linux)" in reason
    assert power_backends.open_backend("off", system="Darwin") == (
        None,
        "power not measured: turned off (--asiai-power or ASIAI_POWER)",
    )
    block = power.live_summary({"warm": [_record(50.0, 500.0, 10)]}, None, reason)
    assert block["source"] is None and block["reason"] == reason
    assert {k: block["phases"]["warm"][k] for k in FIELDS} == dict.fromkeys(FIELDS)
    with pytest.raises(ValueError, match="ASIAI_POWER='sudo'"):
        power_backends.mode_from_env({"ASIAI_POWER": "sudo"})


def test_live_run_on_linux_reports_power_null_never_zero(pytester, scripted_engine):
    """A real plugin run here (Linux): the report's power block exists, says why, and is all null."""
    scripted_engine.behaviour = Behaviour(decode_ms_per_token=1)
    pytester.makefile(".toml", engines=engines_toml(("scripted", scripted_engine.base_url)))
    copy_suite(pytester.path, "test_agentic.py")
    result = pytester.runpytest("-m", "agentic", "-k", "cold or warm", "--asiai-json=r.json")
    assert result.ret == pytest.ExitCode.OK
    (case,) = load_valid(pytester.path / "r.json")["cases"]
    block = case["results"]["probes"]["power"]
    assert block["source"] is None and "only on macOS" in block["reason"]
    assert {"cold", "warm"} <= set(block["phases"])
    values = [p[k] for p in block["phases"].values() for k in FIELDS]
    assert values and all(v is None for v in values)
    assert "—" in result.stdout.str()  # the t/s/W cell reads "not measured"


def test_a_bad_power_mode_is_a_usage_error(pytester, monkeypatch):
    monkeypatch.setenv("ASIAI_POWER", "sudo")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ASIAI_POWER='sudo': expected one of auto, ioreport, powermetrics, off*"])


@given(
    watts=st.lists(st.floats(min_value=0.0, max_value=200.0), min_size=2, max_size=20),
    cuts=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=3, max_size=3),
)
def test_window_energy_is_additive_and_bounded_by_the_series(watts, cuts):
    """Energy over [a, b] + [b, c] is energy over [a, c], and never exceeds max watts × duration."""
    series = _series([(100.0 + 0.25 * (i + 1), w) for i, w in enumerate(watts)])
    end = 100.0 + 0.25 * len(watts)
    a, b, c = sorted(100.0 + x * (end - 100.0) for x in cuts)
    if not a < b < c:
        return
    left, right, whole = series.energy(a, b), series.energy(b, c), series.energy(a, c)
    assert left is not None and right is not None and whole is not None
    assert left.soc + right.soc == pytest.approx(whole.soc, abs=1e-6)
    assert -1e-9 <= whole.soc <= max(watts) * (c - a) + 1e-6

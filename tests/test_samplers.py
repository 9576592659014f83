"""psutil samplers against real processes: the engine found by its port, its tree, RSS and swap samples,
SOLO and duplicate detection by command words, and "not measured" for what is not local."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from pytest_asiai.measure import samplers, solo
from pytest_asiai.measure.locator import EngineLocator
from pytest_asiai.measure.samplers import CaseSampler, LiveSamplers, RecordedSamplers, SamplerRegistry
from pytest_asiai.measure.solo import classify

LISTENER = """
import socket, subprocess, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(s.getsockname()[1], child.pid, flush=True)
time.sleep(60)
"""


@dataclass
class Source:
    """A stand-in for an engine handle: what the locator reads."""

    base_url: str | None = None
    pid: int | None = None
    kind: str = "llamacpp"
    family: object = None


@pytest.fixture
def listener() -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """A local process listening on a free port, with one child: a tiny fake engine."""
    proc = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port, child = (int(x) for x in proc.stdout.readline().split())
    yield proc, port, child
    for pid in (child, proc.pid):
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(5)


@pytest.fixture
def fake_llama(tmp_path: Path) -> Iterator[psutil.Process]:
    """A process whose program name is ``llama-server`` (a symlinked Python that just sleeps)."""
    exe = tmp_path / "llama-server"
    exe.symlink_to(sys.executable)
    proc = subprocess.Popen([str(exe), "-c", "import time; time.sleep(60)"])
    yield psutil.Process(proc.pid)
    proc.kill()
    proc.wait(5)


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["/opt/bin/llama-server", "-m", "x.gguf"], "llamacpp"),
        (["cmake", "--build", "b", "--target", "llama-server"], None),
        (["/usr/bin/llama-server-turboquant", "--port", "1"], "turboquant"),
        (["/usr/bin/python3.11", "-m", "mlx_lm", "server", "--model", "m"], "mlxlm"),
        (["ollama", "serve"], "ollama"),
        (["ollama", "list"], None),
        (["/Applications/LM Studio.app/Contents/MacOS/LM Studio"], "lmstudio"),
        (["/bin/bash", "-c", "llama-server -m x"], None),
    ],
)
def test_classify_matches_leading_command_words(argv, kind):
    assert classify(argv, "", solo.known_patterns()) == kind


def test_own_patterns_come_from_the_family_else_asiai_table():
    class Fam:
        process_patterns = (("my-engine", "serve"),)

    assert solo.patterns_for("whatever", Fam()) == (("my-engine", "serve"),)
    assert solo.patterns_for("vllm-mlx") == (("vllm-mlx",),)
    assert solo.patterns_for("unknown-kind") == ()


def test_locator_finds_the_listener_and_its_tree(listener):
    proc, port, child = listener
    locator = EngineLocator(Source(f"http://127.0.0.1:{port}/v1"))
    pids = [p.pid for p in locator.processes()]
    assert pids[0] == proc.pid and child in pids
    assert locator.port == port


def test_locator_waits_for_a_start_and_reports_remote_engines():
    pending = EngineLocator(Source(None))
    assert pending.processes() == [] and "not started" in pending.reason
    remote = EngineLocator(Source("http://192.0.2.7:8080"))
    assert remote.processes() == [] and remote.reason.startswith("remote engine at 192.0.2.7")
    nobody = EngineLocator(Source("http://127.0.0.1:9"))
    assert nobody.processes() == [] and nobody.reason == "no process found listening on port 9"


def test_sampler_samples_at_start_then_in_the_background(listener):
    _, port, child = listener
    sampler = CaseSampler(EngineLocator(Source(f"http://127.0.0.1:{port}")), interval_s=0.05).start()
    try:
        first = sampler.engine_memory().value
        assert first is not None and first["samples"] == 1  # the baseline is taken synchronously
        deadline = time.monotonic() + 5
        while sampler.engine_memory().value["samples"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sampler.stop()
    memory = sampler.engine_memory().value
    assert memory["samples"] >= 3 and child in memory["pids"]
    expected = sum(psutil.Process(pid).memory_info().rss for pid in memory["pids"])
    assert 0.5 * expected / samplers.MB < memory["rss_peak_mb"] < 2 * expected / samplers.MB
    swap = sampler.swap().value
    assert swap["growth_mb"] >= 0 and swap["swapouts_delta"] >= 0 and swap["baseline_mb"] is not None
    assert sampler.interval_s <= 1.0


def test_engine_memory_not_measured_before_the_engine_exists():
    sampler = CaseSampler(EngineLocator(Source(None)), interval_s=0.5).start()
    sampler.stop()
    assert sampler.engine_memory().value is None and "not started" in sampler.engine_memory().reason
    assert sampler.swap().value is not None  # swap is the machine's: measured anyway


def test_interval_must_be_at_most_a_second():
    with pytest.raises(ValueError, match="interval"):
        CaseSampler(EngineLocator(Source(None)), interval_s=2.0)


def test_process_snapshot_sees_duplicates_and_other_engines(listener, fake_llama):
    proc, port, _ = listener
    locator = EngineLocator(Source(f"http://127.0.0.1:{port}"))
    sampler = CaseSampler(locator, interval_s=0.5)
    as_llama = LiveSamplers(sampler, Source(kind="llamacpp")).processes().value
    assert fake_llama.pid in [d["pid"] for d in as_llama["duplicates"]]
    assert proc.pid not in [d["pid"] for d in as_llama["duplicates"] + as_llama["others"]]
    as_ollama = LiveSamplers(sampler, Source(kind="ollama")).processes().value
    assert {"pid": fake_llama.pid, "engine": "llamacpp"}.items() <= next(
        o for o in as_ollama["others"] if o["pid"] == fake_llama.pid
    ).items()


def test_processes_not_measured_for_a_remote_engine():
    view = LiveSamplers(CaseSampler(EngineLocator(Source("http://192.0.2.7:8080"))), Source())
    reading = view.processes()
    assert reading.value is None and "remote engine" in reading.reason


def test_registry_publishes_only_changes(listener):
    _, port, _ = listener
    registry = SamplerRegistry(interval_s=1.0)
    registry.start("c", Source(f"http://127.0.0.1:{port}"))
    registry.stop_all()
    published: list[tuple[str, str]] = []
    record = lambda case_id, section, key, value: published.append((section, key))  # noqa: E731
    registry.publish("c", record)
    registry.publish("c", record)
    assert published == [("probes", "swap"), ("probes", "engine")]
    registry.publish("unknown", record)
    assert len(published) == 2


def test_recorded_samplers_say_why_a_reading_is_missing():
    view = RecordedSamplers({"swap": {"growth_mb": 1.0}, "engine": "never sampled"}, "f.json")
    assert view.swap().value == {"growth_mb": 1.0}
    assert view.engine_memory().reason == "never sampled in f.json"
    assert view.processes().reason == "engine processes not recorded in f.json"


# ----------------------------------------------------------------------------- memory per phase


@dataclass
class Req:
    started_at: float
    total_ms: float | None


def test_each_phase_gets_its_requests_rss_peak_and_the_warm_steady_value():
    """A request's window runs from its start to one interval after its end, so a request shorter
    than the sampling interval still gets the sample taken just after it."""
    mb = samplers.MB
    series = [(10.0, 100 * mb), (10.4, 900 * mb), (11.0, 300 * mb), (20.1, 700 * mb), (30.0, 5000 * mb)]
    peaks = {
        "cold": samplers.run_peaks(series, [Req(10.0, 800.0)], interval_s=0.5),
        "warm": samplers.run_peaks(series, [Req(20.0, 50.0), Req(25.0, 10.0)], interval_s=0.5),
    }
    assert peaks == {"cold": [900.0], "warm": [700.0, None]}
    block = samplers.memory_by_phase(peaks)
    assert block["phases"]["cold"] == {"rss_peak_mb": 900.0, "requests": 1, "measured": 1}
    assert block["phases"]["warm"] == {"rss_peak_mb": 700.0, "requests": 2, "measured": 1}
    assert block["rss_warm_mb"] == 700.0
    assert samplers.memory_by_phase({"cold": [None]}) == {
        "phases": {"cold": {"rss_peak_mb": None, "requests": 1, "measured": 0}},
        "rss_warm_mb": None,
    }


def test_asiai_rss_below_the_floor_is_not_a_reading():
    runs = [{"phase": "warm", "engine_rss_mb": 480.0}, {"phase": "warm", "engine_rss_mb": 14848.0}, {"phase": "x"}]
    assert samplers.recorded_memory_peaks(runs) == {"warm": [None, 14848.0], "x": [None]}


def test_replayed_mlx_lm_keeps_its_steady_value_beside_the_peak():
    """The seed's finding: mlx-lm sits at ~14.5 GB warm but peaks at 26.4 GB (long context)."""
    from pytest_asiai.agentic.replay import read_recordings

    (rec,) = read_recordings(Path(__file__).parent / "data" / "seed001" / "09-m5-mlxlm-qwopus3.6-27b-mlx-4bit.json")
    engine = rec.probes["engine"]
    assert isinstance(engine, dict)
    assert (engine["rss_peak_mb"], engine["rss_warm_mb"]) == (27033.6, 14848.0)
    assert engine["phases"]["long-context"]["rss_peak_mb"] == 27033.6
    assert engine["phases"]["warm"] == {"rss_peak_mb": 14848.0, "requests": 5, "measured": 5}


def test_registry_publishes_phase_memory_and_power_with_phases(listener):
    _, port, _ = listener
    registry = SamplerRegistry(interval_s=0.05)
    registry.start("c", Source(f"http://127.0.0.1:{port}"))
    time.sleep(0.2)
    registry.stop_all()
    published: dict[str, dict] = {}
    record = lambda case_id, section, key, value: published.__setitem__(key, value)  # noqa: E731
    first = registry.views["c"].sampler.rss_series()[0][0]
    registry.publish("c", record, {"warm": [Req(first, 100.0)]})
    assert published["engine"]["phases"]["warm"]["rss_peak_mb"] > 0
    assert published["engine"]["rss_warm_mb"] == published["engine"]["phases"]["warm"]["rss_peak_mb"]
    assert published["power"]["phases"]["warm"]["soc_watts"] is None  # Linux: not measured

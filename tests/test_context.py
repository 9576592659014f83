"""The per-case context (pytest_asiai/runtime/context.py) and the record sources behind ``agentic``.

Every fixture the plugin registers returns a part of one context per case, so a user's test, a
built-in suite and a gate see the same objects; a replayed case and a live one differ only in the
source their ``agentic`` object reads (pytest_asiai/agentic/results.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_asiai.agentic.protocol import PROFILES
from pytest_asiai.agentic.results import Agentic, Origin, PhaseResult, PhaseRun
from pytest_asiai.config.matrix import Case
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineManager
from pytest_asiai.gates.inputs import gather, samplers_of
from pytest_asiai.wire.records import RequestRecord

DATA = Path(__file__).parent / "data" / "asiai-agentic-v1"
RECORDING = DATA / "m5-llamacpp-27b-mtp.json"

SAME_CONTEXT = """
from pytest_asiai.config.stash import session_of
from pytest_asiai.endurance import endurance_fixture as endurance  # the earlier documented import


def test_every_fixture_is_part_of_one_context(asiai_context, engine, agentic, burst, endurance):
    assert engine is asiai_context.engine
    assert agentic is asiai_context.agentic
    assert burst is asiai_context.burst and burst.context is asiai_context
    assert endurance is asiai_context.endurance and endurance.context is asiai_context
    assert asiai_context.requests.model == asiai_context.case.model_id


def test_the_next_test_finds_the_same_context(request, asiai_context, agentic):
    assert session_of(request.config).context(asiai_context.case) is asiai_context
    assert agentic is asiai_context.agentic
    assert agentic.source_name == "m5-llamacpp-27b-mtp.json" and agentic.cold_method == "recorded"


def test_toolcall_skips_on_a_replayed_case(toolcall):
    raise AssertionError("a replayed case holds no tool-call conversation")
"""


def test_fixtures_share_one_context_per_case_on_a_replayed_case(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine=SAME_CONTEXT)
    result = pytester.runpytest("test_mine.py", "-rs", f"--asiai-replay={RECORDING}")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*toolcall: replayed case * holds no tool-call conversation*"])


LIVE_CONTEXT = """
def test_live_fixtures_share_the_context(asiai_context, engine, agentic, toolcall):
    assert engine is asiai_context.engine and agentic is asiai_context.agentic
    assert toolcall is asiai_context.toolcall and toolcall.context is asiai_context
    assert toolcall.client is asiai_context.client()  # one client per case and engine URL
    assert agentic.samplers is not None  # the live source's samplers started with it
    assert agentic.source_name == "this run" and agentic.thinking_off is True
"""


def test_fixtures_share_one_context_per_case_on_a_live_case(pytester: pytest.Pytester, scripted_engine: Any) -> None:
    toml = (
        f'profile = "smoke"\n[[engines]]\nname = "scripted"\nkind = "llamacpp"\n'
        f'base_url = "{scripted_engine.base_url}"\ndeadline_s = 20\n'
        '[[engines.models]]\nname = "m"\nthinking = "off"\n'
    )
    pytester.makefile(".toml", engines=toml)
    pytester.makepyfile(test_mine=LIVE_CONTEXT)
    result = pytester.runpytest("test_mine.py")
    result.assert_outcomes(passed=1)
    assert scripted_engine.requests == []  # asking for the objects sends nothing


class MemorySource:
    """A third record source: phases held in memory. The gates read it as they read the other two."""

    def __init__(self, handle: EngineHandle, phases: dict[str, PhaseResult]) -> None:
        self.handle = handle
        self.runs = 1
        self.profile = PROFILES["smoke"]
        self.phase_names = tuple(phases)
        self.planned = list(phases)
        self.results = phases
        self.primers: list[dict[str, Any]] = []
        self.origin = Origin("memory", frozenset({"text"}), thinking_off=None)
        self.samplers = None
        self.emit = print
        self.calibration = None
        self.cold_method = "none"

    def phase(self, name: str) -> PhaseResult:
        return self.results[name]

    def corpus(self) -> Any:
        raise RuntimeError("no prompts")

    def close(self) -> None:
        return None


def test_gate_inputs_come_from_the_source_not_its_type(tmp_path: Path) -> None:
    case = Case(engine="mem", model="m", mtp="off", kind="llamacpp", base_url="http://127.0.0.1:9")
    record = RequestRecord(started_at=0.0, status=200, ttft_ms=40.0, completion_tokens=8, content="hello")
    warm = PhaseResult("warm", [PhaseRun("warm", 0, 16, record)])
    agentic = Agentic(MemorySource(EngineHandle(case, EngineManager(tmp_path), lambda h: None), {"warm": warm}))
    inputs = gather(agentic, ["warm", "cold"], samplers_of(agentic))
    assert inputs.phases == {"warm": warm}
    assert inputs.missing["cold"].startswith("not part of this run")
    assert (inputs.source, inputs.unrecorded, inputs.thinking_off) == ("memory", frozenset({"text"}), None)
    assert samplers_of(agentic).swap().value is None  # no sampler watched this source: not measured

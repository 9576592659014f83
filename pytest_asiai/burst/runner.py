"""Burst mode: N simultaneous calls released together, per-call records, and a serialization verdict.

asiai's burst (docs/asiai-protocol.md §4) submits calls to a thread pool with no barrier (a 50 ms-1 s
dispatch spread), cuts a whole pass at one deadline, uses temperature 0.7, repeats the same prompts
in every pass, throws the per-call records away and leaves "is it serialized?" to the reader's eye.
Here every call of a burst is prepared first and released at once (:mod:`pytest_asiai.wire.dispatch`),
has its own deadline, runs at temperature 0 on the shared system prompt salted per pass (passes are
not replays of each other: llama-server's host-RAM cache would restore a repeated prompt), and every
call is kept in the report with its send time, first token, end, tokens, cached tokens and validity.

The analysis of each pass is pytest_asiai/burst/analysis.py, its serialization verdict
pytest_asiai/burst/serialization.py, the calls' prompts and records pytest_asiai/burst/calls.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_asiai.burst.analysis import analyse_pass, memory_of, summarize_passes
from pytest_asiai.burst.calls import USER_TEMPLATE, user_message
from pytest_asiai.config.matrix import Case
from pytest_asiai.measure.locator import EngineLocator
from pytest_asiai.measure.samplers import CaseSampler
from pytest_asiai.wire.client import Timeouts
from pytest_asiai.wire.dispatch import run_dispatch
from pytest_asiai.wire.requests import RequestBuilder

if TYPE_CHECKING:
    from pytest_asiai.config.options import Settings
    from pytest_asiai.engines.handle import EngineHandle
    from pytest_asiai.runtime.context import CaseContext

SECTION = "burst"

#: Burst sizes per prompt profile when neither the command line, engines.toml nor ini says.
DEFAULT_SIZES: dict[str, tuple[int, ...]] = {"full": (30, 60, 80), "smoke": (4, 8), "tiny": (2,)}
MAX_TOKENS = 200
"""asiai's ``--burst-max-tokens``; the smoke profile's smaller output budget wins when it is lower."""

# ----------------------------------------------------------------------------- sizes


def sizes_for(settings: Settings, case: Case) -> tuple[int, ...]:
    """The burst sizes of a case: command line, then engines.toml, then ini, then the profile's."""
    return (
        settings.burst_sizes_override
        or case.burst_sizes
        or settings.burst_sizes_default
        or DEFAULT_SIZES[settings.profile_for(case.profile)]
    )


def parametrization(settings: Settings, cases: Sequence[Case]) -> tuple[list[tuple[Case, int]], list[str]]:
    """Every (case, size) pair and its test id, e.g. ``llamacpp-smollm2-135m-mtp_off-n30``."""
    pairs = [(case, size) for case in cases for size in sizes_for(settings, case)]
    return pairs, [f"{case.id}-n{size}" for case, size in pairs]


# ----------------------------------------------------------------------------- the fixture's object


class Burst:
    """The ``burst`` fixture's object: one case's bursts, each size run once per session (all passes)."""

    PROBE_INTERVAL_S = 0.5

    def __init__(self, context: CaseContext) -> None:
        self.context = context
        self.case = context.case
        self.runs = context.settings.burst_runs
        self.sizes = sizes_for(context.settings, context.case)
        self.results: dict[int, dict[str, Any]] = {}
        self._salt = secrets.token_hex(4)

    def result(self, size: int) -> dict[str, Any]:
        """The burst of ``size`` calls (every pass), run now unless this session already ran it."""
        if self.case.replay is not None:
            pytest.skip(f"burst: replayed case {self.case.id} holds no burst results (bursts are measured live)")
        if size not in self.results:
            self.results[size] = self._run(size)
            self.context.record_result(SECTION, str(size), self.results[size])
        return self.results[size]

    def _run(self, size: int) -> dict[str, Any]:
        handle = self.context.engine
        base_url = handle.ensure_running()
        agentic = self.context.agentic
        # Measured first, one request alone on the idle engine: the rate a serialized engine can reach.
        single = agentic.phase("warm").decode_tok_s
        profile = agentic.profile
        max_tokens = min(MAX_TOKENS, profile.max_tokens)
        passes = []
        for index in range(self.runs):
            salt = f"{self._salt}-n{size}-p{index}"
            system = agentic.corpus().system("A", salt)
            requests = self.context.requests
            bodies = [self._body(requests, system, i, max_tokens) for i in range(size)]
            passes.append({"pass": index, "salt": salt, **self._pass(handle, base_url, bodies, single)})
        return {
            "size": size,
            "runs": self.runs,
            "profile": profile.name,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "prompt": {"system": "A, salted per pass", "user": USER_TEMPLATE},
            "dispatch": "connections opened before the release; all requests written in one loop at it",
            "single_stream_decode_tok_s": single,
            **summarize_passes(passes),
            "passes": passes,
        }

    def _pass(
        self, handle: EngineHandle, base_url: str, bodies: list[dict[str, Any]], single: float | None
    ) -> dict[str, Any]:
        probe = CaseSampler(EngineLocator(handle), self.PROBE_INTERVAL_S).start()
        try:
            burst = run_dispatch(base_url, bodies, api_key=self.case.api_key, timeouts=Timeouts.for_case(self.case))
        finally:
            probe.stop()
        return {**analyse_pass(burst, single), "memory": memory_of(probe)}

    @staticmethod
    def _body(requests: RequestBuilder, system: str, i: int, max_tokens: int) -> dict[str, Any]:
        """Call ``i``'s request: the shared salted system prompt and its own sum (pytest_asiai/wire/requests.py)."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user_message(i)}]
        return requests.body(messages, max_tokens=max_tokens)

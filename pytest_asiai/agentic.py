"""The ``agentic`` fixture's object: one case's measurements, taken lazily and exactly once.

Asking for a phase runs it, and every earlier phase it depends on, once per session per case, so
``-k warm`` still measures ``cold`` first and a user's gate test reuses the measurements of the
built-in phase tests. With ``--asiai-runs N`` the protocol is repeated N times, repeat by repeat
(the cache state of a phase depends on the phase just before it in the same repeat).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import metrics
from .client import StreamingClient, Timeouts
from .engine import EngineHandle
from .prompts import DEFAULT_TOKENS_PER_SEGMENT, Corpus, estimate_segments
from .protocol import PHASE_NAMES, PROFILES, Phase, Profile, phase
from .records import RequestRecord
from .serialize import record_to_dict


@dataclass(frozen=True, slots=True)
class PhaseRun:
    """One request of one phase in one repeat."""

    phase: str
    repeat: int
    max_tokens: int
    record: RequestRecord

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "repeat": self.repeat,
            "max_tokens": self.max_tokens,
            **record_to_dict(self.record),
        }


@dataclass(slots=True)
class PhaseResult:
    """Every request of one phase (one per repeat) and their statistics."""

    name: str
    runs: list[PhaseRun] = field(default_factory=list)

    @property
    def records(self) -> list[RequestRecord]:
        return [r.record for r in self.runs]

    @property
    def ok(self) -> bool:
        """True when the phase ran and none of its requests failed."""
        return bool(self.runs) and all(r.record.ok for r in self.runs)

    @property
    def failures(self) -> list[PhaseRun]:
        return [r for r in self.runs if not r.record.ok]

    @property
    def stats(self) -> dict[str, Mapping[str, float | int | None]]:
        return metrics.phase_stats(self.records)

    def median(self, metric: str) -> float | None:
        """Median of one metric over the successful requests (None when never measured)."""
        value = self.stats[metric]["median"]
        return None if value is None else float(value)

    @property
    def ttft_ms(self) -> float | None:
        return self.median("ttft_ms")

    @property
    def decode_tok_s(self) -> float | None:
        return self.median("decode_tok_s")

    @property
    def cached_tokens(self) -> float | None:
        return self.median("cached_tokens")

    @property
    def prompt_tokens(self) -> float | None:
        return self.median("prompt_tokens")

    def failure_message(self) -> str | None:
        """One line per failed request, with the engine's own message."""
        if not self.runs:
            return f"phase {self.name} sent no request"
        lines = [f"{self.name} repeat {r.repeat}: {r.record.error_kind}: {r.record.error}" for r in self.failures]
        return "\n".join(lines) or None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "runs": [r.to_dict() for r in self.runs], "stats": self.stats}


Emit = Callable[[dict[str, Any]], None]


class Agentic:
    """One case's protocol state: which phases ran, in which repeat, and their results."""

    def __init__(self, handle: EngineHandle, *, runs: int, profile: str, planned: Iterable[str], emit: Emit) -> None:
        self.handle = handle
        self.case = handle.case
        self.runs = runs
        self.profile: Profile = PROFILES[profile]
        self.planned = [p for p in PHASE_NAMES if p in set(planned)]
        self.results: dict[str, PhaseResult] = {}
        self.metrics: dict[str, Any] = {}
        self._emit = emit
        self._session_salt = secrets.token_hex(4)
        self._corpus: Corpus | None = None
        self._client: StreamingClient | None = None

    # -- public API used by tests -------------------------------------------------------------
    def phase(self, name: str) -> PhaseResult:
        """The result of ``name``, running it (and the phases before it) if not yet done."""
        target = phase(name).name
        if target not in self.results:
            last = max((PHASE_NAMES.index(p) for p in [*self.planned, target]), default=0)
            self._run_until(PHASE_NAMES[last])
        return self.results[target]

    def record_metric(self, name: str, value: float | int | str | bool | None) -> None:
        """Keep a value computed by a user's test; it lands in the report next to the gates."""
        self.metrics[name] = value
        self._emit({"type": "metric", "name": name, "value": value})

    @property
    def engine(self) -> EngineHandle:
        return self.handle

    # -- running -----------------------------------------------------------------------------
    def _run_until(self, last: str) -> None:
        todo = [p for p in PHASE_NAMES[: PHASE_NAMES.index(last) + 1] if p not in self.results]
        for repeat in range(self.runs):
            for name in todo:
                self._run_one(phase(name), repeat)
                # Emitted after every request: an interrupted run keeps what it measured.
                self._emit({"type": "phase", "phase": self.results[name].to_dict()})

    def _run_one(self, spec: Phase, repeat: int) -> None:
        result = self.results.setdefault(spec.name, PhaseResult(spec.name))
        max_tokens = self.profile.long_max_tokens if spec.long else self.profile.max_tokens
        body = self._body(spec, repeat, max_tokens)
        record = self._client_for().chat(body)
        result.runs.append(PhaseRun(spec.name, repeat, max_tokens, record))

    def _body(self, spec: Phase, repeat: int, max_tokens: int) -> dict[str, Any]:
        corpus = self.corpus()
        salt = f"{self._session_salt}-r{repeat}"
        body: dict[str, Any] = {
            "model": self.case.model_id,
            "messages": [
                {"role": "system", "content": corpus.system(spec.system, salt)},
                {"role": "user", "content": corpus.user(spec.user)},
            ],
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        if self.case.thinking is not None:
            body.update(self.handle.family.thinking_fields(self.case.thinking == "on"))
        body.update(self.case.request)
        return body

    def corpus(self) -> Corpus:
        """Prompt sizes for this case's profile (token calibration refines the estimate)."""
        if self._corpus is None:
            rate = DEFAULT_TOKENS_PER_SEGMENT
            self._corpus = Corpus(
                system_segments=estimate_segments(self.profile.system_tokens, rate),
                user_segments=estimate_segments(self.profile.user_tokens, rate),
                long_segments=estimate_segments(self.profile.long_tokens, rate),
            )
        return self._corpus

    def _client_for(self) -> StreamingClient:
        if self._client is None:
            base_url = self.handle.ensure_running()
            self._client = StreamingClient(
                base_url,
                api_key=self.case.api_key,
                timeouts=Timeouts(connect_s=self.case.connect_timeout_s, deadline_s=self.case.deadline_s),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def cold_method(self) -> str:
        """How cold phases are made cold: a unique salt per session and repeat."""
        return "salt"

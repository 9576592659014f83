"""The ``agentic`` fixture's object: one case's measurements, taken lazily and exactly once.

Asking for a phase runs it, and every earlier phase it depends on, once per session per case, so
``-k warm`` still measures ``cold`` first and a user's gate test reuses the measurements of the
built-in phase tests. With ``--asiai-runs N`` the protocol is repeated N times, repeat by repeat
(the cache state of a phase depends on the phase just before it in the same repeat). When a later
request extends a protocol that already ran (a user's test asks for a phase no selected test
planned), each repeat is first *primed* by resending its last request unmeasured, so the new phase
meets the cache state it was designed for.

Cold phases are cold in every repeat: a salt unique to the session, repeat and system prompt comes
first in the system prompt, the engine family's cache bypass is sent when it has one
(``cache_prompt: false`` on llama.cpp), and a managed engine restarted since the previous request
counts too; each cold run records which of ``salt``, ``request`` and ``restart`` applied.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from pytest_asiai.agentic.calibrate import Calibration, calibrate
from pytest_asiai.agentic.prompts import Corpus
from pytest_asiai.agentic.protocol import PHASE_NAMES, PROFILES, Phase, Profile, phase, phase_names_for
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineStartError
from pytest_asiai.measure import metrics
from pytest_asiai.wire.client import StreamingClient, Timeouts
from pytest_asiai.wire.records import RequestRecord
from pytest_asiai.wire.serialize import record_to_dict

#: Request keys the protocol sets itself; engines.toml ``request`` cannot override them (its schema
#: refuses them too). ``temperature`` (0.0) is a default that ``request`` may change.
PROTOCOL_KEYS = ("model", "messages", "max_tokens", "stream", "stream_options")
#: How a cold request was made cold, in report order (see EngineHandle.reset_cache).
COLD_METHODS = ("salt", "request", "endpoint", "unload", "restart")


@dataclass(frozen=True, slots=True)
class PhaseRun:
    """One request of one phase in one repeat."""

    phase: str
    repeat: int
    max_tokens: int
    record: RequestRecord
    cold_method: str | None = None
    """For cold phases: how this request was made cold, e.g. ``salt+request+restart``."""
    sent: Mapping[str, Any] = field(default_factory=dict)
    """Every request field except the messages (thinking and cold fields included)."""
    prompt: Mapping[str, str] = field(default_factory=dict)
    """Which texts were sent: ``system`` (A or B), ``user`` (X, Y, Z or L) and the ``salt``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "repeat": self.repeat,
            "max_tokens": self.max_tokens,
            "cold_method": self.cold_method,
            "sent": dict(self.sent),
            "prompt": dict(self.prompt),
            **record_to_dict(self.record),
        }


@dataclass(slots=True)
class PhaseResult:
    """Every request of one phase (one per repeat), their statistics, and why any repeat sent nothing."""

    name: str
    runs: list[PhaseRun] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Repeats that sent no request, and why (context too small, restart failed, engine down)."""
    description: str = ""
    context_note: str | None = None
    """For long phases: the context they need and the engine's, appended to request failures."""

    @property
    def records(self) -> list[RequestRecord]:
        return [r.record for r in self.runs]

    @property
    def ok(self) -> bool:
        """True when the phase ran and none of its requests failed."""
        return bool(self.runs) and not self.errors and all(r.record.ok for r in self.runs)

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
    def ttfc_ms(self) -> float | None:
        return self.median("ttfc_ms")

    @property
    def decode_tok_s(self) -> float | None:
        return self.median("decode_tok_s")

    @property
    def cached_tokens(self) -> float | None:
        return self.median("cached_tokens")

    @property
    def prompt_tokens(self) -> float | None:
        return self.median("prompt_tokens")

    @property
    def completion_tokens(self) -> float | None:
        return self.median("completion_tokens")

    def failure_message(self) -> str | None:
        """One line per failed request (with the engine's own message) or request not sent."""
        if not self.runs and not self.errors:
            return f"phase {self.name} sent no request"
        suffix = f" ({self.context_note})" if self.context_note else ""
        lines = [*self.errors]
        lines += [
            f"{self.name} repeat {r.repeat}: {r.record.error_kind}: {r.record.error}{suffix}" for r in self.failures
        ]
        return "\n".join(lines) or None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "runs": [r.to_dict() for r in self.runs],
            "errors": list(self.errors),
            "stats": self.stats,
        }


Emit = Callable[[dict[str, Any]], None]


class _NotSent(Exception):
    """A phase's request could not be sent in one repeat; the message says why."""


def merge_fields(body: dict[str, Any], fields: Mapping[str, Any]) -> None:
    """Add request fields; a dict value (``chat_template_kwargs``) is merged one level deep."""
    for key, value in fields.items():
        old = body.get(key)
        body[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, Mapping) else value


class Agentic:
    """One case's protocol state: which phases ran, in which repeat, and their results."""

    def __init__(self, handle: EngineHandle, *, runs: int, profile: str, planned: Iterable[str], emit: Emit) -> None:
        self.handle = handle
        self.case = handle.case
        self.runs = runs
        self.profile: Profile = PROFILES[profile]
        self.phase_names: tuple[str, ...] = phase_names_for(handle.managed)
        """The phases this case runs, in order (``restart-prefix`` only for a managed engine)."""
        wanted = set(planned)
        self.planned = [p for p in self.phase_names if p in wanted]
        self.results: dict[str, PhaseResult] = {}
        self.metrics: dict[str, Any] = {}
        self.primers: list[dict[str, Any]] = []
        """Unmeasured requests resent to restore a repeat's cache state (see the module docstring)."""
        self._emit = emit
        self._session_salt = secrets.token_hex(8)
        self._done: list[list[str]] = [[] for _ in range(runs)]
        self._bodies: dict[tuple[int, str], dict[str, Any]] = {}
        self._last_sent: tuple[int, str] | None = None
        self._last_pid: int | None = None
        self._calibration: Calibration | None = None
        self._client: StreamingClient | None = None
        self._client_url: str | None = None
        self._start_error: str | None = None

    # -- public API used by tests -------------------------------------------------------------
    def phase(self, name: str) -> PhaseResult:
        """The result of ``name``, running it (and the phases before it) if not yet done."""
        spec = phase(name)
        if spec.name not in self.phase_names:
            return self._not_applicable(spec)
        if not self._complete(spec.name):
            last = max(PHASE_NAMES.index(p) for p in [*self.planned, spec.name])
            self._run_until(PHASE_NAMES[last])
        return self.results[spec.name]

    def record_metric(self, name: str, value: float | int | str | bool | None) -> None:
        """Keep a value computed by a user's test; it lands in the report next to the gates."""
        self.metrics[name] = value
        self._emit({"type": "metric", "name": name, "value": value})

    @property
    def engine(self) -> EngineHandle:
        return self.handle

    @property
    def calibration(self) -> Calibration | None:
        """How the prompts were sized (None until the first phase ran)."""
        return self._calibration

    def corpus(self) -> Corpus:
        """The prompts of this case, sized for its profile on the engine's tokenizer."""
        return self._calibrated().corpus

    @property
    def cold_method(self) -> str:
        """How cold phases are made cold: the methods the cold runs used (planned ones before any ran)."""
        used = {m for r in self._cold_runs() for m in (r.cold_method or "").split("+") if m}
        if not used:
            used = {"salt", self.handle.family.cold_method}
        return "+".join(m for m in COLD_METHODS if m in used)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- running -----------------------------------------------------------------------------
    def _complete(self, name: str) -> bool:
        return all(name in done for done in self._done)

    def _not_applicable(self, spec: Phase) -> PhaseResult:
        if spec.name not in self.results:
            reason = (
                f"{spec.name}: not run: engine {self.case.engine!r} is not managed by pytest-asiai "
                f"(engines.toml gives a base_url), so it cannot be restarted"
            )
            self.results[spec.name] = PhaseResult(spec.name, errors=[reason], description=spec.description)
            self._emit({"type": "phase", "phase": self.results[spec.name].to_dict()})
        return self.results[spec.name]

    def _run_until(self, last: str) -> None:
        stop = PHASE_NAMES.index(last)
        names = [p for p in self.phase_names if PHASE_NAMES.index(p) <= stop]
        for repeat in range(self.runs):
            todo = [p for p in names if p not in self._done[repeat]]
            if not todo:
                continue
            self._prime(repeat)
            for name in todo:
                self._run_one(phase(name), repeat)

    def _run_one(self, spec: Phase, repeat: int) -> None:
        result = self.results.setdefault(spec.name, PhaseResult(spec.name, description=spec.description))
        try:
            self._send(spec, repeat, result)
        except _NotSent as exc:
            result.errors.append(f"{spec.name} repeat {repeat}: not sent: {exc}")
        self._done[repeat].append(spec.name)
        # Emitted after every request: an interrupted run keeps what it measured.
        self._emit({"type": "phase", "phase": result.to_dict()})
        if spec.cold:
            self._emit_settings()  # the case's cold method now includes what this run used

    def _send(self, spec: Phase, repeat: int, result: PhaseResult) -> None:
        if spec.restart:
            self._restart()
        client = self._client_for()
        calibration = self._calibrated()
        max_tokens = self.profile.long_max_tokens if spec.long else self.profile.max_tokens
        if spec.long:
            result.context_note = self._check_context(calibration, spec, max_tokens)
        cold = self._make_cold(spec, repeat, result)
        client = self._client_for()  # a cache reset may have restarted the engine on a new port
        if spec.cold and self.handle.managed and self.handle.pid != self._last_pid:
            cold.append("restart")
        body, salt = self._body(spec, repeat, max_tokens, calibration.corpus, "request" in cold)
        record = client.chat(body)
        self._bodies[(repeat, spec.name)] = body
        self._last_sent, self._last_pid = (repeat, spec.name), self.handle.pid
        result.runs.append(
            PhaseRun(
                spec.name,
                repeat,
                max_tokens,
                record,
                cold_method="+".join(m for m in COLD_METHODS if m in cold) if spec.cold else None,
                sent={k: v for k, v in body.items() if k != "messages"},
                prompt={"system": spec.system, "user": spec.user, "salt": salt},
            )
        )

    def _make_cold(self, spec: Phase, repeat: int, result: PhaseResult) -> list[str]:
        """The cold methods of this request beyond its salt: the engine's cache reset on a repeat's
        first request, else the family's cache-bypass fields. A failed reset fails the phase (the
        request still goes out, salted)."""
        if not spec.cold:
            return []
        if not spec.reset:
            return ["salt", "request"] if self.handle.family.cold_fields() else ["salt"]
        try:
            return ["salt", self.handle.reset_cache()]
        except (EngineStartError, RuntimeError, httpx.HTTPError) as exc:
            result.errors.append(f"{spec.name} repeat {repeat}: cache reset failed (the request was salted): {exc}")
            return ["salt"]

    def _cold_runs(self) -> list[PhaseRun]:
        return [r for name, result in self.results.items() if phase(name).cold for r in result.runs]

    def _prime(self, repeat: int) -> None:
        """Resend this repeat's last request if another request was sent since (see module docstring)."""
        sent = [p for p in self._done[repeat] if (repeat, p) in self._bodies]
        if not sent or self._last_sent == (repeat, sent[-1]):
            return
        try:
            record = self._client_for().chat(self._bodies[(repeat, sent[-1])])
        except _NotSent as exc:
            self.primers.append({"repeat": repeat, "phase": sent[-1], "ok": False, "error": str(exc)})
            return
        self._last_sent, self._last_pid = (repeat, sent[-1]), self.handle.pid
        self.primers.append({"repeat": repeat, "phase": sent[-1], "ok": record.ok, "error": record.error})
        self._emit_settings()

    def _body(
        self, spec: Phase, repeat: int, max_tokens: int, corpus: Corpus, cold_fields: bool
    ) -> tuple[dict[str, Any], str]:
        salt = self._salt(repeat, spec.system)
        body = self._base_fields()
        body.update(
            model=self.case.model_id,
            messages=[
                {"role": "system", "content": corpus.system(spec.system, salt)},
                {"role": "user", "content": corpus.user(spec.user)},
            ],
            max_tokens=max_tokens,
        )
        if cold_fields:
            merge_fields(body, self.handle.family.cold_fields())
        return body, salt

    def _base_fields(self) -> dict[str, Any]:
        """engines.toml ``request`` fields, then the model's thinking setting in the family's dialect."""
        body: dict[str, Any] = {"temperature": 0.0}
        body.update((k, v) for k, v in self.case.request.items() if k not in PROTOCOL_KEYS)
        if self.case.thinking is not None:
            merge_fields(body, self.handle.family.thinking_fields(self.case.thinking == "on"))
        return body

    def _salt(self, repeat: int, system: str) -> str:
        """Unique per session, repeat and system prompt, and different from its first character on."""
        digest = hashlib.blake2s(f"{self._session_salt}-{repeat}-{system}".encode(), digest_size=8).hexdigest()
        return f"{digest}-r{repeat}"

    def _check_context(self, calibration: Calibration, spec: Phase, max_tokens: int) -> str:
        """A note on the context the phase needs; raises _NotSent when the engine cannot hold it."""
        prompt = calibration.request_tokens(spec.system, spec.user)
        needed = prompt + max_tokens
        if calibration.context is None:
            return f"needs ≈{needed} tokens of context ({prompt} prompt + {max_tokens} answer); engine context unknown"
        note = (
            f"needs ≈{needed} tokens of context ({prompt} prompt + {max_tokens} answer); "
            f"the engine has {calibration.context} ({calibration.context_source})"
        )
        if needed > calibration.context:
            raise _NotSent(f"context too small: {spec.name} {note} (use a smaller profile or a larger context)")
        return note

    # -- the engine ---------------------------------------------------------------------------
    def _client_for(self) -> StreamingClient:
        """The client for the engine's current URL, starting a managed engine if needed."""
        if self._start_error is not None:
            raise _NotSent(self._start_error)
        try:
            url = self.handle.ensure_running()
        except EngineStartError as exc:
            self._start_error = f"engine did not start: {exc}"
            raise _NotSent(self._start_error) from None
        if self._client is None or self._client_url != url:
            self.close()
            self._client = StreamingClient(
                url,
                api_key=self.case.api_key,
                timeouts=Timeouts(connect_s=self.case.connect_timeout_s, deadline_s=self.case.deadline_s),
            )
            self._client_url = url
        return self._client

    def _restart(self) -> None:
        try:
            self.handle.restart()
        except (EngineStartError, RuntimeError) as exc:
            raise _NotSent(f"restart failed: {exc}") from None

    def _calibrated(self) -> Calibration:
        """Size the prompts on the engine's tokenizer once per session (raises _NotSent if it is down)."""
        if self._calibration is None:
            client = self._client_for()
            assert self._client_url is not None
            timeout = httpx.Timeout(connect=self.case.connect_timeout_s, read=self.case.deadline_s, write=60, pool=60)
            with httpx.Client(timeout=timeout, trust_env=False) as http:
                self._calibration = calibrate(
                    self.profile, http, self._client_url, self._probe(client), self.case.context
                )
            self._emit(
                {"type": "result", "section": "protocol", "key": "calibration", "value": self._calibration.to_dict()}
            )
            self._emit_settings()
        return self._calibration

    def _probe(self, client: StreamingClient) -> Callable[[str, str], RequestRecord]:
        def send(system: str, user: str) -> RequestRecord:
            body = self._base_fields()
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            body.update(model=self.case.model_id, messages=messages, max_tokens=1)
            return client.chat(body)

        return send

    def _emit_settings(self) -> None:
        family = self.handle.family
        thinking = None if self.case.thinking is None else family.thinking_fields(self.case.thinking == "on")
        value = {
            "profile": self.profile.name,
            "targets": {
                "system_tokens": self.profile.system_tokens,
                "user_tokens": self.profile.user_tokens,
                "long_tokens": self.profile.long_tokens,
                "max_tokens": self.profile.max_tokens,
                "long_max_tokens": self.profile.long_max_tokens,
            },
            "runs": self.runs,
            "phases": list(self.phase_names),
            "cold_method": self.cold_method,
            "cold_fields": family.cold_fields(),
            "thinking": self.case.thinking,
            "thinking_fields": thinking,
            "primers": list(self.primers),
        }
        self._emit({"type": "result", "section": "protocol", "key": "settings", "value": value})

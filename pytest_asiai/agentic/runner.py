"""The live record source: one case's protocol phases, measured lazily and exactly once.

The ``agentic`` fixture's object (:class:`pytest_asiai.agentic.results.Agentic`) asks this source
for phases on a live case (a replayed case has pytest_asiai/agentic/replay.py's source instead).

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
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from pytest_asiai.agentic.calibrate import Calibration, calibrate
from pytest_asiai.agentic.prompts import Corpus
from pytest_asiai.agentic.protocol import PHASE_NAMES, PROFILES, Phase, Profile, phase, phase_names_for
from pytest_asiai.agentic.results import Emit, Origin, PhaseResult, PhaseRun
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineStartError
from pytest_asiai.measure.samplers import SamplerView
from pytest_asiai.measure.validity import thinking_off_requested
from pytest_asiai.wire.client import StreamingClient, Timeouts
from pytest_asiai.wire.records import RequestRecord
from pytest_asiai.wire.requests import RequestBuilder

#: How a cold request was made cold, in report order (see EngineHandle.reset_cache).
COLD_METHODS = ("salt", "request", "endpoint", "unload", "restart")


class _NotSent(Exception):
    """A phase's request could not be sent in one repeat; the message says why."""


class LiveSource:
    """The live record source: one case's protocol state, which phases ran in which repeat, and their results."""

    def __init__(
        self,
        handle: EngineHandle,
        *,
        runs: int,
        profile: str,
        planned: Iterable[str],
        emit: Emit,
        samplers: SamplerView | None = None,
    ) -> None:
        self.handle = handle
        self.case = handle.case
        self.runs = runs
        self.profile: Profile = PROFILES[profile]
        self.phase_names: tuple[str, ...] = phase_names_for(handle.managed)
        """The phases this case runs, in order (``restart-prefix`` only for a managed engine)."""
        wanted = set(planned)
        self.planned = [p for p in self.phase_names if p in wanted]
        self.results: dict[str, PhaseResult] = {}
        self.primers: list[dict[str, Any]] = []
        """Unmeasured requests resent to restore a repeat's cache state (see the module docstring)."""
        self.origin = Origin(thinking_off=thinking_off_requested(self.case.request, self.case.thinking))
        self.samplers = samplers
        self.emit = emit
        self._session_salt = secrets.token_hex(8)
        self._done: list[list[str]] = [[] for _ in range(runs)]
        self._bodies: dict[tuple[int, str], dict[str, Any]] = {}
        self._last_sent: tuple[int, str] | None = None
        self._last_pid: int | None = None
        self._calibration: Calibration | None = None
        self._client: StreamingClient | None = None
        self._client_url: str | None = None
        self._start_error: str | None = None

    def phase(self, name: str) -> PhaseResult:
        """The result of ``name``, running it (and the phases before it) if not yet done."""
        spec = phase(name)
        if spec.name not in self.phase_names:
            return self._not_applicable(spec)
        if not self._complete(spec.name):
            last = max(PHASE_NAMES.index(p) for p in [*self.planned, spec.name])
            self._run_until(PHASE_NAMES[last])
        return self.results[spec.name]

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
            self.emit({"type": "phase", "phase": self.results[spec.name].to_dict()})
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
            time.sleep(self.case.pause_s)  # engines.toml pause_s: a cache stored after the response lands
        except _NotSent as exc:
            result.errors.append(f"{spec.name} repeat {repeat}: not sent: {exc}")
        self._done[repeat].append(spec.name)
        # Emitted after every request: an interrupted run keeps what it measured.
        self.emit({"type": "phase", "phase": result.to_dict()})
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
            time.sleep(self.case.pause_s)
        except _NotSent as exc:
            self.primers.append({"repeat": repeat, "phase": sent[-1], "ok": False, "error": str(exc)})
            return
        self._last_sent, self._last_pid = (repeat, sent[-1]), self.handle.pid
        self.primers.append({"repeat": repeat, "phase": sent[-1], "ok": record.ok, "error": record.error})
        self._emit_settings()

    def _body(
        self, spec: Phase, repeat: int, max_tokens: int, corpus: Corpus, cold_fields: bool
    ) -> tuple[dict[str, Any], str]:
        """The phase's request (pytest_asiai/wire/requests.py); a cold one carries the family's cache bypass."""
        salt = self._salt(repeat, spec.system)
        messages = [
            {"role": "system", "content": corpus.system(spec.system, salt)},
            {"role": "user", "content": corpus.user(spec.user)},
        ]
        suite = self.handle.family.cold_fields() if cold_fields else None
        return RequestBuilder.for_handle(self.handle).body(messages, max_tokens=max_tokens, suite=suite), salt

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
                timeouts=Timeouts.for_case(self.case),
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
            self.emit(
                {"type": "result", "section": "protocol", "key": "calibration", "value": self._calibration.to_dict()}
            )
            self._emit_settings()
        return self._calibration

    def _probe(self, client: StreamingClient) -> Callable[[str, str], RequestRecord]:
        def send(system: str, user: str) -> RequestRecord:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            return client.chat(RequestBuilder.for_handle(self.handle).body(messages, max_tokens=1))

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
        self.emit({"type": "result", "section": "protocol", "key": "settings", "value": value})

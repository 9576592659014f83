"""The one request builder: every suite's chat body comes from here, with one precedence.

Why: each suite used to assemble its body itself, with its own order of the same ingredients, and a
recording server showed them disagree (engines.toml's ``chat_template_kwargs`` replaced the thinking
switch's in burst and endurance, so ``thinking = "off"`` was lost on their requests). Layers, later
ones winning, nested objects (``chat_template_kwargs``) merged key by key by :func:`merge_fields`:

1. the protocol's defaults (:data:`DEFAULTS`: temperature 0);
2. the case's engines.toml ``request`` fields, minus the keys the protocol owns (:data:`PROTOCOL_KEYS`);
3. the case's thinking switch (engines.toml ``thinking``) in the engine family's dialect;
4. what the suite itself varies: a thinking setting of its own (the thinking ablation's cells, the
   probes, the brief) in the same dialect, then its own fields (a cold request's cache bypass, a
   cell's ``preserve_thinking``);
5. the protocol-owned keys: ``model``, ``messages``, ``max_tokens``, ``tools``.

The client adds ``stream`` and ``stream_options`` when it sends (pytest_asiai/wire/client.py). The
same rules, with examples, are in docs/requests.md. This module knows nothing of engines: the
family's dialect comes in as a function (``EngineFamily.thinking_fields``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["DEFAULTS", "PROTOCOL_KEYS", "RequestBuilder", "assemble", "merge_fields"]

#: Layer 1: what every request sends unless engines.toml ``request`` says otherwise.
DEFAULTS: Mapping[str, Any] = {"temperature": 0.0}
#: Keys the protocol sets itself; engines.toml ``request`` cannot override them (its schema refuses them too).
PROTOCOL_KEYS = ("model", "messages", "max_tokens", "tools", "stream", "stream_options")

ThinkingDialect = Callable[[bool], Mapping[str, Any]]


class _Family(Protocol):
    def thinking_fields(self, on: bool) -> dict[str, Any]: ...


class _Case(Protocol):
    @property
    def model_id(self) -> str: ...
    @property
    def request(self) -> Mapping[str, Any]: ...
    @property
    def thinking(self) -> str | None: ...


class _Handle(Protocol):
    """What the builder reads from an engine handle (pytest_asiai/engines/handle.py)."""

    @property
    def case(self) -> _Case: ...
    @property
    def family(self) -> _Family: ...


def merge_fields(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Request fields layered left to right; nested objects merge key by key, at every depth.

    The inputs are never modified: nested objects are copied.
    """
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            old = out.get(key)
            if isinstance(value, Mapping):
                out[key] = merge_fields(old, value) if isinstance(old, Mapping) else merge_fields(value)
            else:
                out[key] = value
    return out


def assemble(
    fields: Mapping[str, Any],
    *,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Layer 5: the protocol-owned keys on top of already layered ``fields``."""
    body = merge_fields(fields)
    body.update(model=model, messages=[dict(m) for m in messages], max_tokens=max_tokens)
    if tools is not None:
        body["tools"] = [dict(t) for t in tools]
    return body


@dataclass(frozen=True, slots=True)
class RequestBuilder:
    """One case's request fields and bodies, layered as the module docstring says."""

    model: str
    request: Mapping[str, Any] = field(default_factory=dict)
    """The case's engines.toml ``request`` fields (protocol-owned keys are dropped)."""
    thinking: bool | None = None
    """The case's thinking switch (engines.toml ``thinking``; None: not sent)."""
    dialect: ThinkingDialect | None = None
    """The family's thinking fields for a switch (``EngineFamily.thinking_fields``)."""

    @classmethod
    def for_handle(cls, handle: _Handle) -> RequestBuilder:
        """The builder of a case's engine handle (its case, and its family's thinking dialect)."""
        case = handle.case
        thinking = None if case.thinking is None else case.thinking == "on"
        return cls(case.model_id, dict(case.request), thinking, handle.family.thinking_fields)

    def thinking_fields(self, on: bool) -> dict[str, Any]:
        """The family's fields for a thinking switch (the generic dialect when none was given)."""
        if self.dialect is None:
            return {"chat_template_kwargs": {"enable_thinking": on}}
        return dict(self.dialect(on))

    def fields(self, *, thinking: bool | None = None, suite: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Layers 1-4: every field but the protocol-owned ones.

        ``thinking`` is a setting the suite itself varies (None: the case's switch stands); ``suite``
        are the suite's own fields, applied last.
        """
        layers: list[Mapping[str, Any]] = [DEFAULTS]
        layers.append({k: v for k, v in self.request.items() if k not in PROTOCOL_KEYS})
        if self.thinking is not None:
            layers.append(self.thinking_fields(self.thinking))
        if thinking is not None:
            layers.append(self.thinking_fields(thinking))
        if suite:
            layers.append({k: v for k, v in suite.items() if k not in PROTOCOL_KEYS})
        return merge_fields(*layers)

    def body(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int,
        tools: Sequence[Mapping[str, Any]] | None = None,
        thinking: bool | None = None,
        suite: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A whole chat body: :meth:`fields`, then the model, messages, output budget and tools."""
        fields = self.fields(thinking=thinking, suite=suite)
        return assemble(fields, model=self.model, messages=messages, max_tokens=max_tokens, tools=tools)

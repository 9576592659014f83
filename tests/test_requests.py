"""The one request builder (pytest_asiai/wire/requests.py): its layers, in order, and the one merge.

Why: five suites used to layer the same ingredients in different orders; each rule of the documented
precedence (docs/requests.md) is pinned here once, so a suite that asks the builder cannot disagree.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pytest_asiai.engines.llamacpp import LlamaCpp
from pytest_asiai.engines.ollama import Ollama
from pytest_asiai.wire.requests import DEFAULTS, RequestBuilder, assemble, merge_fields

MESSAGES = [{"role": "user", "content": "hi"}]


def handle(family: Any = None, *, thinking: str | None = None, request: dict[str, Any] | None = None) -> Any:
    case = SimpleNamespace(model_id="m", request=request or {}, thinking=thinking)
    return SimpleNamespace(case=case, family=family or LlamaCpp())


def test_merge_is_key_by_key_at_every_depth_and_copies() -> None:
    inner = {"b": {"c": 1}}
    out = merge_fields({"k": {"a": 1, **inner}, "x": 1}, {"k": {"b": {"d": 2}}}, {"x": 2})
    assert out == {"k": {"a": 1, "b": {"c": 1, "d": 2}}, "x": 2}
    out["k"]["b"]["c"] = 9
    assert inner == {"b": {"c": 1}}  # the layers are never modified


def test_defaults_then_request_minus_protocol_keys() -> None:
    request = {"temperature": 0.7, "top_k": 7, "model": "x", "messages": [], "max_tokens": 1, "tools": [], "stream": 0}
    assert RequestBuilder.for_handle(handle(request=request)).fields() == {"temperature": 0.7, "top_k": 7}
    assert RequestBuilder("m").fields() == dict(DEFAULTS)


def test_the_thinking_switch_wins_over_request_and_merges_with_it() -> None:
    request = {"chat_template_kwargs": {"house_flag": True, "enable_thinking": True}}
    fields = RequestBuilder.for_handle(handle(thinking="off", request=request)).fields()
    assert fields["chat_template_kwargs"] == {"house_flag": True, "enable_thinking": False}


def test_the_switch_is_in_the_family_dialect() -> None:
    fields = RequestBuilder.for_handle(handle(Ollama(), thinking="on", request={"top_k": 7})).fields()
    assert fields == {"temperature": 0.0, "top_k": 7, **Ollama().thinking_fields(True)}


@pytest.mark.parametrize("case_thinking", [None, "off", "on"])
def test_the_suite_varies_last_thinking_then_its_own_fields(case_thinking: str | None) -> None:
    builder = RequestBuilder.for_handle(handle(thinking=case_thinking, request={"chat_template_kwargs": {"h": 1}}))
    suite = {"chat_template_kwargs": {"preserve_thinking": False}, "cache_prompt": False, "model": "no"}
    fields = builder.fields(thinking=True, suite=suite)
    assert fields["chat_template_kwargs"] == {"h": 1, "enable_thinking": True, "preserve_thinking": False}
    assert fields["cache_prompt"] is False and "model" not in fields


def test_protocol_keys_come_last() -> None:
    builder = RequestBuilder.for_handle(handle(request={"top_k": 7}))
    tools = [{"type": "function", "function": {"name": "t"}}]
    body = builder.body(MESSAGES, max_tokens=5, tools=tools)
    assert body == {"temperature": 0.0, "top_k": 7, "model": "m", "messages": MESSAGES, "max_tokens": 5, "tools": tools}
    assert "tools" not in builder.body(MESSAGES, max_tokens=5)
    assert assemble({"max_tokens": 1, "model": "x"}, model="m", messages=MESSAGES, max_tokens=2)["max_tokens"] == 2

"""llama.cpp ``llama-server``: version from ``/props``, ``cache_prompt: false`` for true cold runs."""

from __future__ import annotations

import re
from typing import Any

import httpx

from .base import EngineFamily

BUILD = re.compile(r"b?(\d+)")


def parse_build_info(value: object) -> str | None:
    """``/props`` ``build_info`` is a string such as ``b11434-unknown`` (older builds: a dict)."""
    if isinstance(value, dict):
        value = value.get("version") or value.get("build_number")
    if isinstance(value, int):
        return f"b{value}"
    if isinstance(value, str) and (m := BUILD.match(value)):
        return f"b{m.group(1)}"
    return None


class LlamaCpp(EngineFamily):
    kind = "llamacpp"
    default_port = 8080
    process_names = ("llama-server",)

    def version(self, http: httpx.Client, base_url: str) -> str | None:
        try:
            props = http.get(f"{base_url}/props").json()
        except (httpx.HTTPError, ValueError):
            return None
        return parse_build_info(props.get("build_info")) if isinstance(props, dict) else None

    def cold_fields(self) -> dict[str, Any]:
        return {"cache_prompt": False}

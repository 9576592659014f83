"""The generic OpenAI-compatible family, and the interface every engine family overrides."""

from __future__ import annotations

from typing import Any

import httpx


class EngineFamily:
    """An OpenAI-compatible server we know nothing special about."""

    kind = "openai"
    default_port = 8000
    process_names: tuple[str, ...] = ()

    def version(self, http: httpx.Client, base_url: str) -> str | None:
        """The engine's version, or None when it does not say."""
        return None

    def thinking_fields(self, on: bool) -> dict[str, Any]:
        """Request fields that turn thinking on or off."""
        return {"chat_template_kwargs": {"enable_thinking": on}}

    def cold_fields(self) -> dict[str, Any]:
        """Request fields that make the engine ignore its prompt cache (empty when it has none)."""
        return {}

    @property
    def cold_method(self) -> str:
        """How a true cold run is obtained when ``cold_fields`` is empty: a per-repeat salt."""
        return "request" if self.cold_fields() else "salt"

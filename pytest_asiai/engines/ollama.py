"""Ollama: ``/api/version``, ``think`` plus ``reasoning_effort``, unload/reload for a true cold run.

Documented shapes (docs/asiai-protocol.md §7.2 ollama, §7.1 step 1): ``GET /api/version`` →
``{"version": "0.x.y"}``; the OpenAI route ``/v1/chat/completions`` streams reasoning in
``delta.reasoning`` and reports no cached tokens (ollama #8008). ``/v1`` ignores ``think: false``
(ollama #17969, hermes-agent #6152); newer versions accept ``reasoning_effort: "none"`` (PR #16854), so
both are sent. Unloading with ``keep_alive: 0`` drops the runner and its prompt cache.

Recognising the real Ollama (ollama/ollama server/routes.go, openai/openai.go, middleware/openai.go
read at commit fb30760): other servers imitate its endpoints (vMLX answers ``GET /`` "Ollama is
running" and ``/api/version`` ``{"version": "0.12.6"}``), so ``/api/version`` alone is no evidence.
Only the real Ollama is a Go gin router without a ``/health`` route: an unknown path gets gin's
default plain-text ``404 page not found`` (no NoRoute handler), where the FastAPI imitators answer
``{"detail": "Not Found"}`` or a health JSON. The signature needs both, and families with their own
positive evidence (an ``owned_by`` naming them) are asked first (engines/__init__.py).
The OpenAI stream shape comes from the same code: reasoning in ``delta.reasoning``, usage
``{prompt_tokens, completion_tokens, total_tokens}`` in a separate ``choices: []`` chunk after the
finish chunk (only with ``include_usage``), no cached tokens; errors are
``{"error": {"message", "type": "not_found_error"|"invalid_request_error"|"api_error", "param", "code"}}``.
Documented only: no real Ollama runs in CI.
"""

from __future__ import annotations

from typing import Any

import httpx

from pytest_asiai.engines.base import EngineFamily
from pytest_asiai.engines.probe import Answer, Probe


def _gin_not_found(answer: Answer | None) -> bool:
    """gin's default answer to a path with no route (ollama's router has no NoRoute handler)."""
    return answer is not None and answer.status == 404 and answer.text.strip() == GIN_NOT_FOUND


GIN_NOT_FOUND = "404 page not found"


class Ollama(EngineFamily):
    kind = "ollama"
    title = "Ollama"
    default_port = 11434
    process_names = ("ollama",)
    process_patterns = (("ollama", "serve"), ("ollama", "runner"), ("Ollama",))
    health_path = "/api/version"
    launch = ("ollama", "serve")  # host and port via env OLLAMA_HOST = "{host}:{port}"
    reasoning_field = "reasoning"
    usage_chunk = True
    cached_field = None
    documented = "docs/asiai-protocol.md §7.1-7.2 ollama; ollama #8008, #17969, PR #16854"

    def signature(self, probe: Probe) -> str | None:
        version = probe.json_dict("/api/version").get("version")
        if isinstance(version, str) and version and _gin_not_found(probe.get("/health")):
            return f"GET /api/version is {{version: {version}}} from Go's router (/health: 404 page not found)"
        return None

    def version_from(self, probe: Probe) -> str | None:
        version = probe.json_dict("/api/version").get("version")
        return version if isinstance(version, str) and version else None

    def thinking_fields(self, on: bool) -> dict[str, Any]:
        if on:
            return {"think": True}
        return {"think": False, "reasoning_effort": "none"}

    @property
    def cold_method(self) -> str:
        return "unload"

    def reset_cache(self, http: httpx.Client, base_url: str, model: str) -> str | None:
        """Unload the model (``keep_alive: 0``), then load it again so load time stays out of TTFT."""
        root = Probe(http, base_url).root
        try:
            unload = http.post(f"{root}/api/generate", json={"model": model, "keep_alive": 0})
            load = http.post(f"{root}/api/generate", json={"model": model})
        except httpx.HTTPError:
            return None
        return "unload" if unload.status_code == 200 and load.status_code == 200 else None

"""llama.cpp ``llama-server``: version from ``/props``, ``cache_prompt: false`` for true cold runs.

Documented shapes (asiai-protocol.md §7.2, real-engines.md): ``/health`` → ``{"status":"ok"}``;
``/props`` ``build_info`` is a STRING (``"b11434-unknown"``; asiai read it as a dict and fell back to
brew); streamed usage carries ``prompt_tokens_details.cached_tokens`` (PR #19361) and ``timings``
(``cache_n``, PR #15827; ``draft_n``/``draft_n_accepted`` under speculative decoding); ``/slots``,
``/metrics`` (``llamacpp:`` names, with ``--metrics``) and ``/tokenize``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pytest_asiai.engines.base import EngineFamily
from pytest_asiai.engines.probe import Probe

BUILD = re.compile(r"b?(\d+)")


def parse_build_info(value: object) -> str | None:
    """``/props`` ``build_info`` is a string such as ``b11434-unknown`` (older builds: a dict)."""
    if isinstance(value, dict):
        value = value.get("version") or value.get("build_number")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"b{value}"
    if isinstance(value, str) and (m := BUILD.match(value.strip())):
        return f"b{m.group(1)}"
    return None


class LlamaCpp(EngineFamily):
    kind = "llamacpp"
    title = "llama.cpp llama-server"
    default_port = 8080
    process_names = ("llama-server",)
    process_patterns = (("llama-server",),)
    health_path = "/health"
    launch = (
        "llama-server", "--model", "{model_path}", "--alias", "{model_id}",
        "--host", "{host}", "--port", "{port}", "--metrics",
    )  # fmt: skip
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = "usage.prompt_tokens_details.cached_tokens"
    timings = True
    metrics_path = "/metrics"
    verified: ClassVar[str] = "live"  # tests/test_detect.py::test_detect_names_the_real_llama_server
    documented = "asiai-protocol.md §7.2 llamacpp; real-engines.md; llama.cpp PR #19361, PR #15827"

    def signature(self, probe: Probe) -> str | None:
        health = probe.json_dict("/health")
        props = probe.json_dict("/props")
        if health.get("status") == "ok" and ("build_info" in props or "default_generation_settings" in props):
            return "GET /health is {status: ok} and GET /props has build_info"
        if "llamacpp" in probe.owned_by() and props:
            return "owned_by llamacpp and GET /props answers"
        return None

    def version_from(self, probe: Probe) -> str | None:
        return parse_build_info(probe.json_dict("/props").get("build_info"))

    def cold_fields(self) -> dict[str, Any]:
        return {"cache_prompt": False}

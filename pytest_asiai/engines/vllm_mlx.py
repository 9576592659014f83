"""vLLM-MLX: ``/version``, Prometheus ``/metrics``, ``DELETE /v1/cache/prefix`` for a true cold run.

Documented shapes (asiai-protocol.md §7.1 step 2e, §7.2 vllm_mlx): ``owned_by: "vllm-mlx"`` or a
``/version`` JSON naming it; ``/metrics`` with ``vllm_num_requests_running`` and
``vllm_generation_tokens_total``; no cached tokens in usage (users report a 0 % hit rate,
waybarrios/vllm-mlx #522); ``DELETE /v1/cache/prefix`` empties the prefix cache and answers
``{"status": "cleared", ...}`` (PR #373); reasoning in ``reasoning_content`` or ``reasoning``.
"""

from __future__ import annotations

import httpx

from .base import EngineFamily
from .probe import Probe


def version_naming(probe: Probe, name: str) -> str | None:
    """``version`` of a ``/version`` JSON whose text names ``name`` (vllm-mlx, vmlx)."""
    answer = probe.get("/version")
    if answer is None or not answer.ok or name not in answer.text.lower():
        return None
    body = answer.json()
    version = body.get("version") if isinstance(body, dict) else None
    return version if isinstance(version, str) and version else None


class VllmMlx(EngineFamily):
    kind = "vllm_mlx"
    title = "vLLM-MLX"
    default_port = 8000
    process_names = ("vllm-mlx",)
    process_patterns = (("vllm-mlx", "serve"), ("vllm_mlx.server",), ("vllm_mlx.cli",))
    health_path = "/health"
    launch = ("vllm-mlx", "serve", "{model_path}", "--host", "{host}", "--port", "{port}")
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = None
    metrics_path = "/metrics"
    documented = "asiai-protocol.md §7.1-7.2 vllm_mlx; waybarrios/vllm-mlx #522, PR #46, PR #373"

    def signature(self, probe: Probe) -> str | None:
        if "vllm-mlx" in probe.owned_by():
            return "owned_by vllm-mlx"
        if version_naming(probe, "vllm-mlx") or version_naming(probe, "vllm_mlx"):
            return "GET /version names vllm-mlx"
        return None

    def version_from(self, probe: Probe) -> str | None:
        version = probe.json_dict("/version").get("version")
        return version if isinstance(version, str) and version else None

    @property
    def cold_method(self) -> str:
        return "endpoint"

    def reset_cache(self, http: httpx.Client, base_url: str, model: str) -> str | None:
        try:
            response = http.delete(f"{Probe(http, base_url).root}/v1/cache/prefix")
        except httpx.HTTPError:
            return None
        return "endpoint" if 200 <= response.status_code < 300 else None

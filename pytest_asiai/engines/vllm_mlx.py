"""vLLM-MLX: ``owned_by: "vllm-mlx"``, no version endpoint, cache reuse it never reports.

Observed live (vLLM-MLX 0.6.0, docs/mlx-engines.md, tests/data/mlx-captures/, in CI by
tests/test_detect_mlx_live.py): ``/v1/models`` entries say ``owned_by: "vllm-mlx"``; ``/health`` is
JSON; ``/version`` is 404 and ``/openapi.json`` hard-codes a stale ``"0.4.1"`` (vllm_mlx/server.py),
so the version is the ``vllm-mlx`` distribution of the Python that serves the port. ``/metrics``
answers only with ``--enable-metrics``. Usage is ``{prompt, completion, total}`` with NO cached
tokens, sent twice (on the finish chunk and again in a ``choices: []`` chunk), although the engine
reuses the shared system prompt (TTFT 19.0 → 1.2 s, log "System KV cache HIT 195"): reuse must be
judged from the TTFT ratio.

True cold run (vllm_mlx/server.py, checked live by tests/test_detect_mlx_live.py): ``DELETE
/v1/cache/prefix`` empties the continuous-batching prefix cache but answers ``{"status":
"not_supported"}`` on the default simple engine, whose reuse is the system-prompt KV LRU; ``DELETE
/v1/cache`` (``clear_runtime_caches``) drops that LRU. Both are sent. (The simple engine's opt-in
``--prefix-trie-cache`` is cleared by neither: with it, only the salt makes a run cold.)

Documented only: reasoning in ``delta.reasoning_content`` (vllm_mlx/api/models.py; SmolLM2 never
reasons); a ``/version`` naming vllm-mlx (docs/asiai-protocol.md §7.1 step 2e; absent from 0.6.0).
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from pytest_asiai.engines.base import EngineFamily, python_dist_version
from pytest_asiai.engines.probe import Probe

#: ``status`` values of DELETE /v1/cache/prefix that leave no prefix cache behind.
_PREFIX_DONE = ("cleared", "not_supported", "no_engine")


def version_naming(probe: Probe, name: str) -> str | None:
    """``version`` of a ``/version`` JSON whose text names ``name`` (documented, never seen live)."""
    answer = probe.get("/version")
    if answer is None or not answer.ok or name not in answer.text.lower():
        return None
    body = answer.json()
    version = body.get("version") if isinstance(body, dict) else None
    return version if isinstance(version, str) and version else None


def status_of(response: httpx.Response) -> str | None:
    """The ``status`` of a 2xx JSON answer, else None."""
    if not 200 <= response.status_code < 300:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None


class VllmMlx(EngineFamily):
    kind = "vllm_mlx"
    title = "vLLM-MLX"
    default_port = 8000
    process_names = ("vllm-mlx",)
    process_patterns = (("vllm-mlx", "serve"), ("vllm_mlx.server",), ("vllm_mlx.cli",))
    health_path = "/health"
    launch = (
        "vllm-mlx", "serve", "{model_path}", "--host", "{host}", "--port", "{port}",
        "--served-model-name", "{model_id}", "--enable-metrics",
    )  # fmt: skip
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = None
    metrics_path = "/metrics"
    verified: ClassVar[str] = "live"
    documented_only: ClassVar[tuple[str, ...]] = ("reasoning_field", "/version signature")
    documented = (
        "live: vLLM-MLX 0.6.0 (docs/mlx-engines.md, tests/test_detect_mlx_live.py); cache reset and "
        "reasoning from vllm_mlx/server.py, api/models.py; docs/asiai-protocol.md §7.1-7.2 vllm_mlx; "
        "waybarrios/vllm-mlx #522, PR #46, PR #373"
    )

    def signature(self, probe: Probe) -> str | None:
        if "vllm-mlx" in probe.owned_by():
            return "owned_by vllm-mlx"
        if version_naming(probe, "vllm-mlx") or version_naming(probe, "vllm_mlx"):
            return "GET /version names vllm-mlx"
        return None

    def version_from(self, probe: Probe) -> str | None:
        return version_naming(probe, "vllm-mlx") or version_naming(probe, "vllm_mlx")

    def version_from_process(self, argv: list[str]) -> str | None:
        return python_dist_version(argv, "vllm-mlx")

    @property
    def cold_method(self) -> str:
        return "endpoint"

    def reset_cache(self, http: httpx.Client, base_url: str, model: str) -> str | None:
        """Empty the prefix cache (continuous batching) and the system-prompt KV LRU (simple engine)."""
        root = Probe(http, base_url).root
        try:
            prefix = status_of(http.delete(f"{root}/v1/cache/prefix"))
            runtime = status_of(http.delete(f"{root}/v1/cache")) if prefix in _PREFIX_DONE else None
        except httpx.HTTPError:
            return None
        return "endpoint" if runtime == "cleared" else None

"""vMLX: ``owned_by: "vmlx-engine"``, version in ``/openapi.json``, cached tokens in 64-token blocks.

Observed live (vMLX 1.6.81 with mlx-lm 0.31.3, docs/mlx-engines.md,
tests/data/mlx-captures/, in CI by tests/test_detect_mlx_live.py): ``/v1/models`` entries say
``owned_by: "vmlx-engine"``; ``/openapi.json`` is titled ``"vmlx-engine API"`` and its ``version`` is
the package's own ``vmlx_engine.__version__`` (vmlx_engine/server.py builds the app with it), the
``vmlx`` distribution of the serving Python being the fallback; ``/version`` and ``/metrics`` are 404.
vMLX IMITATES OLLAMA: ``GET /`` says "Ollama is running", ``/api/version`` answers
``{"version": "0.12.6"}``, ``/api/tags`` and ``/api/ps`` answer. So vMLX is detected before Ollama, and
Ollama's own signature also needs Ollama's Go router (see ollama.py). The usage chunk
(``choices: []``) reports ``prompt_tokens_details: {cached_tokens: 192, cache_detail: "block-disk"}``
on a 195-token shared prefix (three 64-token blocks) and omits it when nothing was cached. Tokens
are coalesced, about 8 per event (stream interval 8), and ``finish_reason`` rides the last content
chunk.

True cold run (vmlx_engine/server.py, checked live by tests/test_detect_mlx_live.py): ``DELETE
/v1/cache?type=prefix`` clears the RAM prefix state AND its block-disk companions; a restart would
not, the block-disk store outlives the process.

Documented only: reasoning in ``delta.reasoning_content`` (vmlx_engine/api/models.py; SmolLM2 never
reasons); "reported but ineffective" reuse on hybrid models (mlx-vlm #1077, #999: the reuse gate
catches it with the TTFT ratio).
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from pytest_asiai.engines.base import EngineFamily, openapi_info, python_dist_version
from pytest_asiai.engines.probe import Probe
from pytest_asiai.engines.vllm_mlx import status_of, version_naming

OWNERS = ("vmlx-engine", "vmlx")
TITLE = "vmlx-engine"


class VMlx(EngineFamily):
    kind = "vmlx"
    title = "vMLX"
    default_port = 8000
    process_names = ("vmlx", "vmlx-engine", "vmlx-serve")
    process_patterns = (("vmlx", "serve"), ("vmlx-engine", "serve"), ("vmlx-serve",), ("vmlx_engine.cli",))
    health_path = "/health"
    launch = (
        "vmlx", "serve", "{model_path}", "--host", "{host}", "--port", "{port}", "--served-model-name", "{model_id}",
    )  # fmt: skip
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = "usage.prompt_tokens_details.cached_tokens"
    metrics_path = None
    cache_block_tokens = 64
    verified: ClassVar[str] = "live"
    documented_only: ClassVar[tuple[str, ...]] = ("reasoning_field", "ineffective reuse on hybrid models")
    documented = (
        "live: vMLX 1.6.81 (docs/mlx-engines.md, tests/test_detect_mlx_live.py); cache reset and "
        "reasoning from vmlx_engine/server.py, api/models.py; docs/asiai-protocol.md §7.1-7.2 vmlx; "
        "Blaizzy/mlx-vlm #1077, #999, PR #1151"
    )

    def signature(self, probe: Probe) -> str | None:
        owner = next((o for o in OWNERS if o in probe.owned_by()), None)
        if owner:
            return f"owned_by {owner}"
        if openapi_info(probe, TITLE):
            return f"GET /openapi.json title names {TITLE}"
        if version_naming(probe, "vmlx"):
            return "GET /version names vmlx"
        return None

    def version_from(self, probe: Probe) -> str | None:
        return openapi_info(probe, TITLE) or version_naming(probe, "vmlx")

    def version_from_process(self, argv: list[str]) -> str | None:
        return python_dist_version(argv, "vmlx")

    @property
    def cold_method(self) -> str:
        return "endpoint"

    def reset_cache(self, http: httpx.Client, base_url: str, model: str) -> str | None:
        """``DELETE /v1/cache?type=prefix``: RAM prefix cache and its disk blocks."""
        try:
            status = status_of(http.delete(f"{Probe(http, base_url).root}/v1/cache", params={"type": "prefix"}))
        except httpx.HTTPError:
            return None
        return "endpoint" if status in ("cleared", "no_caches_found") else None

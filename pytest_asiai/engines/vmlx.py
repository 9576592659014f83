"""vMLX: ``owned_by: "vmlx"`` or a ``/version`` naming it; cached tokens reported, maybe ineffective.

Documented shapes (asiai-protocol.md §7.1 step 2e, §7.2 vmlx): version from ``/version`` (else the
``vmlx`` distribution of the Python that serves the port; asiai asked ``pip show``, which may be a
different install); ``/metrics``; usage reports cached tokens but the TTFT may not drop (mlx-vlm
#1077, #999: "reported but ineffective", which the reuse gate must catch with the TTFT ratio).
"""

from __future__ import annotations

from .base import EngineFamily, python_dist_version
from .probe import Probe
from .vllm_mlx import version_naming


class VMlx(EngineFamily):
    kind = "vmlx"
    title = "vMLX"
    default_port = 8000
    process_names = ("vmlx",)
    process_patterns = (("vmlx", "serve"), ("vmlx.server",))
    health_path = "/v1/models"
    launch = ("vmlx", "serve", "{model_path}", "--host", "{host}", "--port", "{port}")
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = "usage.prompt_tokens_details.cached_tokens"
    metrics_path = "/metrics"
    documented = "asiai-protocol.md §7.1-7.2 vmlx; Blaizzy/mlx-vlm #1077, #999, PR #1151"

    def signature(self, probe: Probe) -> str | None:
        if "vmlx" in probe.owned_by():
            return "owned_by vmlx"
        if version_naming(probe, "vmlx"):
            return "GET /version names vmlx"
        return None

    def version_from(self, probe: Probe) -> str | None:
        return version_naming(probe, "vmlx")

    def version_from_process(self, argv: list[str]) -> str | None:
        return python_dist_version(argv, "vmlx")

    @property
    def cold_method(self) -> str:
        return "restart"

"""mlx-lm's ``mlx_lm.server``: Python's http.server, ``delta.reasoning``, cached tokens reported.

Documented shapes (asiai-protocol.md §7.2 mlxlm, real-engines.md "Other real servers"): the server is
``http.server`` (``Server: BaseHTTP/0.6 Python/3.x``), ``/health`` → ``{"status": "ok"}`` with no
``/props``; ``/v1/models`` lists Hugging Face cache entries (empty for a local directory); the usage
chunk says ``object: "chat.completion"`` with ``choices: []`` and
``prompt_tokens_details.cached_tokens`` (mlx-lm PR #849); reasoning arrives in ``delta.reasoning``; no
``timings``, ``/slots`` or ``/metrics``. asiai made every unrecognised server mlx-lm; here mlx-lm
needs its own positive signature.
"""

from __future__ import annotations

from .base import EngineFamily, python_dist_version
from .probe import Probe


class MlxLm(EngineFamily):
    kind = "mlxlm"
    title = "mlx-lm server"
    default_port = 8080
    process_names = ("mlx_lm.server",)
    process_patterns = (("mlx_lm.server",), ("mlx_lm", "server"), ("mlx_lm.server.main",))
    health_path = "/health"
    launch = ("mlx_lm.server", "--model", "{model_path}", "--host", "{host}", "--port", "{port}")
    reasoning_field = "reasoning"
    usage_chunk = True
    cached_field = "usage.prompt_tokens_details.cached_tokens"
    documented = "asiai-protocol.md §7.2 mlxlm; real-engines.md (mlx-lm 0.32.2); mlx-lm PR #849, #1292"

    def signature(self, probe: Probe) -> str | None:
        server = probe.header("/health", "server") or ""
        health = probe.json_dict("/health")
        if "BaseHTTP/" in server and health.get("status") == "ok" and not probe.json_dict("/props"):
            return f"Python http.server ({server}) with GET /health {{status: ok}} and no /props"
        return None

    def version_from_process(self, argv: list[str]) -> str | None:
        return python_dist_version(argv, "mlx-lm")

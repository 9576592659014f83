"""mlx-lm's server (``mlx_lm server``): Python's http.server, ``delta.reasoning``, cached tokens reported.

Observed live (mlx-lm 0.32.2, docs/mlx-engines.md, tests/data/mlx-captures/, and in
CI by tests/test_detect_mlx_live.py): ``Server: BaseHTTP/0.6 Python/3.x``; ``GET /health`` answers
``{"status": "ok"}``; ``/props``, ``/metrics``, ``/version`` and ``/v1/cache/*`` are 404, so no endpoint
reports the version: it is the ``mlx-lm`` distribution of the Python that serves the port (the
stream's ``system_fingerprint`` also starts with it, ``"0.32.2-0.32.4-Linux-..."``). ``/v1/models``
answers 200 with an EMPTY body unless ``HF_HUB_CACHE`` exists. The usage chunk says
``object: "chat.completion"`` with ``choices: []`` and always carries
``prompt_tokens_details.cached_tokens`` (195 of a 195-token shared system prompt). The stream sends
``: keepalive N/M`` SSE comments during prefill and repeats ``"role": "assistant"`` in every delta.

Documented only (no live server showed it): reasoning arrives in ``delta.reasoning`` (mlx_lm/server.py
0.32.2 writes ``choice["delta"]["reasoning"]``; SmolLM2 never reasons). There is no cache-reset API:
a true cold run is a salted prompt (a unique first token makes the LRU prompt cache miss).
asiai made every unrecognised server mlx-lm; here mlx-lm needs its own positive signature.
"""

from __future__ import annotations

from typing import ClassVar

from pytest_asiai.engines.base import EngineFamily, python_dist_version
from pytest_asiai.engines.probe import Probe


class MlxLm(EngineFamily):
    kind = "mlxlm"
    title = "mlx-lm server"
    default_port = 8080
    process_names = ("mlx_lm.server", "mlx_lm")
    process_patterns = (("mlx_lm.server",), ("mlx_lm", "server"), ("mlx_lm.server.main",))
    health_path = "/health"
    launch = ("mlx_lm", "server", "--model", "{model_path}", "--host", "{host}", "--port", "{port}")
    reasoning_field = "reasoning"
    usage_chunk = True
    cached_field = "usage.prompt_tokens_details.cached_tokens"
    verified: ClassVar[str] = "live"
    documented_only: ClassVar[tuple[str, ...]] = ("reasoning_field",)
    documented = (
        "live: mlx-lm 0.32.2 (docs/mlx-engines.md, tests/test_detect_mlx_live.py); "
        "reasoning from mlx_lm/server.py; docs/asiai-protocol.md §7.2 mlxlm; mlx-lm PR #849, #1292"
    )

    def signature(self, probe: Probe) -> str | None:
        server = probe.header("/health", "server") or ""
        health = probe.json_dict("/health")
        if "BaseHTTP/" in server and health.get("status") == "ok" and not probe.json_dict("/props"):
            return f"Python http.server ({server}) with GET /health {{status: ok}} and no /props"
        return None

    def version_from_process(self, argv: list[str]) -> str | None:
        return python_dist_version(argv, "mlx-lm")

"""Rapid-MLX: ``owned_by: "rapid-mlx"``, version in ``/metrics`` build info, ``POST /v1/cache/clear``.

Observed live (Rapid-MLX 0.16.10, docs/mlx-engines.md, tests/data/mlx-captures/, in
CI by tests/test_detect_mlx_live.py): ``/v1/models`` entries say ``owned_by: "rapid-mlx"``;
``/health`` is JSON (``{"status": "healthy", "ready": true, ...}``, not the HTML page asiai's docs
described); ``/version`` is 404 and ``/openapi.json`` says a stale ``"0.6.0"`` (inherited from
vllm-mlx), but ``/metrics`` (on by default) carries ``rapid_mlx_build_info{version="0.16.10",...}``,
the package's own ``rapid_mlx.__version__``; the ``rapid-mlx`` distribution of the serving Python
is the fallback. The usage chunk (``choices: []``) reports
``prompt_tokens_details.cached_tokens`` (195 on a 195-token shared prefix) and omits the details
when nothing was cached; the finish chunk adds ``metrics: {time_to_first_token_ms, mean_itl_ms}``.
``POST /v1/cache/clear`` (rapid_mlx/routes/health.py) empties the reusable prefix KV cache without
unloading: the true-cold method, checked live by tests/test_detect_mlx_live.py.

Documented only: reasoning in ``delta.reasoning_content`` (rapid_mlx/api/models.py; SmolLM2 never
reasons). The wheel also installs a ``vllm-mlx`` console script that runs Rapid-MLX: ``owned_by``
still names it, and its version then comes from ``/metrics``. The seed panel saw single-slot FIFO
serialisation under bursts.
"""

from __future__ import annotations

import re
from typing import ClassVar

import httpx

from pytest_asiai.engines.base import EngineFamily, python_dist_version
from pytest_asiai.engines.probe import Probe

_BUILD_INFO = re.compile(r'^rapid_mlx_build_info\{[^}]*\bversion="([^"]+)"', re.MULTILINE)


class RapidMlx(EngineFamily):
    kind = "rapidmlx"
    title = "Rapid-MLX"
    default_port = 8000
    process_names = ("rapid-mlx", "rmlx")
    process_patterns = (("rapid-mlx",), ("rmlx",), ("rapid_mlx.cli",), ("rapid_mlx",))
    health_path = "/health"
    launch = (
        "rapid-mlx", "--no-telemetry", "--no-banner", "--disable-version-check", "serve", "{model_path}",
        "--host", "{host}", "--port", "{port}", "--served-model-name", "{model_id}",
    )  # fmt: skip
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = "usage.prompt_tokens_details.cached_tokens"
    metrics_path = "/metrics"
    verified: ClassVar[str] = "live"
    documented_only: ClassVar[tuple[str, ...]] = ("reasoning_field", "burst serialisation")
    documented = (
        "live: Rapid-MLX 0.16.10 (docs/mlx-engines.md, tests/test_detect_mlx_live.py); reasoning from "
        "rapid_mlx/api/models.py; docs/asiai-protocol.md §7.1-7.2 rapidmlx, §3.9/§4 (serialisation)"
    )

    def signature(self, probe: Probe) -> str | None:
        return "owned_by rapid-mlx" if "rapid-mlx" in probe.owned_by() else None

    def version_from(self, probe: Probe) -> str | None:
        answer = probe.get(self.metrics_path or "/metrics")
        match = _BUILD_INFO.search(answer.text) if answer is not None and answer.ok else None
        return match.group(1) if match else None

    def version_from_process(self, argv: list[str]) -> str | None:
        return python_dist_version(argv, "rapid-mlx")

    @property
    def cold_method(self) -> str:
        return "endpoint"

    def reset_cache(self, http: httpx.Client, base_url: str, model: str) -> str | None:
        """``POST /v1/cache/clear``: ``{"status": "ok", ...}`` once the prefix KV cache is empty."""
        try:
            response = http.post(f"{Probe(http, base_url).root}/v1/cache/clear")
        except httpx.HTTPError:
            return None
        body = _json(response)
        return "endpoint" if response.status_code == 200 and body.get("status") == "ok" else None


def _json(response: httpx.Response) -> dict[str, object]:
    """A response's JSON object, or an empty dict (an HTML or empty body is no confirmation)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}

"""Rapid-MLX: ``owned_by: "rapid-mlx"``, version from its own binary, ``/health`` is an HTML page.

Documented shapes (asiai-protocol.md §7.1 step 2d, §7.2 rapidmlx): port 8000 in its docs (8004 in
asiai's adapter docstring, a [DRIFT]); ``/v1/models`` entries say ``owned_by: "rapid-mlx"``; version
only from ``rapid-mlx --version`` (asked of the binary that serves the port, not whatever is on
PATH); ``/health`` answers HTML, so the managed health check uses ``/v1/models``; no metrics; cached
tokens not reported in the seed campaign ("—"); streams like vllm-mlx. The seed panel saw single-slot
FIFO serialisation under bursts.
"""

from __future__ import annotations

from .base import EngineFamily, run_version
from .probe import Probe


class RapidMlx(EngineFamily):
    kind = "rapidmlx"
    title = "Rapid-MLX"
    default_port = 8000
    process_names = ("rapid-mlx",)
    process_patterns = (("rapid-mlx",), ("rapid_mlx.server",), ("rapid_mlx",))
    health_path = "/v1/models"
    launch = ("rapid-mlx", "serve", "{model_path}", "--host", "{host}", "--port", "{port}")
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = None
    documented = "asiai-protocol.md §7.1-7.2 rapidmlx, §3.9/§4 (serialisation)"

    def signature(self, probe: Probe) -> str | None:
        return "owned_by rapid-mlx" if "rapid-mlx" in probe.owned_by() else None

    def version_from_process(self, argv: list[str]) -> str | None:
        return run_version([*argv, "--version"], r"(\d+\.\d+\.\d+[\w.+-]*)") if argv else None

    @property
    def cold_method(self) -> str:
        return "restart"

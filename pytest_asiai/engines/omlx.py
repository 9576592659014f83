"""oMLX: ``owned_by: "omlx"``, version in ``/api/status``, prefix reuse in 256-token blocks.

Observed live (oMLX from ``flyto-mlx`` 0.7.0: PyPI has no ``omlx``; flyto-mlx ships jundot/omlx's
``omlx`` package and CLI; docs/mlx-engines.md, tests/data/mlx-captures/, in CI by
tests/test_detect_mlx_live.py): ``/v1/models`` entries say ``owned_by: "omlx"``; ``GET /api/status``
answers ``{"status": "ok", "version": "0.7.0", ...}``. That version is what we report: it is the
running package's ``omlx._version.__version__`` (also ``/openapi.json``'s), which flyto-mlx keeps
equal to its distribution version; the process fallback asks for an ``omlx`` distribution first (an
upstream install), then ``flyto-mlx``. ``/version``, ``/metrics`` and ``/admin/info`` are 404. The
usage chunk (``choices: []``) always reports ``prompt_tokens_details.cached_tokens`` plus oMLX's own
timings (``time_to_first_token``, ``prompt_tokens_per_second``...). The paged cache reuses whole
256-token blocks: no hit on a 195-token shared prefix, 256 cached of a 281-token one. It stores a
finished request's blocks on a worker thread after the response (omlx/scheduler.py
``_async_store_cache_worker``): the same request resent at once missed them 4 times in 5, never after
0.25 s, so engines-mlx.toml sets ``pause_s`` (docs/mlx-engines.md). Keepalive DATA
events (``"id": "chatcmpl-keepalive"``, empty content) come before the role chunk and every ~10 s.

True cold run: a salted prompt (a new first block changes every chained block hash). A restart does
not empty the paged SSD cache (``--paged-ssd-cache-dir`` outlives the process), and its clear
endpoints (``/admin/api/ssd-cache/clear``, ``/admin/api/hot-cache/clear``) need an admin login.

Documented only: reasoning in ``delta.reasoning_content`` (omlx/api/openai_models.py; SmolLM2 never
reasons); ``/admin/info`` with a version (docs/asiai-protocol.md §7.1 step 2c; absent from flyto-mlx 0.7.0).
"""

from __future__ import annotations

from typing import ClassVar

from pytest_asiai.engines.base import EngineFamily, python_dist_version
from pytest_asiai.engines.probe import Probe


def _version(body: dict[str, object]) -> str | None:
    version = body.get("version")
    return version if isinstance(version, str) and version else None


class OMlx(EngineFamily):
    kind = "omlx"
    title = "oMLX"
    default_port = 8000
    process_names = ("omlx", "fmlx")
    process_patterns = (("omlx", "serve"), ("fmlx", "serve"), ("omlx.cli",), ("omlx.server",), ("oMLX",))
    health_path = "/health"
    launch = ("omlx", "serve", "--model-dir", "{model_path}", "--host", "{host}", "--port", "{port}")
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = "usage.prompt_tokens_details.cached_tokens"
    cache_block_tokens = 256
    verified: ClassVar[str] = "live"
    documented_only: ClassVar[tuple[str, ...]] = ("reasoning_field", "/admin/info version")
    documented = (
        "live: oMLX from flyto-mlx 0.7.0 (docs/mlx-engines.md, tests/test_detect_mlx_live.py); "
        "reasoning from omlx/api/openai_models.py; docs/asiai-protocol.md §7.1-7.2 omlx; "
        "jundot/omlx #919, #61, #3608, #2483, #1441"
    )

    def signature(self, probe: Probe) -> str | None:
        if "omlx" in probe.owned_by():
            return "owned_by omlx"
        if _version(probe.json_dict("/admin/info")):
            return "GET /admin/info has a version"
        return None

    def version_from(self, probe: Probe) -> str | None:
        return _version(probe.json_dict("/api/status")) or _version(probe.json_dict("/admin/info"))

    def version_from_process(self, argv: list[str]) -> str | None:
        return python_dist_version(argv, "omlx", "flyto-mlx")

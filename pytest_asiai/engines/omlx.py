"""oMLX: ``owned_by: "omlx"``, version from ``/admin/info``, cached tokens when streaming.

Documented shapes (asiai-protocol.md §7.1 step 2c, §7.2 omlx): ``/v1/models`` entries say
``owned_by: "omlx"``; ``/admin/info`` is JSON with ``version`` (``/admin`` is an HTML page naming
oMLX); streamed usage reports ``prompt_tokens_details.cached_tokens`` (missing only from
non-streaming responses, jundot/omlx #919; ``include_usage`` #61); reasoning in ``reasoning_content``
or ``reasoning``. No reset API: a true cold run needs a restart of a managed engine, else salts.
"""

from __future__ import annotations

from .base import EngineFamily
from .probe import Probe


class OMlx(EngineFamily):
    kind = "omlx"
    title = "oMLX"
    default_port = 8000
    process_names = ("omlx",)
    process_patterns = (("omlx", "serve"), ("omlx.server",), ("oMLX",))
    health_path = "/v1/models"
    launch = ("omlx", "serve", "--model-dir", "{model_path}", "--port", "{port}")
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = "usage.prompt_tokens_details.cached_tokens"
    documented = "asiai-protocol.md §7.1-7.2 omlx; jundot/omlx #919, #61, #3608, #2483, #1441"

    def signature(self, probe: Probe) -> str | None:
        if "omlx" in probe.owned_by():
            return "owned_by omlx"
        if isinstance(probe.json_dict("/admin/info").get("version"), str):
            return "GET /admin/info has a version"
        admin = probe.get("/admin")
        if admin is not None and admin.ok and "omlx" in admin.text[:20000].lower():
            return "GET /admin page names oMLX"
        return None

    def version_from(self, probe: Probe) -> str | None:
        version = probe.json_dict("/admin/info").get("version")
        return version if isinstance(version, str) and version else None

    @property
    def cold_method(self) -> str:
        return "restart"

"""LM Studio: version header, no cached tokens, unload/reload through its ``lms`` CLI.

Documented shapes (docs/asiai-protocol.md §7.1 step 2a, §7.2 lmstudio): the version comes from the
``x-lm-studio-version`` header or ``/lms/version``; the REST listing ``/api/v0/models`` describes each
model (``type``, ``state``, ``compatibility_type``). Unknown endpoints answer HTTP 200 with
``{"error": "Unexpected endpoint or method. (GET /x). Returning 200 anyway"}``, so a 200 alone proves
nothing (a naive ``/health`` check passes on LM Studio). Streamed usage has no cached tokens
(lmstudio-bug-tracker #778, #2390, #2419); reasoning arrives in ``reasoning_content`` with "separate
reasoning" on, ``reasoning`` in newer versions (#894, #378).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx

from pytest_asiai.engines.base import EngineFamily
from pytest_asiai.engines.probe import Probe


def lms_cli() -> str | None:
    """LM Studio's command-line tool: on PATH, else where the app installs it."""
    found = shutil.which("lms")
    if found:
        return found
    default = Path.home() / ".lmstudio" / "bin" / "lms"
    return str(default) if default.exists() else None


class LMStudio(EngineFamily):
    kind = "lmstudio"
    title = "LM Studio"
    default_port = 1234
    process_names = ("LM Studio", "lmstudio", "llmster")
    process_patterns = (("LM Studio",), ("lmstudio",), ("llmster",), ("lms", "server"))
    health_path = "/v1/models"
    launch = ("lms", "server", "start", "--port", "{port}")
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = None
    documented = "docs/asiai-protocol.md §7.1-7.2 lmstudio; lmstudio-bug-tracker #778, #2390, #2419, #894, #378"

    def signature(self, probe: Probe) -> str | None:
        if probe.header("/v1/models", "x-lm-studio-version"):
            return "header x-lm-studio-version on /v1/models"
        if isinstance(probe.json_dict("/lms/version").get("version"), str):
            return "GET /lms/version has a version"
        listing = probe.json_dict("/api/v0/models").get("data")
        if isinstance(listing, list) and any(isinstance(m, dict) and "compatibility_type" in m for m in listing):
            return "GET /api/v0/models lists compatibility_type"
        return None

    def version_from(self, probe: Probe) -> str | None:
        header = probe.header("/v1/models", "x-lm-studio-version")
        if header:
            return header
        version = probe.json_dict("/lms/version").get("version")
        return version if isinstance(version, str) and version else None

    @property
    def cold_method(self) -> str:
        return "unload"

    def reset_cache(self, http: httpx.Client, base_url: str, model: str) -> str | None:
        """``lms unload`` then ``lms load`` (the app has no HTTP unload); None without the CLI."""
        lms = lms_cli()
        if lms is None:
            return None
        for argv in ([lms, "unload", model], [lms, "load", model, "--yes"]):
            try:
                done = subprocess.run(argv, capture_output=True, timeout=300, check=False)
            except (OSError, subprocess.SubprocessError):
                return None
            if done.returncode != 0:
                return None
        return "unload"

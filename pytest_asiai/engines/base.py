"""The generic OpenAI-compatible family, and the interface every engine family overrides.

A family answers, for one kind of server: how to recognise it (positive evidence only: a server we
do not recognise stays generic, it never silently becomes mlx-lm as in asiai), its version, what
it reports (documented facts, confirmed by the capability probe), the request fields that switch
thinking, how to get a true cold run, which processes are the engine, and how to start it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from pytest_asiai.engines.probe import Probe


class EngineFamily:
    """An OpenAI-compatible server we know nothing special about."""

    kind = "openai"
    title = "OpenAI-compatible server"
    default_port = 8000
    process_names: tuple[str, ...] = ()
    """Executable (or console script) base names of the engine's processes."""
    process_patterns: tuple[tuple[str, ...], ...] = ()
    """Leading command words that identify the engine, e.g. ``("ollama", "serve")`` (see processes.py)."""
    health_path = "/v1/models"
    """What a managed start polls until it answers 200 (every OpenAI server lists its models)."""
    launch: tuple[str, ...] = ()
    """A typical managed ``command`` for engines.toml (``{model_path}``, ``{host}``, ``{port}`` filled)."""
    reasoning_field: str | None = None
    """Delta field carrying reasoning text in streamed chunks (None: inline or unknown)."""
    usage_chunk: bool | None = None
    """Sends a final usage chunk when asked with ``stream_options.include_usage`` (None: unknown)."""
    cached_field: str | None = None
    """Where streamed usage reports cached prompt tokens (None: not reported)."""
    timings = False
    """Adds llama.cpp's ``timings`` object (cache_n, prompt_ms, predicted_ms, draft_n...)."""
    metrics_path: str | None = None
    """Prometheus endpoint, when the engine has one."""
    cache_block_tokens: int | None = None
    """Granularity of prefix reuse: the engine caches whole blocks of this many tokens, so a shared
    prefix shorter than one block is never reused (None: token-granular or unknown)."""
    verified: ClassVar[str] = "documented"
    """How the family's facts were checked: ``live`` (a real server runs in CI: tests/test_detect.py,
    tests/test_detect_mlx_live.py), ``recorded`` (real captures replayed) or ``documented`` only."""
    documented_only: ClassVar[tuple[str, ...]] = ()
    """Facts of a ``live`` family that no live server showed (taken from its code or docs)."""
    documented: ClassVar[str] = "docs/asiai-protocol.md §7.2 (generic OpenAI-compatible server)"

    # -- identity -------------------------------------------------------------------------------
    def signature(self, probe: Probe) -> str | None:
        """Positive evidence that the server is of this family (a short description), else None."""
        return None

    def version(self, http: httpx.Client, base_url: str) -> str | None:
        """The engine's version, or None when it does not say."""
        return self.version_from(Probe(http, base_url))

    def version_from(self, probe: Probe) -> str | None:
        """The version from already-probed endpoints (detection shares its probe)."""
        return None

    # -- request dialect ------------------------------------------------------------------------
    def thinking_fields(self, on: bool) -> dict[str, Any]:
        """Request fields that turn thinking on or off."""
        return {"chat_template_kwargs": {"enable_thinking": on}}

    def cold_fields(self) -> dict[str, Any]:
        """Request fields that make the engine ignore its prompt cache (empty when it has none)."""
        return {}

    @property
    def cold_method(self) -> str:
        """How a true cold run is obtained: ``request`` (cold_fields), ``endpoint`` (reset_cache
        calls the engine), ``unload`` (unload and reload the model), ``restart`` (a managed engine is
        restarted) or ``salt`` (a unique prefix per repeat)."""
        return "request" if self.cold_fields() else "salt"

    def launch_settings(self, command: Sequence[str] | None, env: Mapping[str, str]) -> dict[str, str]:
        """Settings that change the measurements, read from the launch (None: not started by us)."""
        return {}

    def reset_cache(self, http: httpx.Client, base_url: str, model: str) -> str | None:
        """Empty the engine's prompt cache now; the method used, or None when it has no such API."""
        return None

    # -- processes and managed starts -----------------------------------------------------------
    def version_from_process(self, argv: list[str]) -> str | None:
        """The version of the program that serves the port, given the prefix that runs it again
        (``processes.launcher``: a binary, Python + script, or ``python -m module``); never whatever
        binary of the same name is first on PATH (asiai's brew/pip look-ups could name another one)."""
        return None

    def describe(self) -> dict[str, Any]:
        """The family's documented facts, JSON-safe (the capability probe refines them)."""
        return {
            "family": self.kind,
            "title": self.title,
            "default_port": self.default_port,
            "reasoning_field": self.reasoning_field,
            "usage_chunk": self.usage_chunk,
            "cached_field": self.cached_field,
            "timings": self.timings,
            "metrics_path": self.metrics_path,
            "health_path": self.health_path,
            "cold_method": self.cold_method,
            "cache_block_tokens": self.cache_block_tokens,
            "thinking_off": self.thinking_fields(False),
            "verified": self.verified,
            "documented_only": list(self.documented_only),
            "documented": self.documented,
        }


def run_version(argv: list[str], pattern: str = r"(\d+\.\d+[\w.+-]*)", timeout_s: float = 10.0) -> str | None:
    """The first match of ``pattern`` (group 1) in a version command's output, or None."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    m = re.search(pattern, done.stdout + "\n" + done.stderr)
    return m.group(1) if m else None


def python_dist_version(argv: list[str], *dists: str) -> str | None:
    """Version of the first installed distribution of ``dists``, as seen by the Python interpreter
    that runs ``argv`` (the venv that serves the port, not whatever Python is first on PATH)."""
    if not argv:
        return None
    for dist in dists:
        code = f"import importlib.metadata as m; print(m.version({dist!r}))"
        version = run_version([argv[0], "-c", code])
        if version is not None:
            return version
    return None


def openapi_info(probe: Probe, title: str) -> str | None:
    """``info.version`` of a FastAPI ``/openapi.json`` whose title contains ``title``, else None.

    Only for servers whose app is built with ``version=<package>.__version__`` (vMLX): several MLX
    servers hard-code a stale one (vLLM-MLX 0.6.0 says "0.4.1", Rapid-MLX 0.16.10 says "0.6.0")."""
    info = probe.json_dict("/openapi.json").get("info")
    if not isinstance(info, dict) or title not in str(info.get("title", "")):
        return None
    version = info.get("version")
    return version if isinstance(version, str) and version else None

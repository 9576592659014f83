"""llama.cpp ``llama-server``: version from ``/props``, ``cache_prompt: false`` for true cold runs.

Documented shapes (docs/asiai-protocol.md §7.2, docs/real-engines.md): ``/health`` → ``{"status":"ok"}``;
``/props`` ``build_info`` is a STRING (``"b11434-unknown"``; asiai read it as a dict and fell back to
brew); streamed usage carries ``prompt_tokens_details.cached_tokens`` (PR #19361) and ``timings``
(``cache_n``, PR #15827; ``draft_n``/``draft_n_accepted`` under speculative decoding); ``/slots``,
``/metrics`` (``llamacpp:`` names, with ``--metrics``) and ``/tokenize``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pytest_asiai.engines.base import EngineFamily, run_version
from pytest_asiai.engines.probe import Probe

BUILD = re.compile(r"b?(\d+)")
#: llama-server's host-RAM prompt cache size in MiB when not set (b11434 common/common.h, ``cache_ram_mib``).
DEFAULT_CACHE_RAM_MIB = 8192


def host_prompt_cache(command: Sequence[str] | None, env: Mapping[str, str]) -> str:
    """``--cache-ram``/``-cram`` (or ``LLAMA_ARG_CACHE_RAM``) as the report states it.

    The cache keeps finished prompts in host RAM and restores them into a slot; it costs cold requests
    its bookkeeping and grows the server's memory (benchmarks/llama_prompt_cache.py measures both).
    """
    if command is None:
        return "unknown (engine not started by pytest-asiai)"
    value, source = env.get("LLAMA_ARG_CACHE_RAM"), "LLAMA_ARG_CACHE_RAM="
    for i, arg in enumerate(command):
        flag, eq, inline = arg.partition("=")
        if flag in ("--cache-ram", "-cram"):
            value = inline if eq else (command[i + 1] if i + 1 < len(command) else "")
            source = "--cache-ram "
    if value is None:
        return f"on (llama-server default, {DEFAULT_CACHE_RAM_MIB} MiB)"
    try:
        mib = int(value)
    except ValueError:
        return f"unknown ({source.strip().rstrip('=')} {value!r} is not a number)"
    if mib == 0:
        return f"off ({source}0)"
    return f"on ({source}-1: no limit)" if mib < 0 else f"on ({source}{mib} MiB)"


def parse_build_info(value: object) -> str | None:
    """``/props`` ``build_info`` is a string such as ``b11434-unknown`` (older builds: a dict)."""
    if isinstance(value, dict):
        value = value.get("version") or value.get("build_number")
    if isinstance(value, str) and (m := BUILD.match(value.strip())):
        value = int(m.group(1))
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return f"b{value}"
    return None  # b0: a build without its number compiled in (the xllamacpp wheel's server)


def parse_version_output(text: str) -> str | None:
    """``llama-server --version``: ``version: 0.6.0-dev (build 11434, …)`` (compiled) or, from
    scripts/llama-server-xllamacpp, ``version: 11549 (xllamacpp 2026.10.11549, prebuilt wheel)``."""
    if m := re.search(r"\(build (\d+)", text):
        return f"b{m.group(1)}" if int(m.group(1)) > 0 else None
    if m := re.search(r"version: (\d+) \(xllamacpp ([\w.+-]+)", text):
        return f"b{m.group(1)} (xllamacpp {m.group(2)})"
    return None


class LlamaCpp(EngineFamily):
    kind = "llamacpp"
    title = "llama.cpp llama-server"
    default_port = 8080
    process_names = ("llama-server",)
    process_patterns = (("llama-server",), ("llama-server-xllamacpp",))
    health_path = "/health"
    launch = (
        "llama-server", "--model", "{model_path}", "--alias", "{model_id}",
        "--host", "{host}", "--port", "{port}", "--metrics",
    )  # fmt: skip
    reasoning_field = "reasoning_content"
    usage_chunk = True
    cached_field = "usage.prompt_tokens_details.cached_tokens"
    timings = True
    metrics_path = "/metrics"
    verified: ClassVar[str] = "live"  # tests/test_detect.py::test_detect_names_the_real_llama_server
    documented = "docs/asiai-protocol.md §7.2 llamacpp; docs/real-engines.md; llama.cpp PR #19361, PR #15827"

    def signature(self, probe: Probe) -> str | None:
        health = probe.json_dict("/health")
        props = probe.json_dict("/props")
        if health.get("status") == "ok" and ("build_info" in props or "default_generation_settings" in props):
            return "GET /health is {status: ok} and GET /props has build_info"
        if "llamacpp" in probe.owned_by() and props:
            return "owned_by llamacpp and GET /props answers"
        return None

    def version_from(self, probe: Probe) -> str | None:
        return parse_build_info(probe.json_dict("/props").get("build_info"))

    def cold_fields(self) -> dict[str, Any]:
        return {"cache_prompt": False}

    def version_from_process(self, argv: list[str]) -> str | None:
        text = run_version([*argv, "--version"], pattern=r"(version: [^\n]*)") if argv else None
        return parse_version_output(text) if text else None

    def launch_settings(self, command: Sequence[str] | None, env: Mapping[str, str]) -> dict[str, str]:
        return {"host_prompt_cache": host_prompt_cache(command, env)}

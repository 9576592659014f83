"""llama-cpp-python's server (``python -m llama_cpp.server``): no usage chunk, no ``/health``.

Measured on 0.3.36 here (docs/real-engines.md "Other real servers"): it streams with NO usage chunk at all
(``stream_options.include_usage`` is ignored), so token counts and cached tokens are unreported and
prefix reuse can only be judged by TTFT; it has no ``/health``, ``/slots``, ``/metrics`` or ``/props``
(health is ``/v1/models``); it is a FastAPI app whose ``/openapi.json`` names it; a new request
aborts the one in flight unless started with ``--interrupt_requests False``.
"""

from __future__ import annotations

from typing import ClassVar

from pytest_asiai.engines.base import EngineFamily, python_dist_version
from pytest_asiai.engines.probe import Probe

TITLE = "llama.cpp Python API"


class LlamaCppPython(EngineFamily):
    kind = "llamacpp_python"
    title = "llama-cpp-python server"
    default_port = 8000
    process_names = ("llama_cpp.server",)
    process_patterns = (("llama_cpp.server",),)
    health_path = "/v1/models"
    launch = (
        "python", "-m", "llama_cpp.server", "--model", "{model_path}", "--model_alias", "{model_id}",
        "--host", "{host}", "--port", "{port}", "--interrupt_requests", "False",
    )  # fmt: skip
    reasoning_field = None
    usage_chunk = False
    cached_field = None
    verified: ClassVar[str] = "live"  # tests/test_detect.py::test_detect_names_the_real_llama_cpp_python
    documented = "docs/real-engines.md (llama-cpp-python 0.3.36, measured); tests/transcripts/llamacpp_python.json"

    def signature(self, probe: Probe) -> str | None:
        info = probe.json_dict("/openapi.json").get("info")
        if isinstance(info, dict) and TITLE in str(info.get("title", "")):
            return f"GET /openapi.json title is {info.get('title')!r}"
        return None

    def version_from(self, probe: Probe) -> str | None:
        info = probe.json_dict("/openapi.json").get("info")
        version = info.get("version") if isinstance(info, dict) else None
        return version if isinstance(version, str) and version else None

    def version_from_process(self, argv: list[str]) -> str | None:
        return python_dist_version(argv, "llama_cpp_python")

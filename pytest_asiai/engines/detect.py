"""``pytest-asiai detect URL``: which engine family serves a URL, its version and its capabilities.

Detection needs positive evidence (a family signature: Ollama's ``/api/version``, LM Studio's
version header, llama.cpp's ``/health`` + ``/props``, an ``owned_by`` value, a ``/version`` naming the
engine, Python's http.server for mlx-lm). A server that shows none stays ``openai`` (generic) with
``recognised: false``: asiai's cascade silently called every unrecognised server mlx-lm.

The version comes from the server itself, else from the program that listens on its port (its own
binary or Python, never whatever happens to be on PATH). ``--chat`` also sends one tiny streamed
request to see the usage chunk, the cached-token field, ``timings`` and the reasoning field for real.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import httpx

from pytest_asiai.engines import GENERIC, EngineFamily, identify
from pytest_asiai.engines.capabilities import capabilities, observed_stream
from pytest_asiai.engines.probe import Probe, auth_headers
from pytest_asiai.engines.processes import argv_of, engine_processes, launcher, matches, name_of
from pytest_asiai.wire.client import StreamingClient, Timeouts


@dataclass(slots=True)
class Detection:
    """What detection found out about one URL."""

    base_url: str
    family: EngineFamily
    reachable: bool
    recognised: bool
    evidence: str | None = None
    version: str | None = None
    version_source: str | None = None
    models: list[str] = field(default_factory=list)
    capabilities: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    command: list[str] = field(default_factory=list)
    stream: dict[str, Any] | None = None
    error: str | None = None

    @property
    def kind(self) -> str:
        return self.family.kind

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "kind": self.kind,
            "title": self.family.title,
            "reachable": self.reachable,
            "recognised": self.recognised,
            "evidence": self.evidence,
            "version": self.version,
            "version_source": self.version_source,
            "models": self.models,
            "pid": self.pid,
            "command": self.command,
            "capabilities": self.capabilities,
            "stream": self.stream,
            "error": self.error,
        }


def _process_version(detection: Detection) -> None:
    """Ask the program that listens on the port, when the server itself did not say."""
    procs = engine_processes(detection.base_url)
    if not procs:
        return
    argv = argv_of(procs[0])
    detection.pid, detection.command = procs[0].pid, argv
    # Only a process recognisably of this family is asked (never, say, the Python of a test server).
    if detection.version is None and matches(detection.family.process_patterns, argv, name_of(procs[0])):
        version = detection.family.version_from_process(launcher(argv))
        if version is not None:
            detection.version, detection.version_source = version, "process"


def detect(
    base_url: str,
    *,
    timeout_s: float = 5.0,
    chat: bool = False,
    model: str | None = None,
    api_key: str | None = None,
) -> Detection:
    """Identify the server at ``base_url`` (``http://host:port`` with or without ``/v1``)."""
    with httpx.Client(timeout=timeout_s, trust_env=False, headers=auth_headers(api_key)) as http:
        probe = Probe(http, base_url)
        if not probe.reachable:
            error = next(iter(probe.errors.values()), "no answer")
            return Detection(base_url, GENERIC, reachable=False, recognised=False, error=error)
        family, evidence = identify(probe)
        detection = Detection(base_url, family, reachable=True, recognised=evidence is not None, evidence=evidence)
        detection.version = family.version_from(probe)
        detection.version_source = "http" if detection.version else None
        detection.models = [str(m["id"]) for m in probe.models() if m.get("id")]
        detection.capabilities = capabilities(family, probe)
    _process_version(detection)
    if chat:
        detection.stream = chat_probe(detection, model, api_key)
    return detection


def chat_probe(detection: Detection, model: str | None, api_key: str | None = None) -> dict[str, Any]:
    """One tiny streamed request: what the stream really carries (it touches the engine's cache)."""
    model_id = model or (detection.models[0] if detection.models else "default")
    body = {
        "model": model_id,
        "messages": [{"role": "user", "content": "Reply with the single word: ready"}],
        "max_tokens": 8,
        "temperature": 0.0,
    }
    timeouts = Timeouts(connect_s=5.0, deadline_s=120.0)
    with StreamingClient(detection.base_url, api_key=api_key, timeouts=timeouts) as client:
        record = client.chat(body)
    return {"model": model_id, **observed_stream(record)}


# ------------------------------------------------------------------------------------------ CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-asiai detect",
        description="Name the engine family, version and capabilities of a running server.",
    )
    parser.add_argument("url", help="base URL, e.g. http://127.0.0.1:8080 or http://127.0.0.1:1234/v1")
    parser.add_argument("--json", action="store_true", help="print the full detection as JSON")
    parser.add_argument("--chat", action="store_true", help="also send one tiny streamed request")
    parser.add_argument("--model", default=None, help="model id for --chat (default: the first listed)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per metadata request (default 5)")
    parser.add_argument("--api-key-env", metavar="NAME", default=None, help="send the key in this environment variable")
    return parser


def _summary(d: Detection) -> list[str]:
    caps = d.capabilities
    named = d.kind if d.recognised else "openai (unrecognised OpenAI-compatible server)"
    lines = [
        f"{d.base_url}: {named}" + (f" {d.version}" if d.version else " (version unknown)"),
        f"  evidence: {d.evidence or 'no family signature matched'}",
    ]
    if d.pid is not None:
        lines.append(f"  process: pid {d.pid}: {' '.join(d.command)[:160]}")
    lines.append(
        "  reports: "
        + ", ".join(
            [
                f"usage chunk {caps.get('usage_chunk')}",
                f"cached tokens {caps.get('cached_field') or 'unreported'}",
                f"timings {caps.get('timings')}",
                f"reasoning field {caps.get('reasoning_field')}",
            ]
        )
    )
    lines.append(
        "  endpoints: "
        + ", ".join(
            [
                f"health {caps.get('health')}",
                f"/slots {caps.get('slots')}",
                f"/metrics {caps.get('metrics')} ({len(caps.get('metric_names') or [])} names)",
                f"/tokenize {caps.get('tokenize')}",
            ]
        )
    )
    lines.append(f"  cold runs: {caps.get('cold_method')}; thinking off: {json.dumps(caps.get('thinking_off'))}")
    if d.stream is not None:
        lines.append(f"  stream: {json.dumps(d.stream)}")
    return lines


def main(argv: list[str]) -> int:
    """Entry point of ``pytest-asiai detect``: 0 when a family is named, 1 when unreachable or generic."""
    args = _parser().parse_args(argv)
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    detection = detect(args.url, timeout_s=args.timeout, chat=args.chat, model=args.model, api_key=api_key)
    if args.json:
        print(json.dumps(detection.to_dict(), indent=1))
    elif detection.reachable:
        print("\n".join(_summary(detection)))
    if not detection.reachable:
        print(f"pytest-asiai detect: {args.url}: unreachable: {detection.error}", file=sys.stderr)
    elif not detection.recognised:
        print(f"pytest-asiai detect: {args.url}: no engine family recognised (generic OpenAI server)", file=sys.stderr)
    return 0 if detection.recognised else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

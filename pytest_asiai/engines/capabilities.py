"""The capability probe: what a running engine exposes, measured at engine start without generating.

The family says what its engine documents (usage chunk, cached-token field, reasoning field,
``timings``); the probe checks the metadata endpoints for real (health, ``/slots``, ``/metrics`` and
its metric names, ``/tokenize``, ``/props``). Nothing here sends a chat request: a probe must not
change the cache state the protocol measures. Stream facts are confirmed from real streams by
:func:`observed_stream` (``pytest-asiai detect`` sends one tiny request; the smoke protocol's records
confirm them for a case).
"""

from __future__ import annotations

from typing import Any

from pytest_asiai.engines import prometheus
from pytest_asiai.engines.base import EngineFamily
from pytest_asiai.engines.probe import Probe
from pytest_asiai.wire.records import RequestRecord

#: Endpoints checked at engine start, in the order the report lists them.
PROBED = ("health", "slots", "metrics", "tokenize", "props")


def _slots(probe: Probe) -> bool:
    return isinstance(probe.json("/slots"), list)


def _metrics(probe: Probe, family: EngineFamily) -> tuple[bool, list[str]]:
    answer = probe.get(family.metrics_path or "/metrics")
    if answer is None or not answer.ok:
        return False, []
    found = prometheus.names(answer.text)
    return bool(found), found


def _tokenize(probe: Probe) -> bool:
    answer = probe.request("POST", "/tokenize", {"content": "hello world"})
    body = answer.json() if answer is not None and answer.ok else None
    return isinstance(body, dict) and isinstance(body.get("tokens"), list)


def _health(probe: Probe, family: EngineFamily) -> str | None:
    """The health path that answers 200 (the family's, else ``/v1/models``), or None."""
    for path in dict.fromkeys((family.health_path, "/v1/models")):
        answer = probe.get(path)
        if answer is not None and answer.ok:
            return path
    return None


def probe_endpoints(probe: Probe, family: EngineFamily) -> dict[str, Any]:
    """What the metadata endpoints answered (one GET or POST each)."""
    has_metrics, names = _metrics(probe, family)
    return {
        "health": _health(probe, family),
        "slots": _slots(probe),
        "metrics": has_metrics,
        "metric_names": names,
        "tokenize": _tokenize(probe),
        "props": bool(probe.json_dict("/props")),
    }


def capabilities(family: EngineFamily, probe: Probe) -> dict[str, Any]:
    """Documented facts of the family, overlaid with what the endpoints answered."""
    caps = family.describe()
    if not probe.reachable:
        caps["probed"] = []
        caps["probe_error"] = next(iter(probe.errors.values()), "no answer")
        return caps
    caps.update(probe_endpoints(probe, family))
    caps["probed"] = list(PROBED)
    return caps


def observed_stream(record: RequestRecord) -> dict[str, Any]:
    """Stream facts seen in one real response (usage chunk, cached field, timings, reasoning)."""
    return {
        "ok": record.ok,
        "error": record.error,
        "usage_chunk": record.completion_tokens is not None,
        "cached_field": record.cached_source,
        "timings": record.timings is not None,
        "reasoning_seen": record.reasoning_chars > 0,
        "chunks": record.chunks,
    }

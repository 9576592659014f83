"""Request records to and from JSON-safe dicts, with the derived metrics alongside."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from . import metrics
from .records import RequestRecord, ToolCall

_FIELDS = {f.name for f in fields(RequestRecord)}


def record_to_dict(record: RequestRecord) -> dict[str, Any]:
    """Every raw field, plus ``ok``, ``chunks`` and the derived metrics under ``metrics``."""
    out = asdict(record)
    out["token_chunk_ms"] = list(record.token_chunk_ms)
    out["tool_calls"] = [asdict(tc) for tc in record.tool_calls]
    out["timings"] = dict(record.timings) if record.timings is not None else None
    out["ok"] = record.ok
    out["chunks"] = record.chunks
    out["metrics"] = metrics.derived(record)
    return out


def record_from_dict(data: Mapping[str, Any]) -> RequestRecord:
    """Rebuild a record from :func:`record_to_dict` output (unknown keys are ignored)."""
    kwargs = {k: v for k, v in data.items() if k in _FIELDS}
    kwargs["token_chunk_ms"] = tuple(kwargs.get("token_chunk_ms") or ())
    kwargs["tool_calls"] = tuple(ToolCall(**tc) for tc in kwargs.get("tool_calls") or ())
    return RequestRecord(**kwargs)

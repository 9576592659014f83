"""Request records to and from JSON-safe dicts, with the derived metrics alongside.

JSON-safe means strictly JSON: an engine may send ``NaN``, ``Infinity`` or a 400-digit count (Python's
JSON reader accepts them), and one such value made the final report write raise. Such a value is
"not measured": it becomes ``null`` and its text is kept under ``unmeasurable`` (issue 14 item 2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from typing import Any

from pytest_asiai.measure import metrics
from pytest_asiai.wire.records import RequestRecord, ToolCall

_FIELDS = {f.name for f in fields(RequestRecord)}
MAX_INTEGER = 2**53
"""Beyond this an integer loses precision as a float (and a 400-digit one overflows float arithmetic)."""
_NUMBER_FIELDS = tuple(
    f.name for f in fields(RequestRecord) if f.name.endswith(("_ms", "_tokens")) and f.name != "request_max_tokens"
)


def bad_number(value: object) -> bool:
    """True for a value no report can hold as a measurement: inf, nan, or an integer beyond 2**53."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, int) and abs(value) > MAX_INTEGER


def _raw_text(value: object) -> str:
    """``nan``, ``inf``, or the first digits of a huge integer (converting 4300+ digits raises)."""
    if isinstance(value, int) and value.bit_length() > 14_000:
        return f"integer of {value.bit_length()} bits"
    text = repr(value)
    return text[:40] + ("…" if len(text) > 40 else "")


def json_safe(obj: Any, raw: dict[str, str] | None = None, where: str = "") -> Any:
    """A copy of ``obj`` in which every :func:`bad_number` is None (its text goes to ``raw[where]``)."""
    if bad_number(obj):
        if raw is not None:
            raw[where or "(value)"] = _raw_text(obj)
        return None
    if isinstance(obj, Mapping):
        return {k: json_safe(v, raw, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v, raw, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


MAX_DIGITS = 20
"""Recordings hold no integer longer than this (5000 digits crashed six tools)."""


class StrictJSONError(ValueError):
    """A JSON text no measurement file may hold: NaN/Infinity, 1e400, a huge integer, deep nesting."""


def _constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not a number JSON allows (a measurement must be finite)")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"{text} is out of range (a measurement must be finite)")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise StrictJSONError(f"integer of {len(text)} digits (at most {MAX_DIGITS})")
    return int(text)


def loads_strict(text: str) -> Any:
    """Parse JSON refusing NaN, Infinity, out-of-range floats, huge integers and deep nesting.

    Python's reader accepts all of them; each one later crashed a report write, a comparison or
    every tool reading the file. Raises :class:`StrictJSONError` (a ValueError) with a one-line reason.
    """
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise StrictJSONError("arrays or objects nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def loads_lenient(text: str) -> Any:
    """Parse JSON, turning NaN, Infinity and huge numbers into None (``rebuild`` reads old logs so)."""
    try:
        return json_safe(json.loads(text, parse_constant=lambda _: None))
    except RecursionError:
        raise StrictJSONError("arrays or objects nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and Python's limit on integer digits
        raise StrictJSONError(f"not JSON: {exc}") from None


def clean_record(record: RequestRecord) -> tuple[RequestRecord, dict[str, str]]:
    """The record with every unusable number set to None, and the text of what was dropped."""
    raw: dict[str, str] = {}
    changes: dict[str, Any] = {}
    for name in _NUMBER_FIELDS:
        value = getattr(record, name)
        if bad_number(value):
            raw[name] = _raw_text(value)
            changes[name] = None
    if any(bad_number(t) for t in record.token_chunk_ms):
        raw["token_chunk_ms"] = "non-finite offsets dropped"
        changes["token_chunk_ms"] = tuple(t for t in record.token_chunk_ms if not bad_number(t))
    if record.timings is not None:
        before = len(raw)
        timings = json_safe(dict(record.timings), raw, "timings")
        if len(raw) > before:
            changes["timings"] = timings
    return (replace(record, **changes) if changes else record), raw


def record_to_dict(record: RequestRecord) -> dict[str, Any]:
    """Every raw field, plus ``ok``, ``chunks`` and the derived metrics under ``metrics``.

    Unusable numbers (:func:`bad_number`) are ``null`` and listed under ``unmeasurable`` with their text.
    """
    record, raw = clean_record(record)
    out = asdict(record)
    del out["resent"]  # a transport detail: endurance reports it per turn (transport_retries)
    out["token_chunk_ms"] = list(record.token_chunk_ms)
    out["tool_calls"] = [asdict(tc) for tc in record.tool_calls]
    out["timings"] = dict(record.timings) if record.timings is not None else None
    out["ok"] = record.ok
    out["chunks"] = record.chunks
    out["metrics"] = json_safe(metrics.derived(record), raw, "metrics")
    if raw:
        out["unmeasurable"] = raw
    return out


def record_from_dict(data: Mapping[str, Any]) -> RequestRecord:
    """Rebuild a record from :func:`record_to_dict` output (unknown keys are ignored)."""
    kwargs = {k: v for k, v in data.items() if k in _FIELDS}
    kwargs["token_chunk_ms"] = tuple(kwargs.get("token_chunk_ms") or ())
    kwargs["tool_calls"] = tuple(ToolCall(**tc) for tc in kwargs.get("tool_calls") or ())
    return RequestRecord(**kwargs)

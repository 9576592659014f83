"""What a failed request says: the engine's own message, and the kind of a transport failure.

Shared by the stream accumulator (pytest_asiai/wire/stream.py) and the client (pytest_asiai/wire/client.py)
so an error reads the same whichever transport met it.
"""

from __future__ import annotations

import json

import h11

from pytest_asiai.wire.sse import SSELineTooLong

__all__ = ["describe", "engine_message", "error_kind", "http_error_message"]

_MAX_ERROR_TEXT = 300


def engine_message(error: object) -> str:
    """The human message out of an engine's ``error`` value (object, string or anything else)."""
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or error.get("msg")
        if message:
            return str(message)
        return json.dumps(error)[:_MAX_ERROR_TEXT]
    return str(error)[:_MAX_ERROR_TEXT]


def http_error_message(body: bytes) -> str:
    """``error.message`` (or FastAPI's ``detail``) from a JSON error body, else the body's start."""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:_MAX_ERROR_TEXT]
    if isinstance(parsed, dict):
        for key in ("error", "detail", "message"):
            if parsed.get(key):
                return engine_message(parsed[key])
    return text[:_MAX_ERROR_TEXT]


def error_kind(exc: Exception) -> str:
    """Map a failure after the connect to one of ``records.ERROR_KINDS``."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, h11.RemoteProtocolError | SSELineTooLong):
        return "protocol"
    return "disconnect"


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

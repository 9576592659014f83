"""Keep secrets out of everything the plugin writes: reports, event logs and spools.

Reports are shared and committed as baselines, so an API key must never reach them. engines.toml
names the key by its environment variable (``api_key_env``) and only the name is reported; the
Authorization header is built at request time and never stored. As a second line of defence every
string written is scrubbed of the keys' values and of values given to ``--api-key``-style launch
arguments (a managed command may expand ``${MY_KEY}``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
SECRET_FLAGS = ("--api-key", "--api_key", "--apikey", "--token", "--auth-token", "--hf-token")
MIN_SECRET_LEN = 4


class Redactor:
    """Replaces known secret values in any JSON-like object."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len)[::-1])

    @classmethod
    def from_env_names(cls, names: Iterable[str | None]) -> Redactor:
        """Secrets are the current values of these environment variables (unset ones are skipped)."""
        return cls(os.environ.get(name, "") for name in names if name)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def scrub(self, obj: Any) -> Any:
        """A copy of ``obj`` with secrets replaced; lists of arguments lose values after secret flags."""
        if isinstance(obj, str):
            return self.text(obj) if self.secrets else obj
        if isinstance(obj, dict):
            return {k: self.scrub(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return scrub_args([self.scrub(v) for v in obj])
        return obj


def scrub_args(args: list[Any]) -> list[Any]:
    """``["--api-key", "sk-1"]`` → ``["--api-key", "[redacted]"]``; also ``--api-key=sk-1``."""
    out = list(args)
    for i, arg in enumerate(out):
        if not isinstance(arg, str):
            continue
        flag, eq, _ = arg.partition("=")
        if flag.lower() in SECRET_FLAGS:
            if eq:
                out[i] = f"{flag}={REDACTED}"
            elif i + 1 < len(out) and isinstance(out[i + 1], str):
                out[i + 1] = REDACTED
    return out

"""Keep secrets out of everything the plugin writes: terminal, JUnit, reports, event logs, spools.

Reports are shared and committed as baselines, so an API key must never reach them. engines.toml
names the key by its environment variable (``api_key_env``) and only the name is reported; the
Authorization header is built at request time and never stored. Yet secrets come back in other
ways (issue 14 item 4): an engine echoes the header in a 401 body, a ``base_url`` carries
``user:password@``, a managed command holds a literal ``--secret-key X`` that the engine prints to
its log and the log tail lands in an error. One :class:`Redactor`, built from the cases
(:meth:`Redactor.for_cases`), knows every such value and scrubs every string that leaves the
process; patterns catch what no case declared (userinfo in any URL, ``Bearer`` tokens).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from pytest_asiai.config.matrix import Case

REDACTED = "[redacted]"
SECRET_NAME = re.compile(r"key|secret|token(?!s|iz)|passw|pwd|auth|credential|cookie|bearer", re.IGNORECASE)
"""A flag or variable name whose value is a secret: ``--api-key``, ``--secret-key``, ``HF_TOKEN``,
``--password`` (not ``--max-tokens`` nor ``--tokenizer``)."""
USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
URL_REDACTED = "redacted"
"""Userinfo becomes ``http://redacted@host``: brackets in a netloc make urlsplit raise (IPv6 syntax)."""
BEARER = re.compile(r"(?P<word>Bearer\s+)[A-Za-z0-9._~+/=-]{4,}", re.IGNORECASE)
MIN_SECRET_LEN = 4


def is_secret_flag(arg: str) -> bool:
    """``--api-key``, ``-api_key``, ``--secret-key``...: an option whose value must be hidden."""
    return arg.startswith("-") and bool(SECRET_NAME.search(arg.lstrip("-")))


def args_secrets(args: Sequence[str]) -> list[str]:
    """The literal values given to secret-looking flags (``--api-key X`` and ``--api-key=X``)."""
    out = []
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if not is_secret_flag(flag):
            continue
        if eq:
            out.append(value)
        elif i + 1 < len(args) and not args[i + 1].startswith("-"):
            out.append(args[i + 1])
    return out


def url_secrets(url: str | None) -> list[str]:
    """The password (and ``user:password``) of a URL's userinfo."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if parts.password is None:
        return []
    return [parts.password, unquote(parts.password), f"{parts.username}:{parts.password}"]


class Redactor:
    """Replaces known secret values, URL userinfo and bearer tokens in any JSON-like object."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len)[::-1])

    @classmethod
    def from_env_names(cls, names: Iterable[str | None]) -> Redactor:
        """Secrets are the current values of these environment variables (unset ones are skipped)."""
        return cls(os.environ.get(name, "") for name in names if name)

    @classmethod
    def for_cases(cls, cases: Iterable[Case]) -> Redactor:
        """Every secret the cases hold: API keys, URL passwords, secret launch arguments and env values."""
        secrets: list[str] = []
        for case in cases:
            secrets += [case.api_key or "", *url_secrets(case.base_url)]
            if case.managed is not None:
                secrets += args_secrets(case.managed.command)
                secrets += env_secrets(case.managed.env)
        return cls(secrets)

    def text(self, value: str) -> str:
        if "://" in value:
            value = USERINFO.sub(lambda m: f"{m.group('scheme')}{URL_REDACTED}@", value)
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if "earer" in value:
            value = BEARER.sub(lambda m: f"{m.group('word')}{REDACTED}", value)
        return value

    def scrub(self, obj: Any) -> Any:
        """A copy of ``obj`` with secrets replaced; lists of arguments lose values after secret flags."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self.scrub(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return scrub_args([self.scrub(v) for v in obj])
        return obj


def env_secrets(env: Mapping[str, str]) -> list[str]:
    """Values of environment variables whose name looks secret (``HF_TOKEN``, ``OPENAI_API_KEY``)."""
    return [value for name, value in env.items() if SECRET_NAME.search(name)]


def scrub_args(args: list[Any]) -> list[Any]:
    """``["--api-key", "sk-1"]`` → ``["--api-key", "[redacted]"]``; also ``--api-key=sk-1``."""
    out = list(args)
    for i, arg in enumerate(out):
        if not isinstance(arg, str):
            continue
        flag, eq, _ = arg.partition("=")
        if is_secret_flag(flag):
            if eq:
                out[i] = f"{flag}={REDACTED}"
            elif i + 1 < len(out) and isinstance(out[i + 1], str) and not out[i + 1].startswith("-"):
                out[i + 1] = REDACTED
    return out

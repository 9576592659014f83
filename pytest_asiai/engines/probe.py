"""Cached look-ups of a server's metadata endpoints, shared by detection, version and capability probes.

Detection asks many families "is this you?"; each answer reads a few endpoints. The probe fetches
each endpoint once and remembers the answer (including "no answer"), so detecting a server costs a
handful of GETs whatever the number of families. URLs are resolved against the server root: a base
URL given as ``http://h:1234/v1`` keeps its port and still finds ``/health`` at ``http://h:1234/health``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

#: LM Studio answers unknown endpoints with HTTP 200 and this error text: never a healthy answer.
LMSTUDIO_UNKNOWN = "Unexpected endpoint or method"


def server_root(base_url: str) -> str:
    """``scheme://host:port[/prefix]`` without a trailing ``/v1`` (endpoints hang off the root)."""
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def port_of(base_url: str) -> int | None:
    """The TCP port of a base URL: explicit, else the scheme's default; a path never hides it."""
    parts = urlsplit(base_url.strip())
    try:
        port = parts.port
    except ValueError:
        return None
    if port is not None:
        return port
    return {"http": 80, "https": 443}.get(parts.scheme)


def host_of(base_url: str) -> str:
    return urlsplit(base_url.strip()).hostname or ""


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The bearer header for engines behind a key (probes must see what requests see)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


@dataclass(frozen=True, slots=True)
class Answer:
    """One endpoint's answer: status, headers (lower-case names) and body text."""

    status: int
    headers: dict[str, str]
    text: str

    @property
    def ok(self) -> bool:
        """2xx and not LM Studio's "unexpected endpoint" 200."""
        return 200 <= self.status < 300 and LMSTUDIO_UNKNOWN not in self.text[:300]

    def json(self) -> Any:
        """The parsed body, or None when it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None


class Probe:
    """Fetches a server's endpoints once each; every failure is an answer of None, never an exception."""

    def __init__(self, http: httpx.Client, base_url: str) -> None:
        self.http = http
        self.base_url = base_url
        self.root = server_root(base_url)
        self._cache: dict[tuple[str, str], Answer | None] = {}
        self.errors: dict[str, str] = {}

    def url(self, path: str) -> str:
        return self.root + path

    def request(self, method: str, path: str, body: Any = None) -> Answer | None:
        key = (method, path if body is None else f"{path} {json.dumps(body, sort_keys=True)}")
        if key not in self._cache:
            self._cache[key] = self._fetch(method, path, body)
        return self._cache[key]

    def get(self, path: str) -> Answer | None:
        return self.request("GET", path)

    def _fetch(self, method: str, path: str, body: Any) -> Answer | None:
        try:
            response = self.http.request(method, self.url(path), json=body)
        except httpx.HTTPError as exc:
            self.errors[f"{method} {path}"] = f"{type(exc).__name__}: {exc}"
            return None
        headers = {k.lower(): v for k, v in response.headers.items()}
        return Answer(response.status_code, headers, response.text)

    def json(self, path: str) -> Any:
        """The JSON body of a successful GET, else None."""
        answer = self.get(path)
        return answer.json() if answer is not None and answer.ok else None

    def json_dict(self, path: str) -> dict[str, Any]:
        value = self.json(path)
        return value if isinstance(value, dict) else {}

    @property
    def reachable(self) -> bool:
        """True when the OpenAI model listing answered at all (any status)."""
        return self.get("/v1/models") is not None

    def models(self) -> list[dict[str, Any]]:
        """Entries of ``/v1/models`` (``data``), or an empty list."""
        data = self.json_dict("/v1/models").get("data")
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []

    def owned_by(self) -> set[str]:
        """The ``owned_by`` values of the model listing, lower-cased."""
        return {str(m["owned_by"]).lower() for m in self.models() if m.get("owned_by")}

    def header(self, path: str, name: str) -> str | None:
        answer = self.get(path)
        return answer.headers.get(name.lower()) if answer is not None else None

"""engines.toml → the case matrix: one case per engine × model × MTP setting.

The file is validated against the JSON Schema shipped in ``schemas/engines.schema.json`` and then
against the rules a schema cannot express (exactly one of ``base_url`` and ``managed``, unique
names). Every problem becomes a :class:`MatrixError` whose text is one line: the file, the key path
and what is wrong, so the plugin can turn it into a usage error (exit code 4) without a traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Where a managed engine may bind without ``expose = true`` (never all interfaces by accident)."""
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
NAMED = re.compile(r"(?<![{$])\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
"""A ``{name}`` placeholder (not ``${ENV}``, not a template's ``{{name}}``)."""
LAUNCH_PLACEHOLDERS = ("host", "port", "model_path", "model_id", "cache_dir", "rootdir")
PATH_PLACEHOLDERS = ("model_id", "cache_dir", "rootdir")
MAX_INTEGER = 2**53
"""Integers beyond this are refused where they enter: JSON readers and float arithmetic lose them."""
BOM = "\ufeff"


class MatrixError(Exception):
    """A one-line, user-facing problem with an engines.toml file."""


@dataclass(frozen=True, slots=True)
class ManagedSpec:
    """How the plugin starts an engine itself; ``{host}`` and ``{port}`` are filled at launch."""

    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    health_path: str | None = None
    """Polled until it answers 200; None: the engine family's (llama.cpp /health, else /v1/models)."""
    startup_timeout_s: float = 120.0
    host: str = "127.0.0.1"
    port: int = 0


@dataclass(frozen=True, slots=True)
class Case:
    """One engine × model × MTP combination: the unit every test is parametrized over."""

    engine: str
    model: str
    mtp: str
    kind: str | None = None
    model_id: str = ""
    model_path: str | None = None
    base_url: str | None = None
    managed: ManagedSpec | None = None
    api_key_env: str | None = None
    profile: str | None = None
    request: Mapping[str, Any] = field(default_factory=dict)
    thinking: str | None = None
    context: int | None = None
    gates: Mapping[str, float | bool] = field(default_factory=dict)
    burst_sizes: tuple[int, ...] | None = None
    """engines.toml ``burst_sizes`` (model, else engine); None: the session's default sizes."""
    connect_timeout_s: float = 10.0
    deadline_s: float = 600.0
    source: str = ""
    replay: Mapping[str, Any] | None = None
    """Recorded results this case is replayed from (no engine is contacted)."""

    @property
    def id(self) -> str:
        """The readable test id, e.g. ``llamacpp-smollm2-135m-mtp_off``."""
        return f"{self.engine}-{self.model}-mtp_{self.mtp}"

    @property
    def api_key(self) -> str | None:
        """The API key, read from the environment variable named in engines.toml."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    @property
    def host_group(self) -> str:
        """Where the engine lives: cases of one host must never run concurrently (SOLO)."""
        if self.replay is not None:
            return f"replay:{self.engine}"
        if self.managed is not None or not self.base_url:
            return "local"
        host = urlsplit(self.base_url).hostname or ""
        return "local" if host in LOCAL_HOSTS else host

    def describe(self) -> dict[str, Any]:
        """JSON-safe description for reports; the API key appears by variable name only."""
        return {
            "id": self.id,
            "engine": self.engine,
            "kind": self.kind,
            "model": self.model,
            "model_id": self.model_id,
            "mtp": self.mtp,
            "base_url": self.base_url,
            "managed": self.managed is not None,
            "launch_args": list(self.managed.command) if self.managed else None,
            "exposed": self.managed.host if self.managed and self.managed.host not in LOOPBACK_HOSTS else None,
            "api_key_env": self.api_key_env,
            "profile": self.profile,
            "request": dict(self.request),
            "thinking": self.thinking,
            "burst_sizes": list(self.burst_sizes) if self.burst_sizes else None,
            "source": self.source,
        }


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("pytest_asiai").joinpath("schemas/engines.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def key_path(parts: Iterable[str | int]) -> str:
    """Render a JSON path as ``engines[0].models[1].mtp``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_document(doc: Mapping[str, Any], source: str) -> None:
    """Raise MatrixError for the first schema violation, naming its key path."""
    validator = jsonschema.Draft202012Validator(_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is None:
        return
    where = key_path(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties":
        message = message.replace("Additional properties are not allowed", "unknown key")
    raise MatrixError(f"{source}: {where}: {message}")


def _expand(text: str, values: Mapping[str, str]) -> str:
    """Fill ``${ENV}`` / ``${ENV:-default}`` and the ``{name}`` placeholders we know."""
    text = PLACEHOLDER.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), text)
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _walk(obj: Any, path: tuple[str | int, ...] = ()) -> Iterable[tuple[tuple[str | int, ...], Any]]:
    """Every value of a parsed document with its key path (iteratively: no recursion limit)."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [(path, obj)]
    while stack:
        where, value = stack.pop()
        yield where, value
        if isinstance(value, Mapping):
            stack.extend(((*where, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*where, i), v) for i, v in enumerate(value))


def _check_numbers(doc: Mapping[str, Any], source: str) -> None:
    """inf/nan (TOML allows them) and integers too large to compute with are refused, by key path."""
    for where, value in _walk(doc):
        if isinstance(value, float) and not math.isfinite(value):
            raise MatrixError(f"{source}: {key_path(where)}: {value!r} is not a finite number")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
            raise MatrixError(f"{source}: {key_path(where)}: integer too large (limit {MAX_INTEGER})")


def _check_url(url: str, where: str) -> None:
    """What httpx would choke on at run time: a bad port, a space, no host."""
    if any(ch.isspace() for ch in url):
        raise MatrixError(f"{where}: {url!r} contains a space")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise MatrixError(f"{where}: {url!r}: bad port ({exc})") from None
    if not parts.hostname:
        raise MatrixError(f"{where}: {url!r} has no host")


def _check_text(text: str, where: str, known: Sequence[str]) -> None:
    """``${VAR}`` must be set (or carry a ``:-default``); ``{name}`` must be a placeholder we fill."""
    for m in PLACEHOLDER.finditer(text):
        if m.group(2) is None and m.group(1) not in os.environ:
            raise MatrixError(
                f"{where}: environment variable {m.group(1)} is not set (set it, or write ${{{m.group(1)}:-default}})"
            )
    for m in NAMED.finditer(PLACEHOLDER.sub("", text)):
        if m.group(1) not in known:
            raise MatrixError(
                f"{where}: unknown placeholder {{{m.group(1)}}} (known: {', '.join('{' + k + '}' for k in known)})"
            )


def _check_gates(gates: Mapping[str, Any], where: str) -> None:
    from pytest_asiai.gates.thresholds import threshold_problem  # thresholds imports this module

    for name, value in gates.items():
        problem = threshold_problem(name, value)
        if problem is not None:
            raise MatrixError(f"{where}.{name}: {problem}")


def _check_managed(spec: Mapping[str, Any], model: Mapping[str, Any], where: str) -> None:
    host = spec.get("host", "127.0.0.1")
    if host not in LOOPBACK_HOSTS and not spec.get("expose", False):
        raise MatrixError(
            f"{where}.managed.host: {host!r} is not loopback: a managed engine binds to 127.0.0.1 unless "
            "the engine says expose = true"
        )
    health = spec.get("health_path")
    if health is not None and not health.startswith("/"):
        raise MatrixError(f"{where}.managed.health_path: {health!r} must start with '/'")
    for arg in spec["command"]:
        _check_text(arg, f"{where}.managed.command", LAUNCH_PLACEHOLDERS)
    for key, value in spec.get("env", {}).items():
        _check_text(value, f"{where}.managed.env.{key}", LAUNCH_PLACEHOLDERS)
    for arg in model.get("args", []):
        _check_text(arg, f"{where}.models.args", LAUNCH_PLACEHOLDERS)


def _check_values(doc: Mapping[str, Any], source: str) -> None:
    """Values the schema lets through but that would fail (or silently misbehave) at run time."""
    _check_numbers(doc, source)
    _check_gates(doc.get("gates", {}), f"{source}: gates")
    for i, engine in enumerate(doc["engines"]):
        where = f"{source}: engines[{i}]"
        if "base_url" in engine:
            _check_url(engine["base_url"], f"{where}.base_url")
        _check_gates(engine.get("gates", {}), f"{where}.gates")
        for j, model in enumerate(engine["models"]):
            _check_gates(model.get("gates", {}), f"{where}.models[{j}].gates")
            if "path" in model:
                _check_text(model["path"], f"{where}.models[{j}].path", PATH_PLACEHOLDERS)
            if "managed" in engine:
                _check_managed(engine["managed"], model, where)
                for variant in ("mtp_on", "mtp_off"):
                    for arg in model.get(variant, {}).get("args", []):
                        _check_text(arg, f"{where}.models[{j}].{variant}.args", LAUNCH_PLACEHOLDERS)


def _check_ids(cases: Sequence[Case], source: str) -> None:
    """Names may hold ``-``: engine ``a-b`` + model ``c`` and engine ``a`` + model ``b-c`` are one id."""
    first: dict[str, Case] = {}
    for case in cases:
        other = first.setdefault(case.id, case)
        if other is not case:
            raise MatrixError(
                f"{source}: case id {case.id!r} is made by engine {other.engine!r} (model {other.model!r}) and "
                f"engine {case.engine!r} (model {case.model!r}): rename one engine or model"
            )


def default_cache_dir() -> str:
    """Where scripts/setup-engine puts engines and models."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return os.environ.get("ASIAI_CACHE_DIR") or str(Path(base) / "pytest-asiai")


def _check_names(doc: Mapping[str, Any], source: str) -> None:
    seen: dict[str, int] = {}
    for i, engine in enumerate(doc["engines"]):
        if engine["name"] in seen:
            raise MatrixError(
                f"{source}: engines[{i}].name: duplicate engine name {engine['name']!r} "
                f"(first at engines[{seen[engine['name']]}])"
            )
        seen[engine["name"]] = i
        has_url, has_managed = "base_url" in engine, "managed" in engine
        if has_url == has_managed:
            problem = "both given" if has_url else "neither given"
            raise MatrixError(f"{source}: engines[{i}]: exactly one of base_url and managed is needed ({problem})")
        models: dict[str, int] = {}
        for j, model in enumerate(engine["models"]):
            if model["name"] in models:
                raise MatrixError(
                    f"{source}: engines[{i}].models[{j}].name: duplicate model name {model['name']!r} "
                    f"in engine {engine['name']!r}"
                )
            models[model["name"]] = j
            if has_managed and "path" not in model and "{model_path}" in " ".join(engine["managed"]["command"]):
                raise MatrixError(
                    f"{source}: engines[{i}].models[{j}].path: missing: the managed command uses {{model_path}}"
                )


def _mtp_settings(model: Mapping[str, Any]) -> list[str]:
    mtp = model.get("mtp", "off")
    return ["off", "on"] if mtp == "both" else [mtp]


def _case(
    engine: Mapping[str, Any], model: Mapping[str, Any], mtp: str, top: Mapping[str, Any], source: str, base_dir: Path
) -> Case:
    values = {"cache_dir": default_cache_dir(), "rootdir": str(base_dir)}
    model_id = model.get("id", model["name"])
    values["model_id"] = model_id
    model_path = _expand(model["path"], values) if "path" in model else None
    if model_path is not None:
        values["model_path"] = model_path
    variant = model.get(f"mtp_{mtp}", {})
    managed = None
    if "managed" in engine:
        spec = engine["managed"]
        args = [*spec["command"], *model.get("args", []), *variant.get("args", [])]
        managed = ManagedSpec(
            command=tuple(_expand(a, values) for a in args),
            env={k: _expand(v, values) for k, v in spec.get("env", {}).items()},
            health_path=spec.get("health_path"),
            startup_timeout_s=float(spec.get("startup_timeout_s", 120.0)),
            host=spec.get("host", "127.0.0.1"),
            port=int(spec.get("port", 0)),
        )
    request = {**engine.get("request", {}), **model.get("request", {}), **variant.get("request", {})}
    gates = {**top.get("gates", {}), **engine.get("gates", {}), **model.get("gates", {})}
    return Case(
        engine=engine["name"],
        model=model["name"],
        mtp=mtp,
        kind=engine.get("kind"),
        model_id=model_id,
        model_path=model_path,
        base_url=engine.get("base_url"),
        managed=managed,
        api_key_env=engine.get("api_key_env"),
        profile=model.get("profile", engine.get("profile", top.get("profile"))),
        request=request,
        thinking=model.get("thinking"),
        context=model.get("context"),
        gates=gates,
        burst_sizes=tuple(model.get("burst_sizes", engine.get("burst_sizes", ()))) or None,
        connect_timeout_s=float(engine.get("connect_timeout_s", 10.0)),
        deadline_s=float(engine.get("deadline_s", 600.0)),
        source=source,
    )


def cases_from_document(doc: Mapping[str, Any], source: str, base_dir: Path) -> list[Case]:
    """Validate a parsed engines.toml and expand it into cases, in file order."""
    validate_document(doc, source)
    _check_names(doc, source)
    _check_values(doc, source)
    cases = [
        _case(engine, model, mtp, doc, source, base_dir)
        for engine in doc["engines"]
        for model in engine["models"]
        for mtp in _mtp_settings(model)
    ]
    _check_ids(cases, source)
    return cases


def load_matrix(path: Path) -> list[Case]:
    """Read, validate and expand one engines.toml file."""
    source = str(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise MatrixError(f"{source}: not a regular file (a FIFO, device or directory is never read)")
        raw = path.read_bytes()
    except OSError as exc:
        raise MatrixError(f"{source}: cannot read the file: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8").removeprefix(BOM))
        return cases_from_document(doc, source, path.parent)
    except UnicodeDecodeError as exc:
        raise MatrixError(f"{source}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise MatrixError(f"{source}: arrays or tables nested too deeply") from None


def select_cases(
    cases: Sequence[Case], engines: Sequence[str], models: Sequence[str], mtp: Sequence[str]
) -> list[Case]:
    """Keep the cases matching every non-empty filter; a filter that matches nothing is a MatrixError.

    A typo in ``--asiai-engine`` must not turn a benchmark into a green run of skipped tests.
    """
    for option, label, wanted, attr in (
        ("--asiai-engine", "engines", engines, "engine"),
        ("--asiai-model", "models", models, "model"),
        ("--asiai-mtp", "mtp", mtp, "mtp"),
    ):
        available = list(dict.fromkeys(getattr(c, attr) for c in cases))
        for value in wanted:
            if value not in available:
                raise MatrixError(f"{option} {value!r} matches no case ({label}: {', '.join(available) or 'none'})")
    chosen = [
        c
        for c in cases
        if (not engines or c.engine in engines) and (not models or c.model in models) and (not mtp or c.mtp in mtp)
    ]
    if cases and not chosen:
        given = [f"{o} {v!r}" for o, vs in (("--asiai-engine", engines), ("--asiai-model", models)) for v in vs]
        given += [f"--asiai-mtp {v!r}" for v in mtp]
        raise MatrixError(f"{' '.join(given)} together match no case (cases: {', '.join(c.id for c in cases)})")
    return chosen

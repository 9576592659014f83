"""engines.toml's validation: the JSON Schema, then the rules a schema cannot express.

Schema: ``schemas/engines.schema.json``. Then: exactly one of ``base_url`` and ``managed``, unique
engine and model names, finite numbers, URLs httpx can use, ``${VAR}`` set, known ``{placeholders}``,
gate thresholds a gate reads, a managed engine bound to loopback unless ``expose = true``
(docs/hostile-input.md). Every problem is one :class:`MatrixError` line naming the file and key path;
the loader that calls these checks is ``config/matrix.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jsonschema

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Where a managed engine may bind without ``expose = true`` (never all interfaces by accident)."""
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
NAMED = re.compile(r"(?<![{$])\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
"""A ``{name}`` placeholder (not ``${ENV}``, not a template's ``{{name}}``)."""
LAUNCH_PLACEHOLDERS = ("host", "port", "model_path", "model_id", "cache_dir", "rootdir")
PATH_PLACEHOLDERS = ("model_id", "cache_dir", "rootdir")
MAX_INTEGER = 2**53
"""Integers beyond this are refused where they enter: JSON readers and float arithmetic lose them."""


class MatrixError(Exception):
    """A one-line, user-facing problem with an engines.toml file."""


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
    from pytest_asiai.gates.thresholds import threshold_problem  # late: thresholds imports the matrix

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


def check_values(doc: Mapping[str, Any], source: str) -> None:
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


def check_names(doc: Mapping[str, Any], source: str) -> None:
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

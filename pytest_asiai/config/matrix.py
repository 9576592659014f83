"""engines.toml → the case matrix: one case per engine × model × MTP setting.

The file is validated (``config/validate.py``: the JSON Schema ``schemas/engines.schema.json``, then
the rules a schema cannot express), then expanded into cases: placeholders filled, MTP settings
multiplied out, case ids checked unique. Every problem becomes a :class:`MatrixError` whose text is
one line: the file, the key path and what is wrong, so the plugin can turn it into a usage error
(exit code 4) without a traceback. The keys are documented in docs/engines-toml.md.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_asiai.config.validate import LOOPBACK_HOSTS, PLACEHOLDER, check_names, check_values, validate_document
from pytest_asiai.config.validate import MatrixError as MatrixError  # raised here too; importers know it from here

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
BOM = "\ufeff"


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
    pause_s: float = 0.0
    """engines.toml ``pause_s``: seconds to wait after each protocol request (asiai's ``pause``), for
    a server that stores its cache after the response (oMLX; engines-mlx.toml)."""
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


def _expand(text: str, values: Mapping[str, str]) -> str:
    """Fill ``${ENV}`` / ``${ENV:-default}`` and the ``{name}`` placeholders we know."""
    text = PLACEHOLDER.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), text)
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


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
        pause_s=float(engine.get("pause_s", 0.0)),
        source=source,
    )


def cases_from_document(doc: Mapping[str, Any], source: str, base_dir: Path) -> list[Case]:
    """Validate a parsed engines.toml and expand it into cases, in file order."""
    validate_document(doc, source)
    check_names(doc, source)
    check_values(doc, source)
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

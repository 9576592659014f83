"""The seed panel's five MLX servers, live, for tests: started exactly as engines-mlx.toml declares.

``./scripts/test`` runs ``./scripts/setup-mlx-engines`` (one cached venv per server, SmolLM2
converted to float32 safetensors) before the tests; when that set-up is missing, a test fails with
the instruction to run it, it is never skipped (a missing engine is missing work).

:func:`serve` launches one server through :mod:`pytest_asiai.engines.managed` (the same code the plugin
uses for ``managed`` engines: free loopback port, health wait, process-group stop), so a test
talks to the server a user's ``pytest --asiai-engines engines-mlx.toml`` would run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_asiai.config.matrix import Case, default_cache_dir, load_matrix
from pytest_asiai.engines.managed import EngineStartError, ManagedEngine

REPO = Path(__file__).resolve().parent.parent

#: The engines.toml names (and ``kind``s) of the five servers, in engines-mlx.toml order.
MLX_ENGINES: tuple[str, ...] = ("mlxlm", "rapidmlx", "vllm_mlx", "vmlx", "omlx")

#: Resolved at import: pytester points HOME at its temporary directory while a test runs.
CACHE_DIR = Path(default_cache_dir())
MLX_DIR = CACHE_DIR / "mlx"
MODEL_DIR = MLX_DIR / "models" / "smollm2-135m"
SETUP = "run ./scripts/setup-mlx-engines first"


def engines_file() -> Path:
    """engines-mlx.toml at the repository root."""
    return REPO / "engines-mlx.toml"


def require_setup(name: str) -> None:
    """Fail (never skip) when the server's venv or the converted model is missing."""
    if name not in MLX_ENGINES:
        raise ValueError(f"unknown MLX engine {name!r}; known: {', '.join(MLX_ENGINES)}")
    for path in (MLX_DIR / "venv" / name / ".asiai-stamp", MODEL_DIR / "model.safetensors"):
        if not path.exists():
            pytest.fail(f"{path} is missing: {SETUP}")


def case(name: str) -> Case:
    """The engine's case from engines-mlx.toml, with ``{cache_dir}`` resolved to the real cache."""
    previous = os.environ.get("ASIAI_CACHE_DIR")
    os.environ["ASIAI_CACHE_DIR"] = str(CACHE_DIR)
    try:
        cases = [c for c in load_matrix(engines_file()) if c.engine == name]
    finally:
        if previous is None:
            del os.environ["ASIAI_CACHE_DIR"]
        else:
            os.environ["ASIAI_CACHE_DIR"] = previous
    if len(cases) != 1:
        raise ValueError(f"{engines_file()}: expected one case for engine {name!r}, found {len(cases)}")
    return cases[0]


@contextmanager
def serve(name: str) -> Iterator[str]:
    """Start ``name`` as engines-mlx.toml declares it; yield its base URL; stop it at the end."""
    require_setup(name)
    engine = ManagedEngine(case(name), Path(tempfile.mkdtemp(prefix=f"asiai-{name}-")))
    try:
        try:
            base_url = engine.start()
        except EngineStartError as exc:
            pytest.fail(f"{exc} ({SETUP} if the venv is incomplete)")
        yield base_url
    finally:
        engine.stop()

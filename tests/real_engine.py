"""The real default engine for end-to-end tests: llama-server b11434 + SmolLM2-135M from the cache.

``./scripts/test`` runs ``./scripts/setup-engine`` first, so both are present; if they are not, the
tests fail with that instruction instead of being skipped (a missing engine is missing work).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_asiai.config.matrix import default_cache_dir

REPO = Path(__file__).resolve().parent.parent
SUITES = REPO / "suites"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


# Resolved at import: pytester points HOME at its temporary directory while a test runs.
CACHE_DIR = Path(default_cache_dir())


def cache_dir() -> Path:
    return CACHE_DIR


def llama_server() -> Path:
    path = cache_dir() / "bin" / "llama-server"
    if not path.exists():
        pytest.fail(f"{path} is missing: run ./scripts/setup-engine first")
    return path


def model_path() -> Path:
    path = cache_dir() / "models" / MODEL_FILE
    if not path.exists():
        pytest.fail(f"{path} is missing: run ./scripts/setup-engine first")
    return path


def engines_toml(
    *,
    name: str = "llamacpp",
    parallel: int = 1,
    ctx: int = 8192,
    extra_args: tuple[str, ...] = (),
    model_block: str = "",
    request: str = "",
) -> str:
    """An engines.toml with one managed llama-server case (profile smoke)."""
    args = ", ".join(f'"{a}"' for a in extra_args)
    command = (
        f'["{llama_server()}", "--model", "{{model_path}}", "--alias", "{{model_id}}", "--host", "{{host}}", '
        f'"--port", "{{port}}", "--threads", "2", "--ctx-size", "{ctx}", "--parallel", "{parallel}", '
        f'"--metrics"{", " + args if args else ""}]'
    )
    return (
        f'profile = "smoke"\n[[engines]]\nname = "{name}"\nkind = "llamacpp"\n{request}\n'
        f"[engines.managed]\ncommand = {command}\nstartup_timeout_s = 60\n"
        f'[[engines.models]]\nname = "smollm2-135m"\npath = "{model_path()}"\n{model_block}\n'
    )


def copy_suites(dest: Path, *names: str) -> None:
    """Copy the repository's suites (all, or the named files) into a pytester project."""
    for path in sorted(SUITES.glob("test_*.py")):
        if not names or path.name in names:
            shutil.copy(path, dest / path.name)

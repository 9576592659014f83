"""llama-server's version when ``/props`` does not carry it (issue 16: the prebuilt server showed "b0").

The ``xllamacpp`` wheel's server reports ``build_info: "b0-unknown"`` (its build number is not compiled
in; scripts/llama-server-xllamacpp): b0 is no build, so the version comes from the program serving the
port, run again with ``--version``. The compiled binary prints ``version: 0.6.0-dev (build 11434, commit
unknown)``; the wrapper prints ``version: 11549 (xllamacpp 2026.10.11549, prebuilt wheel)``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pytest_asiai.engines import family_for
from pytest_asiai.engines.llamacpp import parse_build_info
from pytest_asiai.engines.processes import matches

LLAMA = family_for("llamacpp")
NATIVE = Path(os.environ.get("ASIAI_CACHE_DIR", Path.home() / ".cache" / "pytest-asiai")) / "bin" / "llama-server"


def test_build_zero_is_no_version():
    assert parse_build_info("b0-unknown") is None
    assert parse_build_info("b11434-a184aaea") == "b11434"


def test_the_wrapper_is_recognised_and_names_the_prebuilt_wheel(tmp_path):
    script = tmp_path / "llama-server-xllamacpp"
    script.write_text(
        "import sys\nif '--version' in sys.argv:\n"
        "    print('version: 11549 (xllamacpp 2026.10.11549, prebuilt wheel)')\n"
    )
    argv = [sys.executable, str(script), "--model", "m.gguf", "--port", "8080"]
    assert matches(LLAMA.process_patterns, argv)
    assert LLAMA.version_from_process([sys.executable, str(script)]) == "b11549 (xllamacpp 2026.10.11549)"


@pytest.mark.skipif(not NATIVE.exists(), reason="needs ./scripts/setup-engine (the native llama-server)")
def test_the_native_binary_names_its_build():
    assert LLAMA.version_from_process([str(NATIVE)]) == "b11434"

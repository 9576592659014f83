"""Settings that change what an engine measures are stated in the report (issue 15 item 5e).

llama-server b11434 keeps a host-RAM prompt cache (``--cache-ram``/``-cram``, env
``LLAMA_ARG_CACHE_RAM``; default 8192 MiB, 0 disables it: common/arg.cpp, common/common.h). Its
``/props`` does not say, so the launch command and environment are the source; an engine the plugin
did not start is "unknown". benchmarks/llama_prompt_cache.py measures what the setting costs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_asiai.config.matrix import Case, ManagedSpec
from pytest_asiai.engines import family_for
from pytest_asiai.engines.handle import EngineHandle
from pytest_asiai.engines.managed import EngineManager

LLAMA = family_for("llamacpp")


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        (("llama-server", "-m", "x.gguf"), {}, "on (llama-server default, 8192 MiB)"),
        (("llama-server", "--cache-ram", "0"), {}, "off (--cache-ram 0)"),
        (("llama-server", "-cram", "2048"), {}, "on (--cache-ram 2048 MiB)"),
        (("llama-server", "--cache-ram=-1"), {}, "on (--cache-ram -1: no limit)"),
        (("llama-server",), {"LLAMA_ARG_CACHE_RAM": "0"}, "off (LLAMA_ARG_CACHE_RAM=0)"),
        (("llama-server", "--cache-ram", "zz"), {}, "unknown (--cache-ram 'zz' is not a number)"),
    ],
)
def test_llama_server_host_prompt_cache_is_read_from_the_launch(command, env, expected):
    assert LLAMA.launch_settings(command, env) == {"host_prompt_cache": expected}


def test_the_report_engine_block_states_the_setting_and_unmanaged_engines_say_unknown():
    managed = Case(
        engine="e", model="m", mtp="off", kind="llamacpp", model_id="m",
        managed=ManagedSpec(command=("llama-server", "--cache-ram", "0", "--port", "{port}")),
    )  # fmt: skip
    remote = Case(engine="r", model="m", mtp="off", kind="llamacpp", model_id="m", base_url="http://127.0.0.1:9")
    manager = EngineManager(Path("/nonexistent"))
    assert EngineHandle(managed, manager, lambda h: None).to_dict()["settings"] == {
        "host_prompt_cache": "off (--cache-ram 0)"
    }
    assert EngineHandle(remote, manager, lambda h: None).to_dict()["settings"] == {
        "host_prompt_cache": "unknown (engine not started by pytest-asiai)"
    }
    other = Case(engine="o", model="m", mtp="off", kind="ollama", model_id="m", base_url="http://127.0.0.1:9")
    assert EngineHandle(other, manager, lambda h: None).to_dict()["settings"] == {}

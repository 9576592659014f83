"""One request path: every suite's requests carry engines.toml ``request`` and the thinking switch.

Why (issue 13, "Done when"): each suite used to build its bodies its own way, and a recording server
showed burst dropping ``enable_thinking: false`` on 2 of 6 requests and endurance on all of them
(engines.toml's ``chat_template_kwargs`` replaced the thinking switch's instead of merging with it).
Here the scripted engine records every body of every built-in suite (``-m agentic``, ``-m burst``,
``-m toolcall``, ``-m endurance``, run by pytester on the smallest workloads) and each must hold
``enable_thinking: false`` (the llama.cpp family's dialect), ``house_flag`` and ``top_k``; only the
tool-call suite's deliberate thinking-on requests (the ablation's ``enable-on-*`` cells, the
``no_think_leak`` probe and the brief's ``thinking_on`` run) say ``enable_thinking: true``, and they
still carry the engines.toml fields. The precedence itself is documented in docs/requests.md and
checked layer by layer in tests/test_requests.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scripted_engine import ScriptedEngine

from pytest_asiai.toolcall.ablation import PROBE_PROMPT
from pytest_asiai.toolcall.instruct import RESEARCH_BRIEF

SUITES = Path(__file__).parent.parent / "suites"

ENGINES_TOML = """profile = "smoke"
[[engines]]
name = "scripted"
kind = "llamacpp"
base_url = "{base_url}"
deadline_s = 20
request = {{ chat_template_kwargs = {{ house_flag = true }}, top_k = 7 }}
[[engines.models]]
name = "m"
thinking = "off"
"""

#: Each suite, its suite file, and the options that keep its workload smallest.
RUNS = {
    "agentic": ("test_agentic.py", ()),
    "burst": ("test_burst.py", ("--asiai-burst-sizes=2", "--asiai-burst-runs=1")),
    "toolcall": ("test_toolcall.py", ()),
    "endurance": ("test_endurance.py", ("--asiai-endurance-turns=4",)),
}


def sets_thinking_itself(body: dict[str, Any]) -> bool:
    """A tool-call suite request that chooses thinking on purpose: an ``enable-on-*`` ablation cell
    (the only ones that send ``preserve_thinking``), or the probes and the brief, which run once with
    thinking off and once with it on (their bodies differ only by the switch)."""
    messages = body["messages"]
    cell = "preserve_thinking" in body.get("chat_template_kwargs", {})
    probe = messages[-1].get("content") == PROBE_PROMPT
    brief = messages[0].get("content") == RESEARCH_BRIEF.system
    return cell or probe or brief


@pytest.mark.parametrize("suite", RUNS)
def test_every_request_of_every_suite_carries_the_request_fields_and_the_thinking_switch(
    suite: str, pytester: pytest.Pytester, scripted_engine: ScriptedEngine
) -> None:
    filename, options = RUNS[suite]
    pytester.makefile(".toml", engines=ENGINES_TOML.format(base_url=scripted_engine.base_url))
    pytester.path.joinpath(f"suite_{filename}").write_text((SUITES / filename).read_text(encoding="utf-8"))
    pytester.runpytest("-m", suite, "-p", "no:randomly", "-o", "python_files=suite_*.py", *options)
    bodies = scripted_engine.requests
    assert bodies, f"-m {suite} sent no request"
    wrong = []
    for i, body in enumerate(bodies):
        kwargs = body.get("chat_template_kwargs", {})
        own = suite == "toolcall" and sets_thinking_itself(body)
        thinking = kwargs.get("enable_thinking")
        if (thinking is not False and not (own and thinking is True)) or kwargs.get("house_flag") is not True:
            wrong.append((i, kwargs))
        elif body.get("top_k") != 7:
            wrong.append((i, {"top_k": body.get("top_k")}))
    assert not wrong, f"-m {suite}: {len(wrong)} of {len(bodies)} requests lost a field: {wrong[:5]}"
    if suite == "toolcall":
        on = [b for b in bodies if b["chat_template_kwargs"]["enable_thinking"]]
        assert on and all(sets_thinking_itself(b) for b in on) and len(on) < len(bodies)

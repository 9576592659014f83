"""Probe calibration against SmolLM2's real tokenizer and chat template, without a server.

The MLX servers (engines-mlx.toml) have no ``/tokenize``, so the ``tiny`` profile is sized by two
probe requests whose ``usage.prompt_tokens`` the server counts with the model's tokenizer and chat
template. This test counts exactly as they do (``transformers``' ``apply_chat_template`` in the mlx-lm
venv of ``./scripts/setup-mlx-engines``, on the converted model's tokenizer.json and
tokenizer_config.json), in seconds instead of the minutes a CPU prefill takes. SmolLM2's template
inserts a default system prompt into a request without one: probes without a system message once
measured it as template, and the long request came out at 935 tokens instead of 1,000.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from mlx_engines import MLX_DIR, MODEL_DIR, require_setup

from pytest_asiai.agentic import calibrate as cal
from pytest_asiai.agentic.prompts import Corpus
from pytest_asiai.agentic.protocol import PROFILES
from pytest_asiai.wire.records import RequestRecord

COUNTER = """
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    ids = tok.apply_chat_template(json.loads(line), add_generation_prompt=True)
    print(len(ids["input_ids"] if hasattr(ids, "keys") else ids), flush=True)
"""
SALTS = ("9f3a61c0b27e5d48-r0", "03c1d5e7a9b2f468-r1", "e1e2e3e4e5e6e7e8-r0")


class SmolLM2:
    """Prompt tokens of a chat request, as the MLX servers count them (one subprocess, line protocol)."""

    def __init__(self) -> None:
        python = MLX_DIR / "venv" / "mlxlm" / "bin" / "python"
        self.proc = subprocess.Popen(
            [str(python), "-c", COUNTER, str(MODEL_DIR)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        self.sent: list[int] = []

    def count(self, system: str, user: str) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        self.proc.stdin.write(json.dumps(messages) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def send(self, system: str, user: str) -> RequestRecord:
        """A probe request as the server would answer it (``usage.prompt_tokens`` only)."""
        self.sent.append(self.count(system, user))
        return RequestRecord(started_at=0.0, prompt_tokens=self.sent[-1])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def smollm2() -> Iterator[SmolLM2]:
    require_setup("mlxlm")
    tokenizer = SmolLM2()
    yield tokenizer
    tokenizer.close()


@pytest.mark.parametrize("profile", ["tiny", "smoke"])
def test_probe_sizes_hold_on_smollm2s_own_template(smollm2, profile):
    p = PROFILES[profile]
    smollm2.sent.clear()
    fit = cal.probe_fit(smollm2.send, p)
    calibration = cal.plan(p, fit.counter(), "prompt_tokens", template_tokens=fit.template_tokens)
    corpus = Corpus(calibration.corpus.words)
    # What a request carries besides its texts: template (14) and salt (about 20), give or take the fit.
    assert 14 <= fit.template_tokens <= 60, fit
    for salt in SALTS:  # every repeat has its own salt: hex digits tokenize unevenly
        long = smollm2.count(corpus.system("A", salt), corpus.user("L"))
        assert long == pytest.approx(p.long_tokens, rel=0.03), (salt, long)
        for system in ("A", "B"):
            cold = smollm2.count(corpus.system(system, salt), corpus.user("X"))
            assert cold == pytest.approx(calibration.request_tokens(system, "X"), rel=0.03), (salt, system, cold)


def test_probes_cost_less_than_before_on_tiny(smollm2):
    """The probes were 40 and 400 words on every profile: about 750 SmolLM2 tokens, twice a ``tiny``
    cold request; now about 455, and under 1.5 cold requests."""
    tiny = PROFILES["tiny"]
    smollm2.sent.clear()
    fit = cal.probe_fit(smollm2.send, tiny)
    assert len(smollm2.sent) == 2 and sum(smollm2.sent) < 1.5 * (
        tiny.system_tokens + tiny.user_tokens + fit.template_tokens
    )
    assert sum(smollm2.sent) < 0.7 * 753, smollm2.sent

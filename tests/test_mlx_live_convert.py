"""scripts/gguf-to-safetensors: the SmolLM2 directory the MLX servers load is the GGUF's model.

The converter runs in its own venv (numpy, gguf, safetensors), made by ./scripts/setup-mlx-engines,
so these checks run there too, in a subprocess; the converted directory is the one the set-up wrote.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mlx_engines import MLX_DIR, MODEL_DIR, REPO, SETUP

CONVERTER = REPO / "scripts" / "gguf-to-safetensors"


def convert_python() -> Path:
    python = MLX_DIR / "venv" / "convert" / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: {SETUP}")
    return python


def run_in_converter_venv(code: str) -> str:
    """Run ``code`` with the converter loaded as module ``conv`` in its venv; return stdout."""
    prelude = (
        "import importlib.machinery, importlib.util, sys\n"
        f"loader = importlib.machinery.SourceFileLoader('conv', {str(CONVERTER)!r})\n"
        "spec = importlib.util.spec_from_loader('conv', loader)\n"
        "conv = importlib.util.module_from_spec(spec); loader.exec_module(conv)\n"
    )
    proc = subprocess.run([convert_python(), "-c", prelude + code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_unpermute_undoes_llama_cpps_rotary_interleave():
    """llama.cpp's convert_hf_to_gguf.py permute, written out here, then the converter's inverse."""
    out = run_in_converter_venv(
        "import numpy as np\n"
        "heads, head_dim, cols = 3, 8, 5\n"
        "hf = np.arange(heads * head_dim * cols, dtype=np.float32).reshape(heads * head_dim, cols)\n"
        "gguf = hf.reshape(heads, 2, head_dim // 2, cols).swapaxes(1, 2).reshape(hf.shape)\n"
        "assert not np.array_equal(gguf, hf)\n"
        "print(np.array_equal(conv.unpermute_rows(gguf, heads), hf))\n"
    )
    assert out.strip() == "True"


def test_tensor_names_map_to_hugging_face_llama_and_unknown_ones_to_none():
    names = ("blk.7.attn_q.weight", "token_embd.weight", "rope_freqs.weight")
    out = run_in_converter_venv(f"print(*(conv.hf_name(n) for n in {names!r}))\n")
    assert out.split() == ["model.layers.7.self_attn.q_proj.weight", "model.embed_tokens.weight", "None"]


def test_the_converted_smollm2_matches_the_gguf():
    if not (MODEL_DIR / "model.safetensors").exists():
        pytest.fail(f"{MODEL_DIR} is missing: {SETUP}")
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "llama" and config["torch_dtype"] == "float32"
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"]) == (30, 576, 9)
    assert (config["num_key_value_heads"], config["vocab_size"], config["tie_word_embeddings"]) == (3, 49152, True)
    tokenizer = json.loads((MODEL_DIR / "tokenizer.json").read_text())
    assert len(tokenizer["model"]["vocab"]) == 49152 and len(tokenizer["model"]["merges"]) == 48900
    special = {t["content"] for t in tokenizer["added_tokens"] if t["special"]}
    assert {"<|endoftext|>", "<|im_start|>", "<|im_end|>"} <= special
    tok_config = json.loads((MODEL_DIR / "tokenizer_config.json").read_text())
    assert (tok_config["bos_token"], tok_config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    assert "<|im_start|>" in tok_config["chat_template"]
    # 30 layers × 9 tensors + embeddings + final norm; float32 throughout (4 bytes × 134.5M weights).
    out = run_in_converter_venv(
        "import json\n"
        "from safetensors.numpy import load_file\n"
        f"t = load_file({str(MODEL_DIR / 'model.safetensors')!r})\n"
        "print(json.dumps([len(t), sorted({str(a.dtype) for a in t.values()}), sum(a.size for a in t.values())]))\n"
    )
    assert json.loads(out) == [272, ["float32"], 134_515_008]

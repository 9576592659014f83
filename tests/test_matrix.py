"""engines.toml → cases: expansion, placeholders, filters and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_asiai.config.matrix import MatrixError, load_matrix, select_cases

GOOD = """
profile = "smoke"
[[engines]]
name = "llamacpp"
kind = "llamacpp"
api_key_env = "ASIAI_TEST_KEY"
[engines.managed]
command = ["{cache_dir}/bin/llama-server", "-m", "{model_path}", "--port", "{port}"]
env = { GGML_X = "${ASIAI_TEST_ENV:-fallback}" }
[[engines.models]]
name = "small"
path = "/models/small.gguf"
args = ["--alias", "{model_id}"]
mtp = "both"
mtp_on = { args = ["--model-draft", "{model_path}"], request = { speculative = true } }
[[engines.models]]
name = "tiny"
id = "tiny-model-id"
path = "/models/tiny.gguf"
[[engines]]
name = "lmstudio"
base_url = "http://127.0.0.1:1234/v1"
profile = "full"
[[engines.models]]
name = "qwen"
request = { temperature = 0.2 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engines.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_engine_model_mtp_is_a_case(tmp_path, monkeypatch):
    monkeypatch.setenv("ASIAI_CACHE_DIR", "/cache")
    cases = load_matrix(write(tmp_path, GOOD))
    assert [c.id for c in cases] == [
        "llamacpp-small-mtp_off",
        "llamacpp-small-mtp_on",
        "llamacpp-tiny-mtp_off",
        "lmstudio-qwen-mtp_off",
    ]
    off, on, tiny, remote = cases
    assert off.managed is not None and on.managed is not None
    assert off.managed.command == (
        "/cache/bin/llama-server",
        "-m",
        "/models/small.gguf",
        "--port",
        "{port}",
        "--alias",
        "small",
    )
    assert on.managed.command[-2:] == ("--model-draft", "/models/small.gguf")
    assert on.request == {"speculative": True} and off.request == {}
    assert off.managed.env == {"GGML_X": "fallback"}
    assert tiny.model_id == "tiny-model-id"
    assert remote.managed is None and remote.base_url == "http://127.0.0.1:1234/v1"
    assert (off.profile, remote.profile) == ("smoke", "full")
    assert remote.request == {"temperature": 0.2}


def test_api_key_is_read_by_name_and_never_described(tmp_path, monkeypatch):
    monkeypatch.setenv("ASIAI_TEST_KEY", "sk-secret")
    case = load_matrix(write(tmp_path, GOOD))[0]
    assert case.api_key == "sk-secret"
    assert "sk-secret" not in repr(case.describe())
    assert case.describe()["api_key_env"] == "ASIAI_TEST_KEY"


def test_filters(tmp_path):
    cases = load_matrix(write(tmp_path, GOOD))
    assert [c.id for c in select_cases(cases, ["llamacpp"], [], ["on"])] == ["llamacpp-small-mtp_on"]
    assert [c.id for c in select_cases(cases, [], ["qwen", "tiny"], [])] == [
        "llamacpp-tiny-mtp_off",
        "lmstudio-qwen-mtp_off",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("engines = [", "invalid TOML"),
        (
            '[[engines]]\nname = "a"\nbase_url = "http://x:1"\nbogus = 1\n[[engines.models]]\nname = "m"\n',
            "engines[0]: unknown key ('bogus' was unexpected)",
        ),
        (
            '[[engines]]\nname = "a"\nbase_url = "http://x:1"\ndeadline_s = "soon"\n[[engines.models]]\nname = "m"\n',
            "engines[0].deadline_s: 'soon' is not of type 'number'",
        ),
        ('[[engines]]\nname = "a"\nbase_url = "http://x:1"\n', "engines[0]: 'models' is a required property"),
        (
            '[[engines]]\nname = "a"\nbase_url = "http://x:1"\n[[engines.models]]\nname = "m"\n'
            '[[engines]]\nname = "a"\nbase_url = "http://x:2"\n[[engines.models]]\nname = "m"\n',
            "engines[1].name: duplicate engine name 'a'",
        ),
        (
            '[[engines]]\nname = "a"\nbase_url = "http://x:1"\n[[engines.models]]\nname = "m"\n'
            '[[engines.models]]\nname = "m"\n',
            "engines[0].models[1].name: duplicate model name 'm'",
        ),
        (
            '[[engines]]\nname = "a"\n[[engines.models]]\nname = "m"\n',
            "engines[0]: exactly one of base_url and managed is needed (neither given)",
        ),
        (
            '[[engines]]\nname = "a"\nbase_url = "http://x:1"\n[[engines.models]]\nname = "m"\nmtp = "maybe"\n',
            "engines[0].models[0].mtp: 'maybe' is not one of ['off', 'on', 'both']",
        ),
        (
            '[[engines]]\nname = "a"\nbase_url = "http://x:1"\n[[engines.models]]\nname = "m"\n'
            "request = { max_tokens = 5 }\n",
            "engines[0].models[0].request",
        ),
        (
            '[[engines]]\nname = "a"\n[engines.managed]\ncommand = ["srv", "{model_path}"]\n'
            '[[engines.models]]\nname = "m"\n',
            "engines[0].models[0].path: missing",
        ),
    ],
)
def test_bad_files_give_one_line_naming_file_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(MatrixError) as info:
        load_matrix(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_unreadable_path(tmp_path):
    with pytest.raises(MatrixError, match=r"missing\.toml: cannot read the file"):
        load_matrix(tmp_path / "missing.toml")


def test_repository_default_matrix_is_valid():
    cases = load_matrix(Path(__file__).parent.parent / "engines.toml")
    assert cases and all(c.managed is not None for c in cases)

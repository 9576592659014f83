"""The protocol's phases and profiles, the prompt corpus, and token calibration (pure parts and HTTP)."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_asiai.agentic import calibrate as cal
from pytest_asiai.agentic.prompts import INSTRUCTION, LABELS, Corpus, body_text, text
from pytest_asiai.agentic.protocol import (
    PHASE_NAMES,
    PHASES,
    PROFILES,
    SIZE_TOLERANCE,
    dependencies,
    phase,
    phase_names_for,
)
from pytest_asiai.wire.records import RequestRecord

# ------------------------------------------------------------------------------------ protocol


def test_phases_run_in_protocol_order():
    assert PHASE_NAMES == (
        "cold",
        "warm",
        "prefix-test-1",
        "prefix-test-2",
        "prefix-test-3",
        "cold-prefix",
        "long-context",
        "long-prefix",
        "restart-prefix",
    )
    assert dependencies("cold") == () and dependencies("warm") == ("cold",)
    assert dependencies("long-prefix") == PHASE_NAMES[:7]


def test_each_phase_sends_what_it_is_designed_to_measure():
    sent = {p.name: (p.system, p.user) for p in PHASES}
    assert sent["warm"] == sent["cold"] == sent["restart-prefix"] == ("A", "X")
    # Three prefix tests: three user messages after the same system prompt, pt-3 a new one (not pt-1's).
    assert [sent[f"prefix-test-{i}"] for i in (1, 2, 3)] == [("A", "Y"), ("A", "X"), ("A", "Z")]
    assert sent["cold-prefix"] == ("B", "X")
    assert sent["long-context"] == sent["long-prefix"] == ("A", "L")
    assert [p.name for p in PHASES if p.cold] == ["cold", "cold-prefix"]
    assert [p.name for p in PHASES if p.reset] == ["cold"]
    assert [p.name for p in PHASES if p.long] == ["long-context", "long-prefix"]
    assert [p.name for p in PHASES if p.restart] == ["restart-prefix"]


def test_restart_prefix_needs_a_managed_engine():
    assert phase_names_for(managed=True) == PHASE_NAMES
    assert phase_names_for(managed=False) == PHASE_NAMES[:-1]


def test_unknown_phase_names_the_known_ones():
    with pytest.raises(KeyError, match="unknown phase 'hot'; phases are cold, warm, prefix-test-1"):
        phase("hot")


def test_profiles_have_asiai_sizes_and_smoke_fits_an_8k_context():
    full, smoke = PROFILES["full"], PROFILES["smoke"]
    assert (full.system_tokens, full.user_tokens, full.long_tokens) == (6000, 1500, 50000)
    assert (full.max_tokens, full.long_max_tokens) == (400, 200)
    # The long request and its answer stay under SmolLM2's 8192 tokens with a margin beyond the 5 % tolerance.
    assert smoke.long_tokens * (1 + SIZE_TOLERANCE) + smoke.long_max_tokens < 0.8 * 8192
    assert smoke.system_tokens + smoke.user_tokens < smoke.long_tokens


# -------------------------------------------------------------------------------------- prompts


def test_texts_have_exact_word_counts_and_the_right_ending():
    for which in LABELS:
        body = text(which, 123).removesuffix("\n\n" + INSTRUCTION)
        heading, _, rest = body.partition("\n")
        assert heading == f"[{LABELS[which]}]" and len(rest.split()) == 123
        assert text(which, 123).endswith(INSTRUCTION) == (which in "XYZL")
    assert text("A", 50) == text("A", 50)  # deterministic


def test_every_segment_has_a_unique_sentinel_and_texts_differ_from_their_first_word():
    long = body_text(LABELS["L"], 20000)
    sentinels = re.findall(r"\(segment-USER-L-\d+\)", long)
    assert len(sentinels) == len(set(sentinels)) > 400  # ~47 words per segment
    firsts = {text(w, 10).split()[0] for w in LABELS}
    assert len(firsts) == len(LABELS)
    assert text("A", 300).split("\n")[1] != text("B", 300).split("\n")[1]  # different prose, not just labels


def test_corpus_puts_the_salt_first():
    corpus = Corpus({w: 20 for w in LABELS})
    assert corpus.system("A", "s4lt-r0").startswith("s4lt-r0 [SYSTEM-A")
    assert corpus.system("B").startswith("[SYSTEM-B")
    assert corpus.user("L") == text("L", 20)


# ---------------------------------------------------------------------------------- calibration


def linear_counter(per_word: float, extra: int = 0) -> cal.Counter:
    return lambda content: round(len(content.split()) * per_word) + extra


@settings(max_examples=40, deadline=None)
@given(
    target=st.integers(min_value=200, max_value=60000),
    per_word=st.floats(min_value=0.6, max_value=3.0),
    extra=st.integers(min_value=0, max_value=50),
)
def test_fit_reaches_any_target_within_the_tolerance(target, per_word, extra):
    size = cal.fit_words(linear_counter(per_word, extra), "L", target)
    assert size.tokens == linear_counter(per_word, extra)(text("L", size.words))
    assert abs(size.tokens - target) <= max(per_word, cal.FIT_TOLERANCE * target)


def test_fit_with_a_character_based_tokenizer():
    for target in (250, 1000, 6000, 50000):
        size = cal.fit_words(lambda c: len(c) // 4, "X", target)
        assert abs(size.tokens - target) <= 0.005 * target


def test_plan_sizes_the_whole_long_request():
    profile = PROFILES["full"]
    calibration = cal.plan(profile, linear_counter(1.4), "tokenize", template_tokens=12)
    assert calibration.request_tokens("A", "L") == pytest.approx(profile.long_tokens, rel=0.005)
    assert calibration.sizes["A"].target == 6000 and calibration.sizes["Y"].target == 1500
    assert calibration.sizes["L"].target == profile.long_tokens - 12 - calibration.sizes["A"].tokens
    assert calibration.to_dict()["long_request_tokens"] == calibration.request_tokens("A", "L")


def record(prompt_tokens: int | None, error: str | None = None) -> RequestRecord:
    return RequestRecord(started_at=0.0, prompt_tokens=prompt_tokens, error=error, error_kind="http" if error else None)


def test_probe_fit_recovers_tokens_per_character_and_template_tokens():
    fit = cal.probe_fit(lambda system, user: record(round(len(system + user) * 0.3) + 9), PROFILES["smoke"])
    assert fit.tokens_per_char == pytest.approx(0.3, rel=0.01) and fit.template_tokens == pytest.approx(9, abs=1)
    assert fit.counter()("x" * 1000) == pytest.approx(300, abs=1)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (record(None), "reported no usage.prompt_tokens"),
        (record(None, "HTTP 500: boom"), "the probe request failed: http: HTTP 500: boom"),
        (record(7), "implausible"),
    ],
)
def test_probe_fit_refuses_what_it_cannot_use(answer, message):
    with pytest.raises(cal.CalibrationError, match=message):
        cal.probe_fit(lambda system, user: answer, PROFILES["smoke"])


def test_server_root_strips_v1():
    assert cal.server_root("http://h:1/v1") == "http://h:1"
    assert cal.server_root("http://h:1/v1/") == "http://h:1"
    assert cal.server_root("http://h/api/v1") == "http://h/api"
    assert cal.server_root("http://h:8080") == "http://h:8080"


def mock_http(routes: dict[tuple[str, str], httpx.Response]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        return routes.get((request.method, request.url.path), httpx.Response(404, json={"error": "no"}))

    return httpx.Client(transport=httpx.MockTransport(handle))


def tokenize_route(answer: object, status: int = 200) -> dict[tuple[str, str], httpx.Response]:
    return {("POST", "/tokenize"): httpx.Response(status, json=answer)}


def test_tokenize_counter_counts_llama_cpp_tokens():
    seen: list[dict] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        return httpx.Response(200, json={"tokens": list(range(len(body["content"].split())))})

    with httpx.Client(transport=httpx.MockTransport(handle)) as http:
        count = cal.tokenize_counter(http, "http://e:1/v1")
        assert count is not None and count("a b c") == 3
    assert set(seen[0]) == {"content"}


@pytest.mark.parametrize(
    "routes",
    [
        {},
        tokenize_route({"tokens": "many"}),
        tokenize_route({"tokens": [1]}),  # implausibly few for 30 words of prose
        tokenize_route({"tokens": list(range(40))}, status=500),
    ],
    ids=["absent", "not-a-list", "implausible", "http-error"],
)
def test_tokenize_counter_is_none_when_unusable(routes):
    with mock_http(routes) as http:
        assert cal.tokenize_counter(http, "http://e:1") is None


def test_context_window_sources():
    props = {("GET", "/props"): httpx.Response(200, json={"default_generation_settings": {"n_ctx": 8192}})}
    with mock_http(props) as http:
        assert cal.context_window(http, "http://e:1/v1", None) == (8192, "/props default_generation_settings.n_ctx")
        assert cal.context_window(http, "http://e:1", 4096) == (4096, "engines.toml context")
    with mock_http({("GET", "/props"): httpx.Response(200, json={"n_ctx": "big"})}) as http:
        assert cal.context_window(http, "http://e:1", None) == (None, None)


def test_calibrate_falls_back_from_tokenize_to_probes_to_estimate():
    profile = PROFILES["smoke"]
    words = {("POST", "/tokenize"): httpx.Response(200, json={"tokens": list(range(40))})}
    with mock_http(words) as http:
        # A counter that answers 40 for everything cannot fit; the probes can.
        result = cal.calibrate(profile, http, "http://e:1", lambda s, u: record(len(s + u) // 4 + 5), None)
    assert result.method == "prompt_tokens" and "tokenize:" in (result.note or "")
    assert result.request_tokens("A", "X") == pytest.approx(profile.system_tokens + profile.user_tokens, rel=0.02)
    with mock_http({}) as http:
        result = cal.calibrate(profile, http, "http://e:1", lambda s, u: record(None), 6000)
    assert result.method == "estimate" and result.context == 6000
    assert result.note == (
        "no usable POST /tokenize; prompt_tokens: the probe request reported no usage.prompt_tokens; "
        "sizes guessed at 4 characters per token"
    )

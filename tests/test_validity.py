"""Output validity rules (docs/asiai-protocol.md §3.4) and the thinking-off switches, as pure functions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_asiai.measure.validity import REASONS, WINDOW, degenerate_reason, has_think_tag, thinking_off_requested

PROSE = (
    "The orchestrator keeps a ledger of every tool call it issued and every result it received, "
    "then reads each file before editing it and verifies every edit by running the whole test suite "
    "again, so that a failing test points straight at the function that broke."
)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_blank_content_is_empty(text):
    assert degenerate_reason(text) == "empty"


def test_varied_prose_is_valid():
    assert len(PROSE.split()) >= 20
    assert degenerate_reason(PROSE) is None


def test_short_answers_are_never_judged_repetitive():
    assert degenerate_reason("yes yes yes yes yes") is None


def test_a_looping_phrase_is_ngram_repetition():
    assert degenerate_reason("the cat sat " * 20) == "ngram_repetition"


def test_few_distinct_words_in_no_fixed_order_is_low_diversity():
    rng = random.Random(1)
    words = [rng.choice("alpha beta gamma delta eps zeta eta theta iota kappa".split()) for _ in range(200)]
    text = " ".join(words)
    assert len(set(words)) / len(words) < 0.15
    assert degenerate_reason(text) == "low_diversity"


def test_only_the_stored_window_is_judged():
    """asiai stores and judges 2000 characters: a loop that starts after them is not seen."""
    head = " ".join(f"word{i}" for i in range(WINDOW))
    assert degenerate_reason(head[:WINDOW] + "loop " * 500) is None
    assert degenerate_reason("loop " * 500 + head) == "ngram_repetition"


@given(st.text())
def test_any_text_gets_a_known_verdict(text):
    assert degenerate_reason(text) in (*REASONS, None)


@pytest.mark.parametrize(
    ("text", "leaked"),
    [("<think>hmm</think>Answer", True), ("Answer </thinking>", True), ("I think so.", False), ("", False)],
)
def test_inline_think_tags(text, leaked):
    assert has_think_tag(text) is leaked


@pytest.mark.parametrize(
    ("request_fields", "thinking", "off"),
    [
        ({}, None, False),
        ({}, "off", True),
        ({}, "on", False),
        ({"chat_template_kwargs": {"enable_thinking": False}}, None, True),
        ({"chat_template_kwargs": {"enable_thinking": True}}, None, False),
        ({"think": False}, None, True),
        ({"reasoning_effort": "none"}, None, True),
        ({"reasoning_effort": "low"}, None, False),
    ],
)
def test_thinking_off_switches(request_fields, thinking, off):
    assert thinking_off_requested(request_fields, thinking) is off

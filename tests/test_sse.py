"""The SSE splitter must give the same payloads however the byte stream is cut into reads."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pytest_asiai.wire.sse import SSEDecoder, SSELineTooLong

# Payload lines: any text without line terminators (SSE cannot carry them inside a line).
_line = st.text(alphabet=st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=30)
_event = st.lists(_line, min_size=1, max_size=3)
_eol = st.sampled_from(["\n", "\r\n", "\r"])


def decode_all(chunks: list[bytes]) -> list[str]:
    decoder = SSEDecoder()
    out: list[str] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.flush())
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def encoded_streams(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A stream of events with random framing (EOLs, comments, optional space) and its payloads."""
    events = draw(st.lists(_event, max_size=6))
    parts: list[str] = []
    previous_eol = ""

    def emit(line: str) -> None:
        nonlocal previous_eol
        eol = draw(_eol)
        if previous_eol == "\r" and eol == "\n" and not line:
            eol = "\r"  # "\r" + "" + "\n" would read as one CRLF: an inherent SSE ambiguity
        parts.append(line + eol)
        previous_eol = eol

    for event in events:
        if draw(st.booleans()):
            emit(": " + draw(_line))
        for line in event:
            space = line.startswith(" ") or draw(st.booleans())
            emit(("data: " if space else "data:") + line)
            if draw(st.booleans()):
                emit(draw(st.sampled_from(["event: message", "id: 7", "retry: 10", "other"])))
        emit("")
    return "".join(parts).encode("utf-8"), ["\n".join(e) for e in events]


@given(stream=encoded_streams(), cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=40))
@settings(max_examples=400)
def test_any_chunking_gives_the_same_payloads(stream: tuple[bytes, list[str]], cuts: list[int]) -> None:
    data, expected = stream
    assert decode_all(split_at(data, cuts)) == expected


@given(stream=encoded_streams())
@example(stream=("data: é€😀\r\n\r\n".encode(), ["é€😀"]))
def test_byte_at_a_time(stream: tuple[bytes, list[str]]) -> None:
    data, expected = stream
    assert decode_all([data[i : i + 1] for i in range(len(data))]) == expected


def test_split_inside_every_multibyte_character() -> None:
    data = "data: ¢€😀\n\n".encode()
    for i in range(len(data) + 1):
        assert decode_all([data[:i], data[i:]]) == ["¢€😀"]


def test_comments_and_other_fields_are_ignored() -> None:
    data = b': ping\n\nevent: x\nid: 1\nretry: 5\ndata: {"a":1}\n\n:\n\n'
    assert decode_all([data]) == ['{"a":1}']


def test_data_without_space_and_exactly_one_space_stripped() -> None:
    assert decode_all([b"data:x\n\ndata:  y\n\ndata\n\n"]) == ["x", " y", ""]


def test_field_name_must_be_exactly_data() -> None:
    assert decode_all([b"database: no\n\ndata: yes\n\n"]) == ["yes"]


def test_multiple_data_lines_join_with_newline() -> None:
    assert decode_all([b"data: a\ndata: b\r\ndata: c\r\r"]) == ["a\nb\nc"]


def test_crlf_split_between_cr_and_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == ["a"]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\n\n") == ["b"]


def test_events_are_returned_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n\ndata: 2\n") == ["1"]
    assert decoder.feed(b"\n") == ["2"]


def test_flush_emits_done_without_trailing_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: {}\n\ndata: [DONE]") == ["{}"]
    assert decoder.flush() == ["[DONE]"]


def test_flush_emits_terminated_line_without_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]\n") == []
    assert decoder.flush() == ["[DONE]"]


def test_flush_with_nothing_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n: trailing comment") == ["a"]
    assert decoder.flush() == []


def test_truncated_utf8_at_eof_becomes_replacement_character() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("data: x€".encode()[:-1]) == []
    assert decoder.flush() == ["x\ufffd"]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode_all([b"data: \xff\xfe ok\n\n"]) == ["\ufffd\ufffd ok"]


def test_leading_byte_order_mark_is_dropped() -> None:
    assert decode_all([b"\xef\xbb", b"\xbfdata: a\n\n"]) == ["a"]


# ----------------------------------------------------------------------------- length cap (issue 14)


def test_a_line_dripped_past_the_cap_is_refused() -> None:
    decoder = SSEDecoder(max_line_chars=100)
    decoder.feed(b"data: " + b"x" * 90)
    with pytest.raises(SSELineTooLong, match="longer than 100"):
        decoder.feed(b"x" * 20)


def test_a_whole_line_past_the_cap_in_one_read_is_refused() -> None:
    with pytest.raises(SSELineTooLong):
        SSEDecoder(max_line_chars=100).feed(b"data: " + b"x" * 200 + b"\n\n")


def test_an_event_of_many_short_data_lines_past_the_cap_is_refused() -> None:
    decoder = SSEDecoder(max_line_chars=100)
    with pytest.raises(SSELineTooLong, match="event data"):
        decoder.feed(b"data: " + b"x" * 40 + b"\n" + b"data: " + b"y" * 40 + b"\n" + b"data: " + b"z" * 40 + b"\n")


def test_lines_up_to_the_cap_pass_and_the_count_restarts_per_line() -> None:
    decoder = SSEDecoder(max_line_chars=100)
    line = b"data: " + b"x" * 94 + b"\n\n"
    assert decoder.feed(line[:50]) == []
    assert decoder.feed(line[50:] + line) == ["x" * 94, "x" * 94]

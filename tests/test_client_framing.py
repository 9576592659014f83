"""The client's own HTTP/1.1 body framing (``pytest_asiai/wire/framing.py``): the same bytes however reads are cut."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_asiai.wire.framing import Body as _Body


def chunked(parts: list[bytes], extension: bool = False, trailer: bool = False) -> bytes:
    ext = b";name=value" if extension else b""
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in parts if p)
    return out + b"0\r\n" + (b"X-Trailer: 1\r\n" if trailer else b"") + b"\r\n"


def feed_in_pieces(body: _Body, data: bytes, cuts: list[int]) -> bytes:
    out, start = [], 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if start < cut <= len(data):
            out.append(body.feed(data[start:cut]))
            start = cut
    return b"".join(out)


@settings(max_examples=200)
@given(
    parts=st.lists(st.binary(min_size=0, max_size=40), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    extension=st.booleans(),
    trailer=st.booleans(),
)
def test_chunked_body_is_independent_of_read_boundaries(
    parts: list[bytes], cuts: list[int], extension: bool, trailer: bool
) -> None:
    body = _Body("chunked")
    data = chunked(parts, extension, trailer)
    assert feed_in_pieces(body, data + b"NEXT RESPONSE", cuts) == b"".join(parts)
    assert body.done


def test_content_length_body_stops_at_its_length() -> None:
    body = _Body("length", 5)
    assert body.feed(b"abc") == b"abc" and not body.done
    assert body.feed(b"defgh") == b"de" and body.done


def test_until_close_body_passes_everything() -> None:
    body = _Body("close")
    assert body.feed(b"abc") == b"abc" and not body.done


@pytest.mark.parametrize(
    "data",
    [b"zz\r\nabc\r\n", b"3\r\nabcXY", b"-1\r\n", b"1" * 5000],
    ids=["bad-size", "no-crlf", "negative", "long-size-line"],
)
def test_broken_chunking_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(h11.RemoteProtocolError):
        _Body("chunked").feed(data)

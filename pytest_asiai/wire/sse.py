"""Incremental Server-Sent Events splitter for raw byte streams.

httpx's line iteration costs more CPU per streamed chunk than the engine spends producing it on a
small machine (docs/real-engines.md), so the client reads raw bytes and splits them here.
The decoder is pure (no I/O, no clock): the caller timestamps each read and attributes that time to
every payload this read completes.

Follows the WHATWG event-stream rules that matter for OpenAI-compatible streams: lines end with
``\\n``, ``\\r\\n`` or ``\\r``; ``:`` starts a comment; ``data:`` loses exactly one leading space;
other fields (``event``, ``id``, ``retry``) are ignored; a blank line ends an event and its ``data``
lines are joined with ``\\n``. One deliberate leniency: at EOF, :meth:`SSEDecoder.flush` also emits a
final event that was never closed by a blank line, so a trailing ``data: [DONE]`` is not lost.

A line, and an event's data, may not exceed :data:`MAX_LINE_CHARS`: without a cap a hostile server's
50 MB line took the process to 207 MB (issue 14); past it the decoder raises :class:`SSELineTooLong`.
"""

from __future__ import annotations

import codecs

__all__ = ["MAX_LINE_CHARS", "SSEDecoder", "SSELineTooLong"]

#: Longest line (and longest event data) accepted: a chat chunk is a few hundred characters; a whole
#: 32K-token answer sent as one event stays well below it.
MAX_LINE_CHARS = 4 * 1024 * 1024


class SSELineTooLong(ValueError):
    """A line or an event grew past the decoder's cap: the stream is not a sane chat stream."""


class SSEDecoder:
    """Turns arbitrary byte chunks into the ``data`` payloads of complete events.

    Bytes may be split anywhere, even inside a multi-byte UTF-8 character or between the ``\\r`` and
    ``\\n`` of a CRLF: the state carried between feeds (undecoded bytes, the unfinished line, the
    current event's data lines) makes the result independent of how the stream was chunked.
    """

    __slots__ = (
        "_data",
        "_data_size",
        "_decode",
        "_decoder",
        "_limit",
        "_partial",
        "_partial_size",
        "_skip_lf",
        "invalid_utf8",
    )

    def __init__(self, max_line_chars: int = MAX_LINE_CHARS) -> None:
        self._limit = max_line_chars
        # utf-8-sig drops a byte-order mark at the very start of the stream, as the SSE spec asks.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._decode = self._decoder.decode
        self._partial: list[str] = []
        """Pieces of the line not yet ended (kept as a list so a dripped long line stays linear)."""
        self._partial_size = 0
        self._data: list[str] = []
        """``data`` values of the event in progress."""
        self._data_size = 0
        self._skip_lf = False
        """The previous text ended with ``\\r``: a leading ``\\n`` now completes that CRLF."""
        self.invalid_utf8 = 0
        """Invalid UTF-8 sequences replaced by U+FFFD so far (issue 14: they were replaced silently)."""

    def feed(self, data: bytes) -> list[str]:
        """Return the payloads of the events that these bytes complete (often none or one)."""
        text = self._decode(data)
        if "\ufffd" in text:  # rare: tell replacements from a U+FFFD the engine really sent
            self.invalid_utf8 += max(0, text.count("\ufffd") - data.count(b"\xef\xbf\xbd"))
        return self._feed_text(text)

    def flush(self) -> list[str]:
        """End of stream: finish the last line and emit an event left without its blank line."""
        text = self._decode(b"", True)
        self.invalid_utf8 += text.count("\ufffd")  # an unfinished sequence at the end of the stream
        out = self._feed_text(text)
        tail = "".join(self._partial)
        self._partial.clear()
        self._partial_size = 0
        self._skip_lf = False
        out.extend(self._process([tail, ""] if tail else [""]))
        return out

    def _feed_text(self, text: str) -> list[str]:
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        if len(lines) == 1:
            self._keep_partial(text)
            return []
        if self._partial:
            self._keep_partial(lines[0])
            lines[0] = "".join(self._partial)
            self._partial.clear()
            self._partial_size = 0
        tail = lines.pop()
        if tail:
            self._keep_partial(tail)
        return self._process(lines)

    def _keep_partial(self, piece: str) -> None:
        self._partial_size += len(piece)
        if self._partial_size > self._limit:
            raise SSELineTooLong(f"SSE line longer than {self._limit} characters")
        self._partial.append(piece)

    def _process(self, lines: list[str]) -> list[str]:
        """Interpret complete lines; a blank line dispatches the event in progress."""
        out: list[str] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    out.append(data[0] if len(data) == 1 else "\n".join(data))
                    data.clear()
                    self._data_size = 0
            elif line.startswith("data:"):
                value = line[5:]
                if len(line) > self._limit:
                    raise SSELineTooLong(f"SSE line longer than {self._limit} characters")
                self._data_size += len(value)
                if self._data_size > self._limit:
                    raise SSELineTooLong(f"SSE event data longer than {self._limit} characters")
                data.append(value[1:] if value[:1] == " " else value)
            elif line == "data":
                data.append("")
            # Comments (":...") and the other fields carry nothing a chat completion needs.
        return out

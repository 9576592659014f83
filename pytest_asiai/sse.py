"""Incremental Server-Sent Events splitter for raw byte streams.

httpx's line iteration costs more CPU per streamed chunk than the engine spends producing it on a
small machine (real-engines.md, last section), so the client reads raw bytes and splits them here.
The decoder is pure (no I/O, no clock): the caller timestamps each read and attributes that time to
every payload this read completes.

Follows the WHATWG event-stream rules that matter for OpenAI-compatible streams: lines end with
``\\n``, ``\\r\\n`` or ``\\r``; ``:`` starts a comment; ``data:`` loses exactly one leading space;
other fields (``event``, ``id``, ``retry``) are ignored; a blank line ends an event and its ``data``
lines are joined with ``\\n``. One deliberate leniency: at EOF, :meth:`SSEDecoder.flush` also emits a
final event that was never closed by a blank line, so a trailing ``data: [DONE]`` is not lost.
"""

from __future__ import annotations

import codecs

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Turns arbitrary byte chunks into the ``data`` payloads of complete events.

    Bytes may be split anywhere, even inside a multi-byte UTF-8 character or between the ``\\r`` and
    ``\\n`` of a CRLF: the state carried between feeds (undecoded bytes, the unfinished line, the
    current event's data lines) makes the result independent of how the stream was chunked.
    """

    __slots__ = ("_data", "_decode", "_decoder", "_partial", "_skip_lf")

    def __init__(self) -> None:
        # utf-8-sig drops a byte-order mark at the very start of the stream, as the SSE spec asks.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._decode = self._decoder.decode
        self._partial: list[str] = []
        """Pieces of the line not yet ended (kept as a list so a dripped long line stays linear)."""
        self._data: list[str] = []
        """``data`` values of the event in progress."""
        self._skip_lf = False
        """The previous text ended with ``\\r``: a leading ``\\n`` now completes that CRLF."""

    def feed(self, data: bytes) -> list[str]:
        """Return the payloads of the events that these bytes complete (often none or one)."""
        return self._feed_text(self._decode(data))

    def flush(self) -> list[str]:
        """End of stream: finish the last line and emit an event left without its blank line."""
        out = self._feed_text(self._decode(b"", True))
        tail = "".join(self._partial)
        self._partial.clear()
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
            self._partial.append(text)
            return []
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = "".join(self._partial)
            self._partial.clear()
        tail = lines.pop()
        if tail:
            self._partial.append(tail)
        return self._process(lines)

    def _process(self, lines: list[str]) -> list[str]:
        """Interpret complete lines; a blank line dispatches the event in progress."""
        out: list[str] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    out.append(data[0] if len(data) == 1 else "\n".join(data))
                    data.clear()
            elif line.startswith("data:"):
                value = line[5:]
                data.append(value[1:] if value[:1] == " " else value)
            elif line == "data":
                data.append("")
            # Comments (":...") and the other fields carry nothing a chat completion needs.
        return out

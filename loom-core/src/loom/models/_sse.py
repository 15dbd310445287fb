"""Server-sent events: bytes in, ``(event, data)`` pairs out, with a bound on their size."""

from __future__ import annotations

import codecs
import re

__all__ = ["SSEDecoder"]

_EOL = re.compile(r"\r\n|\r|\n")


class SSEDecoder:
    """Incremental decoder of a ``text/event-stream`` body (the WHATWG rules that matter).

    Lines end with CRLF, CR or LF; ``data:`` lines of one event are joined with newlines;
    a blank line ends the event; lines starting with ``:`` are comments; ``event:`` names
    the event. ``id`` and ``retry`` are read and ignored (a chat stream is not resumed).

    Args:
        max_chars: the most characters one event (or an unfinished line) may hold;
            beyond it :meth:`feed` raises, so a server cannot make the client buffer
            without bound.

    Example:
        >>> d = SSEDecoder()
        >>> d.feed(b'data: {"a":1}\\n\\ndata: [DO') + d.feed(b"NE]\\n\\n")
        [('message', '{"a":1}'), ('message', '[DONE]')]
    """

    def __init__(self, max_chars: int = 4 * 1024 * 1024) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._data: list[str] = []
        self._size = 0
        self._event = ""
        self._max = max_chars

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        """Decode more bytes; return the events they complete.

        Raises:
            ValueError: an event or line grew past ``max_chars``.
        """
        text = self._buffer + self._decoder.decode(chunk)
        events: list[tuple[str, str]] = []
        start = 0
        for eol in _EOL.finditer(text):
            if eol.group() == "\r" and eol.end() == len(text):
                break  # maybe the first half of a CRLF split across chunks
            self._line(text[start : eol.start()], events)
            start = eol.end()
        self._buffer = text[start:]
        if len(self._buffer) > self._max:
            raise ValueError(f"a server-sent event line is longer than {self._max} characters")
        return events

    def close(self) -> list[tuple[str, str]]:
        """End of the body: the events a final unterminated line completes."""
        events: list[tuple[str, str]] = []
        tail = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        for line in _EOL.split(tail):
            self._line(line, events)
        self._line("", events)
        return events

    def _line(self, line: str, events: list[tuple[str, str]]) -> None:
        if not line:
            if self._data:
                events.append((self._event or "message", "\n".join(self._data)))
            self._data = []
            self._size = 0
            self._event = ""
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value) + 1
            if self._size > self._max:
                raise ValueError(f"a server-sent event is larger than {self._max} characters")
            self._data.append(value)
        elif name == "event":
            self._event = value

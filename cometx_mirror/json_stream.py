"""One JSON object read from chunks of bytes, its one large array handed out item by item.

An answer such as Comet's `metrics/get-all` (`{"metrics": [...]}`, up to 15,000
entries per metric, hundreds of metrics) is one JSON text; parsed whole it holds
every entry as a Python dict at once, about 1 KB a point.  Here the text is decoded
as it arrives and each entry of the named array is parsed alone (json's own
decoder, so every value reads as `json.loads` reads it), handed out and let go:
memory holds a chunk or two of text and one run of entries, whatever the answer's size.
The entries are parsed in runs, thousands in one json.loads call (see _run): one call
per entry cost about twice json.loads's time.

    answer = ObjectStream(chunks, "metrics")
    for entry in answer.items(): ...
    answer.rest, answer.found          # the other keys (small); whether the array was there

A value of `array_key` that is not an array stays in `rest`, for the caller's
shape check to name.  Text that is not one JSON object raises ValueError.
"""
from __future__ import annotations

import codecs
import json
from typing import Any, Iterable, Iterator

_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"
_ENDS = ",]}:"


class _Text:
    """The decoded text so far, consumed from `pos`, topped up from the chunks on demand."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buf, self.pos, self.ended = "", 0, False
        self.non_finite = False     # a NaN or Infinity token may be in the text read so far

    def more(self) -> bool:
        """Append the next chunk's text; False when there is no more."""
        if self.ended:
            return False
        for chunk in self._chunks:
            text = self._utf8.decode(chunk)
            if text:
                self._append(text)
                return True
        self._append(self._utf8.decode(b"", final=True))
        self.ended = True
        return True

    def _append(self, text: str) -> None:
        self.buf, self.pos = self.buf[self.pos:] + text, 0
        # the buffer still holds the start of a token the new text ends
        self.non_finite = self.non_finite or "NaN" in self.buf or "Infinity" in self.buf

    def peek(self) -> str:
        """The next character that is not white space ("" at the end), not consumed."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _SPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def take(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise ValueError(f"expected {char!r} at character {self.pos}, found {found or 'the end'!r}")
        self.pos += 1

    def value(self) -> Any:
        """The JSON value at the cursor (one inside an object or an array).  A parse is taken once
        the text after it shows it whole: `12` may be the start of `123`, and `12e` of `12e5`, so
        the next character that is not space must end a value (`,` `]` `}` `:`), or the text end."""
        while True:
            self.peek()
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
                after = end
                while after < len(self.buf) and self.buf[after] in _SPACE:
                    after += 1
                if self.ended or (after < len(self.buf) and self.buf[after] in _ENDS):
                    self.pos = end
                    return value
            except json.JSONDecodeError:
                if self.ended:
                    raise
            self.more()


class ObjectStream:
    """`items()` yields the entries of `array_key`'s array as they are read; once it is
    exhausted, `rest` holds the object's other keys and `found` whether the array was there.
    A second `array_key` is refused (json would keep the last; nothing answers so)."""

    def __init__(self, chunks: Iterable[bytes], array_key: str):
        self._text = _Text(chunks)
        self.array_key = array_key
        self.rest: dict = {}
        self.found = False

    @property
    def non_finite(self) -> bool:
        """False when no item read so far can hold a NaN or an infinity (its text has no such
        token): they may then be written by orjson, which would write them as null."""
        return self._text.non_finite

    def items(self) -> Iterator[Any]:
        text = self._text
        text.take("{")
        if text.peek() == "}":
            text.pos += 1
        else:
            while True:
                key = text.value()
                if not isinstance(key, str):
                    raise ValueError(f"an object key is {type(key).__name__}, not a string")
                text.take(":")
                if key == self.array_key and (self.found or key in self.rest):
                    raise ValueError(f"{key!r} appears twice")
                if key == self.array_key and text.peek() == "[":
                    self.found = True
                    yield from _items(text)
                else:
                    self.rest[key] = text.value()
                if text.peek() == ",":
                    text.pos += 1
                    continue
                text.take("}")
                break
        if text.peek():
            raise ValueError(f"extra data after the object at character {text.pos}")


def _items(text: _Text) -> Iterator[Any]:
    text.take("[")
    if text.peek() == "]":
        text.pos += 1
        return
    tried_to = -1         # the text length at the last run that did not parse: not tried again on it
    while True:
        run = None
        if len(text.buf) != tried_to and len(text.buf) - text.pos >= _RUN:
            run = _run(text)
            if run is None:
                tried_to = len(text.buf)
        if run is None:
            yield text.value()
        else:
            yield from run
        if text.peek() == ",":
            text.pos += 1
            continue
        text.take("]")
        return


_RUN = 1 << 16      # parse items in runs once this much text waits: one json.loads call for thousands


def _run(text: _Text) -> list | None:
    """The items from the cursor to the last `}` followed by `,` in the text so far, parsed by one
    json.loads of `[` + them + `]`, or None when that is not a list.  The parse succeeding proves
    the cut fell between two items: inside a string it would leave the string open (every quote a
    string holds is escaped), inside an item its brackets would not balance, and no proper start of
    an object that ends at a `}` is itself a whole value."""
    buf = text.buf
    cut = max(buf.rfind("},", text.pos), buf.rfind("}, ", text.pos))
    if cut <= text.pos:
        return None
    try:
        items = json.loads("[" + buf[text.pos:cut + 1] + "]")
    except ValueError:
        return None
    text.pos = cut + 1
    return items

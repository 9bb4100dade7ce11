"""One JSON object read from chunks of bytes, its one large array handed out item by item.

An answer such as Comet's `metrics/get-all` (`{"metrics": [...]}`, up to 15,000
entries per metric, hundreds of metrics) is one JSON text; parsed whole it holds
every entry as a Python dict at once, about 1 KB a point.  Here the text is decoded
as it arrives and each entry of the named array is parsed alone (json's own
decoder, so every value reads as `json.loads` reads it), handed out and let go:
memory holds a chunk or two of text and one entry, whatever the answer's size.

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

    def more(self) -> bool:
        """Append the next chunk's text; False when there is no more."""
        if self.ended:
            return False
        for chunk in self._chunks:
            text = self._utf8.decode(chunk)
            if text:
                self.buf, self.pos = self.buf[self.pos:] + text, 0
                return True
        self.buf, self.pos = self.buf[self.pos:] + self._utf8.decode(b"", final=True), 0
        self.ended = True
        return True

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
    while True:
        yield text.value()
        if text.peek() == ",":
            text.pos += 1
            continue
        text.take("]")
        return

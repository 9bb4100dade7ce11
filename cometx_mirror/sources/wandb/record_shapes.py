"""The byte shape of a history record of one key list, read without protobuf.

A long run repeats a handful of record shapes: every history row of a key list is the
same bytes apart from the record's `num`, the value texts and the step.  One regex per
key list, compiled once, reads such a record in C:

    Record   { num: varint, history (2): len HistoryRecord }
    History  { item (1): len { nested_key (2) | key (1): "<key>", value_json (16): "<text>" } ...,
               step (2): len { num (1): varint } }

Each item's length byte is spelled out per text length (one branch per length, told
apart by that first byte), the text as that many bytes of the ones a JSON number, NaN,
Infinity, true, false or null is made of, and the record's length is checked against
the payload: a match is exactly what protobuf would have parsed.  Anything else
(another field order, a nested key, a typed value, a text with other bytes or over
HISTORY_TEXT_MAX bytes, a key of 128 bytes or more) does not match and is decoded the
ordinary way.  Summary records are matched the same way (their values not read) to
tell which ones a later record supersedes.
"""
from __future__ import annotations

import functools
import re

# a JSON number, NaN or (-)Infinity: what json.loads reads as a float or int, and float() as the same double
NUMBER = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|NaN|-?Infinity"
_HEAD = rb"\x08[\x80-\xff]{0,9}[\x00-\x7f]\x12([\x80-\xff]{0,3}[\x00-\x7f])"
# the optional step: its length byte must be the varint's length + 1, so each width is spelled out
_STEP = rb"(\x12(?:\x00|" + b"|".join(
    re.escape(bytes([n + 1])) + rb"\x08" + (rb"[\x80-\xff]{%d}" % (n - 1) if n > 1 else b"") + rb"[\x00-\x7f]"
    for n in range(1, 11)) + rb"))?"


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_value(data: bytes) -> int:
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
    return value


HISTORY_TEXT_MAX = 40     # longer texts (no number is) are decoded


class HistoryShape:
    """The wire shape of a history record with these keys (in this order), written with
    `nested_key` (wandb-core) or `key` (the legacy writer).  Per item a lookahead checks
    the length bytes (a branch per text length, told apart by the item's length byte),
    then the text is captured as a number token, which must end where the next tag (or
    the record) starts."""

    def __init__(self, keys: tuple[str, ...], legacy: bool):
        tag = b"\x0a" if legacy else b"\x12"
        parts, self.usable = [_HEAD], True
        for key in keys:
            literal = tag + varint(len(key.encode())) + key.encode()
            size = len(literal) + 3                     # item length = this + the text's length
            branches = [re.escape(bytes([size + n]) + literal + b"\x82\x01" + bytes([n])) + _TEXT_OF[n]
                        for n in range(HISTORY_TEXT_MAX + 1) if size + n < 0x80]
            if not branches:
                self.usable = False                     # a long key: such records are decoded
                branches = [b"(?!)"]
            # the lookahead checks the lengths; the text then taken is the same bytes, its end
            # being the first byte after them that cannot be in a text (the next tag, or the end)
            parts.append(rb"\x0a(?=(?:" + b"|".join(branches) + rb")(?:[\x0a\x12]|\Z))[\x00-\x7f]"
                         + re.escape(literal) + rb"\x82\x01[\x00-\x7f](" + NUMBER + rb")")
        parts.append(_STEP)
        self.pattern, self.keys = b"".join(parts), keys

    @functools.cached_property
    def match(self):
        # compiled when first used (tens of ms for a dozen keys): a fetch the NumPy paths read whole never is
        return re.compile(self.pattern, re.S).fullmatch

    def read(self, payload: bytes) -> tuple[list[bytes], int | None] | None:
        """(value texts in key order, step num or None when the record has no step), or None
        when the payload is not exactly this shape."""
        m = self.match(payload)
        if m is None:
            return None
        head, *texts, step = m.groups()
        if (head[0] if len(head) == 1 else head[0] & 0x7F | head[1] << 7 if len(head) == 2
                else _varint_value(head)) != len(payload) - m.end(1):
            return None                                # the history's length is not the rest
        return texts, (None if step is None else _varint_value(step[3:]) if len(step) > 2 else 0)


_TEXT_OF = [rb"[-+.0-9A-Za-z]{%d}" % n if n else b"" for n in range(HISTORY_TEXT_MAX + 1)]


_SUMMARY_HEAD = rb"\x08[\x80-\xff]{0,9}[\x00-\x7f]\x1a([\x80-\xff]{0,3}[\x00-\x7f])"
SUMMARY_TEXT_MAX = 64     # longer summary values (media, long strings) are decoded


class SummaryShape:
    """The wire shape of a summary record updating these one-part keys (in this order) and
    removing nothing: such records supersede one another, so a reader keeping only the
    latest values need decode only the last of a run of them.  The values are not read;
    each item's length is spelled out per text length, so a match is exact."""

    def __init__(self, keys: tuple[str, ...], legacy: bool):
        tag = b"\x0a" if legacy else b"\x12"
        parts = [_SUMMARY_HEAD]
        for key in keys:
            literal = re.escape(tag + varint(len(key.encode())) + key.encode() + b"\x82\x01")
            size = len(tag + varint(len(key.encode())) + key.encode()) + 3
            parts.append(rb"\x0a(?:" + b"|".join(
                re.escape(varint(size + n)) + literal + re.escape(bytes([n])) + (rb".{%d}" % n if n else b"")
                for n in range(SUMMARY_TEXT_MAX + 1)) + rb")")
        self.pattern, self.keys, self.legacy = b"".join(parts), keys, legacy

    @functools.cached_property
    def match(self):
        # compiled when first used: fold_spans.covered judges a span's records without it
        return re.compile(self.pattern, re.S).fullmatch

    def covers(self, payload: bytes) -> bool:
        m = self.match(payload)
        return m is not None and _varint_value(m[1]) == len(payload) - m.end(1)

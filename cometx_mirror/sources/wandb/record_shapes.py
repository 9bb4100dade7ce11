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
ordinary way.  (The chunked reader, history_bulk, walks records in any order; this is
for the records it leaves to the row path.)

A summary record is judged by its key set, in any order (`summary_literals`): which ones a
later record supersedes.  `literal_of` / `key_of` spell an item's key fields both ways.
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


def summary_literals(payload: bytes) -> frozenset | None:
    """The key set of a summary Record {num, summary {update...}}: its items' key fields as bytes
    (`literal_of`), judged without protobuf; None when it is not plainly that: a remove, another
    field, a typed or empty value, a key twice, an item with both `key` and `nested_key`.

    Summary records of one key set, each updating every key once and removing nothing, supersede
    one another (when no key lies under another: the fold checks that), so each put lands on the
    same leaf whatever came before, and a reader keeping only the latest values need decode only
    the last of a run of them.  wandb-core writes one beside every history row, in Go map order."""
    try:
        if payload[0] != 0x08:
            return None
        i = 1
        while payload[i] & 0x80:
            i += 1
        if payload[i + 1] != 0x1A:
            return None
        length, i = read_varint(payload, i + 2)
        if length != len(payload) - i:
            return None
        seen = []
        while i < len(payload):
            if payload[i] != 0x0A:
                return None
            size, i = read_varint(payload, i + 1)
            item_end, start, forms, fields = i + size, i, set(), 0
            while i < item_end and payload[i] in (0x0A, 0x12):
                forms.add(payload[i])
                fields += 1
                n, i = read_varint(payload, i + 1)
                i += n
            if len(forms) != 1 or (0x0A in forms and fields != 1):    # `key` once, or nested parts
                return None
            literal = payload[start:i]
            if payload[i:i + 2] != b"\x82\x01":
                return None
            n, i = read_varint(payload, i + 2)
            i += n
            if n == 0 or i != item_end:
                return None
            seen.append(literal)
    except IndexError:
        return None
    literals = frozenset(seen)
    return literals if seen and len(literals) == len(seen) else None


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    """(the varint at i, the position after it); IndexError when the bytes end inside it."""
    value = shift = 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7


def key_of(literal: bytes):
    """The key a literal of one-byte lengths (as history_items.walk finds them) spells: a str (one
    part, either form), or the tuple of a nested key's parts; None when a part is not UTF-8
    (protobuf would refuse the record)."""
    parts, i = [], 0
    while i < len(literal):
        n = literal[i + 1]
        try:
            parts.append(literal[i + 2:i + 2 + n].decode("utf-8"))
        except UnicodeDecodeError:
            return None
        i += 2 + n
    return parts[0] if len(parts) == 1 else tuple(parts)


def literal_of(key, legacy: bool = False) -> bytes:
    """The key fields of an item with this key (the inverse of key_of)."""
    if legacy:
        return b"\x0a" + varint(len(key.encode())) + key.encode()
    return b"".join(b"\x12" + varint(len(part.encode())) + part.encode()
                    for part in ((key,) if isinstance(key, str) else key))

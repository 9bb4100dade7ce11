"""Canonical JSON: the one byte form of our own objects, so equal content hashes equally.

The form is json.dumps's (sorted keys, no spaces, UTF-8, NaN and infinities as
strings).  orjson writes it several times faster; it is used wherever its bytes are
provably json's, and json everywhere else.  orjson spells a double below 1e-4
otherwise (`0.00009999`, `1e-6` against repr's `9.999e-05`, `1e-06`); every such
text holds a digit then `e-`, or `.0000`, so an output holding either (in a number
or a string) is written by json again, but for a column of numbers, whose tokens are
respelled in place.  What orjson refuses (an int past 64 bits, a
lone surrogate, a subclass, a datetime, deep nesting) json spells its own way or
refuses, as before; a lone surrogate (a neptune log's `\\ud800` reads as one), which has
no UTF-8, is written as that escape, so the text reads back as the same string.  (Two kinds json refuses and orjson writes, a plain Enum and a
UUID, are never handed to it here.)
Reading stays json's: the texts a mirror holds are mostly strings (paths, base64),
which orjson reads hardly faster, and it reads an integer past 64 bits as a float.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

_ORJSON_SPELLS_OTHERWISE = re.compile(rb"\de-|\.0000")
_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME
            | orjson.OPT_PASSTHROUGH_DATACLASS)


def _clean(value: Any) -> Any:
    # NaN and infinities are not JSON; keep them distinguishable as strings.
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    return dumps_clean(_clean(value))


def dumps_clean(value: Any) -> bytes:
    """dumps of a value known to hold no NaN or infinity (orjson would write null for one, where
    json refuses): for a caller that has checked its columns at C level instead of walking them."""
    try:
        out = orjson.dumps(value, option=_OPTIONS)
        if not _ORJSON_SPELLS_OTHERWISE.search(out):
            return out
    except TypeError:
        pass
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8", "backslashreplace")


_SCALAR_TYPES = {str, int, float, bool, type(None)}


def dumps_column(values: list) -> bytes:
    """dumps of a list of plain scalars (str, int, float, bool, None) known to hold no NaN or
    infinity: a column.  orjson spells strings, ints and the constants as json does, and each
    double as the shortest text that reads back as it, as repr does, but below 1e-4 in another
    form; in a list holding no string, those tokens are respelled (_respell_small_doubles)."""
    kinds = set(map(type, values))
    if not kinds <= _SCALAR_TYPES:    # a dict (its keys sorted), a list, a subclass: dumps_clean
        return dumps_clean(values)
    try:
        out = orjson.dumps(values)
    except TypeError:                 # an int past 64 bits, a lone surrogate: json spells or refuses it
        return dumps_clean(values)
    if float not in kinds:
        return out
    if str not in kinds:              # every comma separates two tokens
        return _respell_small_doubles(out) if b"e-" in out or b"0.0000" in out else out
    return dumps_clean(values)        # strings and doubles: a string could hold such a text


_FIXED = b"0.0000"


def _respell_small_doubles(out: bytes) -> bytes:
    """orjson's list of numbers and constants, each double below 1e-4 respelled as repr spells it:
    `0.0000DDD` (1e-5 to 1e-4) as `D.DDe-05`, a one-digit exponent `De-7` as `De-07`.  The digits
    are the same (both write the shortest that reads back), so this moves bytes, never computes
    them, with NumPy over the whole text: a Python call per token costs more than json's spelling."""
    import numpy as np      # here: the commands that only read the mirror never need NumPy (~80 ms to load)
    buf = np.frombuffer(out, np.uint8)
    n = len(buf)
    ends = np.flatnonzero((buf == ord(",")) | (buf == ord("]"))).astype(np.int32)   # each token's end
    if len(ends) == 0:
        return out
    starts = np.concatenate((np.array([1], np.int32), ends[:-1] + 1))
    digits = starts + (buf[starts] == ord("-"))                       # past a sign
    fixed = (ends - digits) >= 7
    for j, byte in enumerate(_FIXED):
        fixed &= buf[np.minimum(digits + j, n - 1)] == byte
    exponent = ((ends - starts) >= 4) & (buf[ends - 3] == ord("e")) & (buf[ends - 2] == ord("-"))
    fixed_at, fixed_end = digits[fixed], ends[fixed]
    dotted = fixed_end > fixed_at + 7                                 # more than one digit: a point after the first
    # what goes in, before which byte of `out`: "." after the first digit, "e-05" at the token's end,
    # "0" before a one-digit exponent; in order, several at one place in the order given
    at = np.concatenate((fixed_at[dotted] + 7, np.repeat(fixed_end, 4), ends[exponent] - 1))
    what = np.concatenate((np.full(int(dotted.sum()), ord("."), np.uint8),
                           np.tile(np.frombuffer(b"e-05", np.uint8), len(fixed_end)),
                           np.full(int(exponent.sum()), ord("0"), np.uint8)))
    order = np.argsort(at, kind="stable")
    at, what = at[order], what[order]
    # each byte's place in the result: its own, plus what goes in at or before it, less the "0.0000"s
    # before it (those six bytes themselves go to a slot past the end, cut off)
    shift = np.zeros(n, np.int32)
    places, counts = np.unique(at, return_counts=True)
    shift[places] = counts
    shift[fixed_at + 6] -= 6                    # never a place of insertion: the first digit
    shifted = np.cumsum(shift, dtype=np.int32)
    size = n + len(at) - 6 * len(fixed_at)
    place = np.arange(n, dtype=np.int32) + shifted
    place[(fixed_at[:, None] + np.arange(6, dtype=np.int32)).ravel()] = size
    result = np.empty(size + 1, np.uint8)
    result[place] = buf
    # the g-th insertion (in order), before byte a: after the a bytes before it, less the removed ones, and
    # after the g insertions before it
    removed_before = 6 * np.searchsorted(fixed_at + 6, at, side="right").astype(np.int32)
    result[at + np.arange(len(at), dtype=np.int32) - removed_before] = what
    return result[:size].tobytes()


def loads(data: bytes) -> Any:
    return json.loads(data)

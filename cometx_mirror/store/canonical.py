"""Canonical JSON: the one byte form of our own objects, so equal content hashes equally.

The form is json.dumps's (sorted keys, no spaces, UTF-8, NaN and infinities as
strings).  orjson writes it several times faster; it is used wherever its bytes are
provably json's, and json everywhere else.  orjson spells a double below 1e-4
otherwise (`0.00009999`, `1e-6` against repr's `9.999e-05`, `1e-06`); every such
text holds a digit then `e-`, or `.0000`, so an output holding either (in a number
or a string) is written by json again.  What orjson refuses (an int past 64 bits, a
lone surrogate, a subclass, a datetime, deep nesting) json spells its own way or
refuses, as before.  (Two kinds json refuses and orjson writes, a plain Enum and a
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
                      allow_nan=False).encode("utf-8")


_SCALAR_TYPES = {str, int, float, bool, type(None)}
_ONE_DIGIT_EXPONENT = re.compile(rb"([0-9])e-([1-9])(?![0-9])")   # orjson's 1e-6, repr's 1e-06
_FIXED_SMALL = re.compile(rb"-?0\.0000[0-9]+")                     # orjson's 0.00001 (1e-5 to 1e-4), repr's 1e-05


def dumps_column(values: list) -> bytes:
    """dumps of a list of plain scalars (str, int, float, bool, None) known to hold no NaN or
    infinity: a column.  orjson spells strings, ints and the constants as json does, and each
    double as the shortest text that reads back as it, as repr does, but below 1e-4 in another
    form; in a list holding no string, each such text is respelled by repr (the same double)."""
    kinds = set(map(type, values))
    if not kinds <= _SCALAR_TYPES:    # a dict (its keys sorted), a list, a subclass: dumps_clean
        return dumps_clean(values)
    try:
        out = orjson.dumps(values)
    except TypeError:                 # an int past 64 bits, a lone surrogate: json spells or refuses it
        return dumps_clean(values)
    if float not in kinds:
        return out
    if str not in kinds and (out.count(b"e-") + out.count(b"0.0000")) * 8 < len(values):
        # few such doubles (a respelling costs about three of json's spellings): respelled
        return _FIXED_SMALL.sub(_repr_spelling, _ONE_DIGIT_EXPONENT.sub(rb"\1e-0\2", out))
    return dumps_clean(values)        # strings and doubles: a string could hold such a text


def _repr_spelling(match) -> bytes:
    return repr(float(match[0])).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)

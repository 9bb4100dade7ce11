"""The fast path of the 1.x float stream: LogFloats op lines read by one regex instead of json.

neptune 1.x's DiskQueue writes each operation as `json.dumps({"obj": op.to_dict(), "version", "at"})`
and a LogFloats point as `{"value": v, "step": s, "ts": t}` (that key order; `append` makes one point
per op, `extend` many). `read` runs one compiled regex over a whole stored segment: a line in exactly
that shape (anchored at both ends: default separators, no other key, scalar tokens) has its tokens
captured, any other line is handed back whole for `json.loads`. The json module itself then decodes
all the segment's tokens at once, so each point's objects are those `json.loads` of its line gives
(ints of any size, NaN, Infinity, -0.0 as the line spells them), and a token json refuses sends the
whole segment back to the json path, line by line. An op of many points is left to json too.
`scan` is the same read for the store's fold, which needs only a point's path, step and op time.
"""
from __future__ import annotations

import json
import re

# a scalar token: the json module decides what it is (the segment's tokens are decoded at once, and a
# token json refuses sends the whole segment to the json path); no quote, bracket, brace, comma or space
_TOK = rb'[^,"{}\[\]\s]+'
_STR = rb'"(?:[^"\\\n]|\\.)*"'                # the path's strings are checked by json (path_of)
_PATH = rb"\[" + _STR + rb"(?:, " + _STR + rb")*\]"
_HEAD = rb'\{"obj": \{"type": "LogFloats", "path": (' + _PATH + rb'), "values": \['
_TAIL = rb'\]\}, "version": (' + _TOK + rb'), "at": (' + _TOK + rb")\}"   # decoded to check them
_POINT = rb'\{"value": (' + _TOK + rb'), "step": (' + _TOK + rb'), "ts": (' + _TOK + rb')\}'

# groups: 1 path, 2 value, 3 step, 4 ts, 5 version, 6 at (a one-point op) | 7 any other line. An op of
# many points (`extend`) is left to json: a regex over its points costs as much as decoding them
LINE = re.compile(rb"^(?:" + _HEAD + _POINT + _TAIL + rb"|(.*))$", re.M)


def read(segment: bytes) -> list:
    """A stored segment's lines in order: for a LogFloats op in the client's shape the tuple
    (path, steps, stamps, values) of json's objects, for any other line its bytes (to decode whole).
    A line with a path that is not JSON is left out (json skips it too: then the line is not JSON)."""
    if b"\r" in segment:     # bytes.splitlines (the json path) also splits there: take every line whole
        return segment.splitlines()
    tokens, items, flags = [], [], []
    for p1, v, s, t, version, at, other in LINE.findall(segment):
        if p1:
            tokens += (v, s, t, version, at)
            items.append(p1)
        else:
            items.append(other)
        flags.append(bool(p1))
    if not tokens:
        return items
    try:
        nums = json.loads(b"[" + b",".join(tokens) + b"]")
    except ValueError:       # a token json refuses (a malformed number): the json path, line by line
        return segment.splitlines()
    out, k = [], -5
    for item, path_text in zip(items, flags):
        if not path_text:
            out.append(item)
            continue
        k += 5
        path = path_of(item)
        if path is not None:     # (path, steps, stamps, values), as the many-point ops give them
            out.append((path, [nums[k + 1]], [nums[k + 2]], [nums[k]]))
    return out


def scan(segment: bytes) -> list | None:
    """The store's first read of a segment: one item per line (as `^...$` splits it), for a LogFloats op
    in the client's shape the tuple (path, step, at) of json's objects, for any other line its bytes.
    None when json's view of some line could differ from the regex's (a carriage return, a token json
    refuses, a path that is not JSON): then the caller decodes every line whole, as before."""
    if b"\r" in segment:
        return None
    found = LINE.findall(segment)
    tokens = [tok for p1, v, s, t, version, at, _ in found if p1 for tok in (v, s, t, version, at)]
    if not tokens:
        return [other for *_, other in found]
    try:         # every token is decoded: a line json would refuse must not be read as a point
        nums = json.loads(b"[" + b",".join(tokens) + b"]")
    except ValueError:
        return None
    out, k = [], -5
    for p1, *_, other in found:
        if not p1:
            out.append(other)
            continue
        k += 5
        path = path_of(p1)
        if path is None:
            return None
        out.append((path, nums[k + 1], nums[k + 4]))
    return out


_PATHS: dict[bytes, str | None] = {}


def path_of(text: bytes) -> str | None:
    """The attribute path a captured path list names ("a/b"), or None when it is not valid JSON
    (then neither is its line, which json would skip as malformed)."""
    try:
        return _PATHS[text]
    except KeyError:
        pass
    try:
        parts = json.loads(text)
        path = "/".join(parts) if all(type(p) is str for p in parts) else None
    except (ValueError, TypeError):
        path = None
    if len(_PATHS) < 100_000:      # a run has few series: the memo stays small
        _PATHS[text] = path
    return path

"""The fast path of the 1.x float stream: LogFloats op lines read by one regex instead of json.

neptune 1.x's DiskQueue writes each operation as `json.dumps({"obj": op.to_dict(), "version", "at"})`
and a LogFloats point as `{"value": v, "step": s, "ts": t}` (that key order; `append` makes one point
per op, `extend` many). `read` runs one compiled regex over a whole stored segment: a line in exactly
that shape (anchored at both ends: default separators, no other key, scalar tokens) has its tokens
captured, any other line is handed back whole for `json.loads`. The json module itself then decodes
all the segment's tokens at once, so each point's objects are those `json.loads` of its line gives
(ints of any size, NaN, Infinity, -0.0 as the line spells them), and a token json refuses sends the
whole segment back to the json path, line by line. An op of many points (`extend`) is matched whole:
its points' text loses its keys by C-level replaces and joins the segment's one flat decode.
Consecutive lines in that shape come back as one Block of columns (sliced from the decoded
tokens), so the readers can take a training loop's run of ops at once, not a line at a time.
`scan` is the same read for the store's fold (stricter: any path that is not JSON refuses the segment).
"""
from __future__ import annotations

import json
import re
from itertools import accumulate, repeat

# a scalar token: the json module decides what it is (the segment's tokens are decoded at once, and a
# token json refuses sends the whole segment to the json path); no quote, bracket, brace, comma or space
_TOK = rb'[^,"{}\[\]\s]+'
_STR = rb'"(?:[^"\\\n]|\\.)*"'                # the path's strings are checked by json (path_of)
_PATH = rb"\[" + _STR + rb"(?:, " + _STR + rb")*\]"
_HEAD = rb'\{"obj": \{"type": "LogFloats", "path": (' + _PATH + rb'), "values": \['
_TAIL = rb'\]\}, "version": (' + _TOK + rb'), "at": (' + _TOK + rb")\}"   # decoded to check them
_POINT = rb'\{"value": (' + _TOK + rb'), "step": (' + _TOK + rb'), "ts": (' + _TOK + rb')\}'

_POINTS = _POINT.replace(b"(", b"(?:") + rb"(?:, " + _POINT.replace(b"(", b"(?:") + rb")*"

# groups: 1 path, 2 the points' text, 3 version, 4 at (an op of any number of points) | 5 any other line.
# The points are matched, not captured one by one: their tokens are freed of their keys by four C-level
# replaces over the segment's points at once (exact: no token holds a brace, quote, comma or space)
LINE = re.compile(rb"^(?:" + _HEAD + rb"(" + _POINTS + rb")" + _TAIL + rb"|(.*))$", re.M)


class Block:
    """A run of consecutive LogFloats lines in the client's shape, as columns of json's objects: one
    entry per line in paths, ats (the op times), ends (where each op's points end) and lasts (each
    op's last step); one entry per point in values, steps and stamps (the point times)."""
    __slots__ = ("paths", "ats", "ends", "lasts", "values", "steps", "stamps")

    def __init__(self, paths: list, ats: list, ends: list, values: list, steps: list, stamps: list):
        self.paths, self.ats, self.ends = paths, ats, ends
        self.values, self.steps, self.stamps = values, steps, stamps
        self.lasts = steps if len(ends) == len(steps) else [steps[e - 1] for e in ends]

    def __len__(self) -> int:
        return len(self.paths)

    def single(self) -> bool:
        """Whether every op holds one point (what `append` writes)."""
        return len(self.ends) == len(self.steps)

    def ops(self):
        """(path, at, steps, stamps, values) of each op, its points sliced from the columns."""
        a = 0
        for path, at, b in zip(self.paths, self.ats, self.ends):
            yield path, at, self.steps[a:b], self.stamps[a:b], self.values[a:b]
            a = b


def _tokens(texts) -> list:
    """The (value, step, ts) tokens of the points' texts, decoded at once by json, flat."""
    text = b", ".join(texts)
    for key, sep in ((b'{"value": ', b","), (b', "step": ', b","), (b', "ts": ', b","), (b"}, ", b"")):
        text = text.replace(key, sep)
    return json.loads(b"[" + text[1:-1] + b"]")      # the leading comma and the last brace off


def _split(segment: bytes):
    """(items, clean): the segment's lines in order, a Block for each run of client-shaped lines and
    bytes for any other line; clean is False when a client-shaped line's path was not JSON (left out,
    as json leaves its line out). None when json's view of some line could differ from the regex's."""
    if b"\r" in segment:     # bytes.splitlines (the json path) also splits there: take every line whole
        return None
    found = LINE.findall(segment)
    if not found:
        return [], True
    p1s, texts, versions, ats, others = zip(*found)     # columns at C level, not a loop per line
    gaps = _positions(p1s, b"")               # the lines left to json
    if len(gaps) == len(p1s):
        return list(others), True
    decoded = []
    for column in (versions, ats):
        column = list(column)
        for k in gaps:
            column[k] = b"0"                  # a placeholder where json's line is: never read
        try:         # every token is decoded: a line json would refuse must not be read as a point
            decoded.append(json.loads(b"[" + b",".join(column) + b"]"))
        except ValueError:
            return None
    ats = decoded[1]
    texts = list(texts)
    for k in reversed(gaps):
        del texts[k]
    try:
        flat = _tokens(texts)
    except ValueError:
        return None
    counts = list(map(_count, texts))         # points per op (every point opens one brace)
    for k in gaps:
        counts.insert(k, 0)
    ends = list(accumulate(counts))           # where each line's points end in the flat columns
    if 3 * ends[-1] != len(flat):
        return None
    values, steps, stamps = flat[0::3], flat[1::3], flat[2::3]
    paths = list(map(_PATHS.get, p1s, repeat(_MISS)))   # the memo at C level; a miss looked up
    for k in _positions(paths, _MISS):
        paths[k] = path_of(p1s[k]) if p1s[k] else None
    clean = paths.count(None) == len(gaps)    # else some client-shaped line's path is not JSON
    out, a = [], 0
    for b in gaps + [len(p1s)]:
        _blocks(out, paths, ats, ends, values, steps, stamps, a, b)
        if b < len(p1s):
            out.append(others[b])
        a = b + 1
    return out, clean


def _count(text: bytes) -> int:
    return text.count(b"{")


def _blocks(out: list, paths, ats, ends, values, steps, stamps, a: int, b: int) -> None:
    """Lines a..b (all client-shaped) as Blocks, split where a path is not JSON (those lines left out)."""
    while a < b:
        try:
            bad = paths.index(None, a, b)
        except ValueError:
            bad = b
        if bad > a:
            first, last = ends[a - 1] if a else 0, ends[bad - 1]
            op_ends = ends[a:bad] if not first else [e - first for e in ends[a:bad]]
            out.append(Block(paths[a:bad], ats[a:bad], op_ends, values[first:last], steps[first:last],
                             stamps[first:last]))
        a = bad + 1


def _positions(seq, x) -> list[int]:
    """Where x is in seq, found by list.index (a step per hit, not per item: hits are few)."""
    out, k = [], -1
    while True:
        try:
            k = seq.index(x, k + 1)
        except ValueError:
            return out
        out.append(k)


def read(segment: bytes) -> list:
    """A stored segment's lines in order: a Block for each run of LogFloats ops in the client's shape,
    bytes for any other line (to decode whole). A line with a path that is not JSON is left out
    (json skips it too: then the line is not JSON)."""
    split = _split(segment)
    return segment.splitlines() if split is None else split[0]


def scan(segment: bytes) -> list | None:
    """The store's first read of a segment: its lines as `^...$` splits them, a Block for each run of
    client-shaped LogFloats ops (one entry per line), bytes for any other line. None when json's view
    of some line could differ from the regex's (a carriage return, a token json refuses, a path that
    is not JSON): then the caller decodes every line whole, as before."""
    split = _split(segment)
    return None if split is None or not split[1] else split[0]


_PATHS: dict[bytes, str | None] = {}
_MISS = object()


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

"""An `append` loop's segment of the 1.x op log, cut into columns by one split, no regex.

A training loop of `append` calls queues one LogFloats op per point. The client writes each with
json.dumps in its own key order, so every such line is this template with `": ` nine times:

    {"obj": {"type": "LogFloats", "path": P, "values": [{"value": V, "step": S, "ts": T}]}, "version": N, "at": A}

One `bytes.split` of a whole segment at `": ` gives each line's nine pieces at C level. The fixed
pieces are compared a column at a time, and each variable piece must end with the template's next
key: what is left of it is the line's P, V, S, T, N or A. The pieces joined again are the segment,
so a segment `cut` accepts is the template filled in line by line, and once each token column is
found to hold one scalar a line (`float_lines` decodes them) and each P a JSON list of strings,
json.loads of a line gives exactly those objects. Any other segment (a line of another op or shape,
a newline or NUL byte where the template has none) is None: it goes the regex way.

A real run's loop has other ops among its points (a LogStrings op for each printed line, the run's
assigns): `cut_among` takes such a segment when none of those other lines is a LogFloats op at all, so
the regex too would leave each of them to json whole. The lines in the template are cut together, and
the others are handed back with their places.
"""
from __future__ import annotations

from itertools import compress, count, repeat
from operator import not_

_SEP = b'": '
_LINE_HEAD = b'{"obj": {"type": "LogFloats", "path": '
_FIRST = b'{"obj'
PIECES = 9                        # separators a line
_FIXED = ((1, b'{"type'), (2, b'"LogFloats", "path'), (4, b'[{"value'))
# the variable pieces: where each sits in a line's nine, the key text that ends it
_ENDS = (("paths", 3, b', "values'), ("values", 5, b', "step'), ("steps", 6, b', "ts'),
         ("stamps", 7, b'}]}, "version'), ("versions", 8, b', "at'), ("ats", 9, b'}\n' + _FIRST))
_MARK = b"\x00"                   # not in a segment cut (checked): ends each piece while they are joined
_FLOATS_HEAD = b'{"obj": {"type": "LogFloats"'
_NEXT_POINT = b'}, {"value": '     # between two points of one op: never in the template


def likely(segment: bytes) -> bool:
    """Whether the segment's first line is a one-point LogFloats op in the template (the split is
    not tried on a segment of other ops, or of `extend`'s many-point ops)."""
    first = segment.find(b"\n")
    return segment.startswith(_LINE_HEAD) and segment.count(_SEP, 0, first) == PIECES


def cut(segment: bytes) -> dict[str, object] | None:
    """The segment's columns, or None unless every line is the template: "paths", a list of each
    line's path text; "values", "steps", "stamps", "versions", "ats", each the line's token of it,
    joined by commas (one per line, once `float_lines` has checked each decodes to one scalar and each
    path is spelled as the client spells one)."""
    if not likely(segment) or _MARK in segment or not segment.endswith(b"}\n"):
        return None
    pieces = segment.split(_SEP)
    lines, rest = divmod(len(pieces) - 1, PIECES)
    if rest or pieces[0] != _FIRST:
        return None
    for k, fixed in _FIXED:
        if pieces[k::PIECES].count(fixed) != lines:
            return None
    pieces[-1] += _FIRST              # the last line ends as every other does, before the next one
    columns: dict[str, object] = {}
    for name, k, end in _ENDS:
        text = _MARK.join(pieces[k::PIECES]) + _MARK
        if name == "paths":
            if text.count(end + _MARK) != lines or b"\n" in text:
                return None
            columns[name] = text.split(end + _MARK)[:-1]
            continue
        tokens = text.replace(end + _MARK, b",")
        if _MARK in tokens or b"\n" in tokens:   # a piece not ending with the key; a newline not a line's end
            return None
        if b" " in tokens or b"\t" in tokens:       # the client writes no space around a token
            return None
        columns[name] = tokens[:-1]
    return columns


def cut_among(segment: bytes) -> tuple[dict[str, object], list[tuple[int, bytes]]] | None:
    """(columns, others) of a segment whose lines are the template but for some lines of other ops:
    `cut`'s columns of the template lines, and each other line's place among the segment's lines with
    its bytes. None for a segment `cut` takes whole, one with no line in the template, one where a line
    outside it is a LogFloats op (of another shape: the regex judges those), or one `cut` refuses."""
    if not segment.endswith(b"\n") or _NEXT_POINT in segment:    # an op of many points goes the regex way
        return None
    lines = segment.split(b"\n")[:-1]
    # a line that starts as the template is cut with the others: `cut` checks them all as a whole
    heads = list(map(bytes.startswith, lines, repeat(_LINE_HEAD)))
    others = [(k, lines[k]) for k in compress(count(), map(not_, heads))]
    if not others or len(others) == len(lines) or any(line.startswith(_FLOATS_HEAD) for _, line in others):
        return None
    columns = cut(b"\n".join(compress(lines, heads)) + b"\n")
    return None if columns is None else (columns, others)

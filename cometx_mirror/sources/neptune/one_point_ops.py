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

A real run's loop has other ops among its points (a LogStrings op for each word it prints, the run's
assigns): `cut_among` takes such a segment when none of those other lines is a LogFloats op at all, so
the regex too would leave each of them to json whole. The lines in the template are cut together;
the LogStrings ops of one point (what the stdout capture queues) are cut by the same template with
"LogStrings" in it, their values JSON strings: those are joined by a comma and a newline, which no
JSON string holds, so each decodes alone. The other lines are handed back with their places.
"""
from __future__ import annotations

from itertools import compress, repeat
from operator import add, mul

_SEP = b'": '
_LINE_HEAD = b'{"obj": {"type": "LogFloats", "path": '
_TEXT_HEAD = b'{"obj": {"type": "LogStrings", "path": '
_FIRST = b'{"obj'
PIECES = 9                        # separators a line
_FIXED = ((1, b'{"type'), (2, b'"LogFloats", "path'), (4, b'[{"value'))
_TEXT_FIXED = ((1, b'{"type'), (2, b'"LogStrings", "path'), (4, b'[{"value'))
# the variable pieces: where each sits in a line's nine, the key text that ends it
_ENDS = (("paths", 3, b', "values'), ("values", 5, b', "step'), ("steps", 6, b', "ts'),
         ("stamps", 7, b'}]}, "version'), ("versions", 8, b', "at'), ("ats", 9, b'}\n' + _FIRST))
_MARK = b"\x00"                   # not in a segment cut (checked): ends each piece while they are joined
_FLOATS_HEAD = b'{"obj": {"type": "LogFloats"'
_NEXT_POINT = b'}, {"value": '     # between two points of one op: never in the template


def likely(segment: bytes, head: bytes = _LINE_HEAD) -> bool:
    """Whether the segment's first line is a one-point op in the template that starts with `head` (the
    split is not tried on a segment of other ops, or of `extend`'s many-point ops)."""
    first = segment.find(b"\n")
    return segment.startswith(head) and segment.count(_SEP, 0, first) == PIECES


def cut(segment: bytes, texts: bool = False) -> dict[str, object] | None:
    """The segment's columns, or None unless every line is the template: "paths", a list of each
    line's path text; "values", "steps", "stamps", "versions", "ats", each the line's token of it,
    joined by commas (one per line, once `float_lines` has checked each decodes to one scalar and each
    path is spelled as the client spells one). `texts`: the template of a LogStrings op, whose values
    are joined by a comma and a newline (each then decodes to one JSON string or none)."""
    head = _TEXT_HEAD if texts else _LINE_HEAD
    if not likely(segment, head) or _MARK in segment or not segment.endswith(b"}\n"):
        return None
    if segment.count(b"\n" + head) + 1 != segment.count(b"\n"):    # some line not in the template: no split
        return None
    pieces = segment.split(_SEP)
    lines, rest = divmod(len(pieces) - 1, PIECES)
    if rest or pieces[0] != _FIRST:
        return None
    for k, fixed in _TEXT_FIXED if texts else _FIXED:
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
        if texts and name == "values":     # a string holds no newline: none decodes across a separator
            if b"\n" in text:
                return None
            tokens = text.replace(end + _MARK, b",\n")
            if _MARK in tokens:
                return None
            columns[name] = tokens[:-2]
            continue
        tokens = text.replace(end + _MARK, b",")
        if _MARK in tokens or b"\n" in tokens:   # a piece not ending with the key; a newline not a line's end
            return None
        if b" " in tokens or b"\t" in tokens:       # the client writes no space around a token
            return None
        columns[name] = tokens[:-1]
    return columns


class Among:
    """A segment cut by `cut_among`: its lines, each one's kind (FLOAT, TEXT or OTHER), and the columns
    of its float lines and of its text lines as `cut` gives them (None where it has none)."""
    __slots__ = ("lines", "kinds", "floats", "texts")
    OTHER, FLOAT, TEXT = 0, 1, 2

    def __init__(self, lines: list[bytes], kinds: list[int], floats: dict | None, texts: dict | None):
        self.lines, self.kinds, self.floats, self.texts = lines, kinds, floats, texts


def cut_among(segment: bytes) -> Among | None:
    """A segment whose lines are the template but for some of other ops, cut: the float lines
    together, the one-point LogStrings lines together (as lines of other ops, left whole, if those do
    not all fit their template). None for a segment `cut` takes whole, one with no line in either
    template, one where a line outside them is a LogFloats op (of another shape: the regex judges
    those), or one whose float lines `cut` refuses."""
    if not segment.endswith(b"\n") or _NEXT_POINT in segment:    # an op of many points goes the regex way
        return None
    lines = segment.split(b"\n")[:-1]
    # a line that starts as a template is cut with the others of it: `cut` checks them all as a whole
    floats = list(map(bytes.startswith, lines, repeat(_LINE_HEAD)))
    texts = list(map(bytes.startswith, lines, repeat(_TEXT_HEAD)))
    kinds = list(map(add, floats, map(mul, texts, repeat(Among.TEXT))))
    found_floats, found_texts = any(floats), any(texts)
    if not (found_floats or found_texts) or floats.count(True) == len(lines):
        return None
    if segment.startswith(_FLOATS_HEAD) + segment.count(b"\n" + _FLOATS_HEAD) != floats.count(True):
        return None        # (each line after a newline; the last newline ends the segment)
    float_columns = text_columns = None
    if found_floats:
        float_columns = cut(b"\n".join(compress(lines, floats)) + b"\n")
        if float_columns is None:
            return None
    if found_texts:
        text_columns = cut(b"\n".join(compress(lines, texts)) + b"\n", texts=True)
        if text_columns is None:           # some LogStrings line of another shape: all are left whole
            if not found_floats:
                return None
            kinds = list(map(int, floats))
    return Among(lines, kinds, float_columns, text_columns)

"""The fast path of the 1.x op log: LogFloats op lines read by one regex instead of json.

neptune 1.x's DiskQueue writes each operation as `json.dumps({"obj": op.to_dict(), "version", "at"})`
and a LogFloats point as `{"value": v, "step": s, "ts": t}` (that key order; `append` makes one point
per op, `extend` many). One compiled regex runs over a whole stored segment: a line in exactly that
shape (anchored at both ends: default separators, no other key) whose every token is one json accepts
(`_TOK` spells json's numbers and constants) is client-shaped; any other line is handed back whole for
`json.loads`. A one-point op is matched first, its three tokens captured; an op of many points is
matched whole, its text captured. A line in the client's shape but for a token json refuses (or one
`_TOK` does not spell, such as an integer of 100 digits) sends the whole segment back to the json
path, line by line, as before. A segment of one-point ops only (an `append` loop's) is first tried
without the regex: one_point_ops cuts it by one split, and the tokens and paths it gives are checked
here as the regex checks them (`_one_point_items`); any segment it refuses goes the regex way.

Consecutive client-shaped lines come back as one Block of columns, so the readers take a training
loop's run of ops at once, not a line at a time. The two readers need different columns:
- `read` (the index's float stream) decodes the points: all the segment's point tokens at once (orjson,
  or json where orjson's objects could differ: `_tokens`), so each point's objects are those
  `json.loads` of its line gives (ints of any size, NaN, Infinity, -0.0 as the line spells them); the
  points' texts lose their keys by one translate and one replace (three replaces where a constant is
  among the tokens), and a Block whose every token is a float holds its points as one float64 array
  of (value, step, ts) rows, no list per column (`_float_rows`). In a fetch the store has just scanned the
  same segment: `remember` keeps its layout by content id, and `read_stored` cuts its lines at their fixed
  keys instead of running the regex a second time.
- `scan` (the store's fold) needs each op's path, op time and last step (a many-point op's last step is
  cut from its text), and whether any step is null. The regex has already checked every token, so
  skipping their decode would lose nothing the fold could see; but a segment whose Blocks are all of
  floats has its points decoded there anyway, as `read` would give them (one_point_ops' cut decodes
  them; for many-point ops `_with_rows`), for the store to spill (row_spill): the float stream then
  takes them instead of reading the segment again.

A null step (`append(value)`, `extend(values)` give none) is NaN in those rows: json's own NaN token is
refused by the rows, so NaN means null alone, and the readers number such steps (null_steps). A run of
one-point LogStrings lines that one_point_ops cut (the stdout capture's words) comes back as one Texts.
"""
from __future__ import annotations

import json
import re
from itertools import accumulate, compress, repeat
from operator import add, getitem

import numpy
import orjson

from . import one_point_ops

# a scalar token json accepts (its number grammar, possessive: no backtracking; an integer part of at
# most 99 digits, far inside the int-from-text limit) or NaN / Infinity / -Infinity / true / false / null
_TOK = rb"(?:-?+(?:[1-9][0-9]{0,98}+|0)(?:\.[0-9]++)?+(?:[eE][-+]?+[0-9]++)?+|NaN|-?Infinity|true|false|null)"
# any scalar-looking token: a line in the client's shape but for such a token sends the segment to json
_LOOSE_TOK = rb'[^,"{}\[\]\s]+'
_STR = rb'"(?:[^"\\\n]|\\.)*"'                # the path's strings are checked by json (path_of)
_PATH = rb"\[" + _STR + rb"(?:, " + _STR + rb")*\]"
_PATH_TEXT = re.compile(_PATH)
_HEAD = rb'\{"obj": \{"type": "LogFloats", "path": (' + _PATH + rb'), "values": \['


def _tail(tok: bytes) -> bytes:
    return rb'\]\}, "version": ' + tok + rb', "at": (' + tok + rb")\}"


def _point(tok: bytes) -> bytes:
    return rb'\{"value": ' + tok + rb', "step": ' + tok + rb', "ts": ' + tok + rb'\}'


_ONE = rb'\{"value": (' + _TOK + rb'), "step": (' + _TOK + rb'), "ts": (' + _TOK + rb')\}'
_MANY = rb"(" + _point(_TOK) + rb"(?:, " + _point(_TOK) + rb")++)"

# groups: 1 path, 2-4 value, step, ts (a one-point op) | 5 the points' text (many), 6 at | 7 any other line
LINE = re.compile(rb"^(?:" + _HEAD + rb"(?:" + _ONE + rb"|" + _MANY + rb")" + _tail(_TOK) + rb"|(.*))$", re.M)
# the client's shape with any scalar-looking tokens (tried on the lines LINE left to json only)
_SHAPED = re.compile(_HEAD + _point(_LOOSE_TOK) + rb"(?:, " + _point(_LOOSE_TOK) + rb")*" + _tail(_LOOSE_TOK))
_STEP, _TS = b'"step": ', b', "ts": '
_ONE_TEXT = b'{"value": %s, "step": %s, "ts": %s}'


class Block:
    """A run of consecutive client-shaped LogFloats lines as columns of json's objects: one entry per
    line in paths and lasts (each op's last step). From `read`: ends (where each op's points end) and
    one entry per point in values, steps and stamps (the point times); ats is None. From `scan`: ats
    (the op times) and numbered (no step is null); the points' columns are None, but where every token
    of the segment's client-shaped lines is a float: `array` and `ends` then hold the Block's points
    (`spillable`), as `read` would give them (a segment one_point_ops cut has them decoded anyway; for
    many-point ops they are decoded here instead of in the float stream, which then does not read the
    segment again).

    A Block of `read` whose every token json reads as a float also holds them as `array`, a float64
    array of (value, step, ts) rows (the same doubles); its list columns are made from it only when
    asked for (the float stream takes the array)."""
    __slots__ = ("paths", "ats", "ends", "lasts", "_values", "_steps", "_stamps", "one", "numbered", "array")
    FIELDS = ("paths", "ats", "ends", "lasts", "values", "steps", "stamps", "one", "numbered")   # what it gives

    def __init__(self, paths: list, lasts: list, one: bool, numbered: bool, ats: list | None = None,
                 ends: list | None = None, values: list | None = None, steps: list | None = None,
                 stamps: list | None = None, array=None):
        self.paths, self.lasts, self.one, self.numbered, self.ats = paths, lasts, one, numbered, ats
        self.ends, self._values, self._steps, self._stamps, self.array = ends, values, steps, stamps, array

    @classmethod
    def points(cls, paths: list, ends: list, values: list, steps: list, stamps: list) -> "Block":
        """A Block of `read`: its points' columns, each op's points ending at `ends`."""
        one = len(ends) == len(steps)
        lasts = steps if one else [steps[e - 1] for e in ends]
        return cls(paths, lasts, one, None not in steps, None, ends, values, steps, stamps)

    @classmethod
    def of_array(cls, paths: list, ends: list, array) -> "Block":
        """A Block of `read` from the (value, step, ts) rows of its points, all floats (but for a null
        step: NaN there, as _column_rows and _float_rows give it)."""
        one = len(ends) == len(array)
        lasts = array[:, 1].tolist() if one else array[numpy.array(ends) - 1, 1].tolist()
        numbered = not numpy.isnan(array[:, 1]).any()
        return cls(paths, lasts if numbered else nulls(lasts), one, numbered, None, ends, array=array)

    def _column(self, k: int):
        if self.array is None:
            return None
        column = self.array[:, k].tolist()
        return column if k != 1 or self.numbered else nulls(column)

    @property
    def values(self):
        if self._values is None:
            self._values = self._column(0)
        return self._values

    @property
    def steps(self):
        if self._steps is None:
            self._steps = self._column(1)
        return self._steps

    @property
    def stamps(self):
        if self._stamps is None:
            self._stamps = self._column(2)
        return self._stamps

    def __len__(self) -> int:
        return len(self.paths)

    def single(self) -> bool:
        """Whether every op holds one point (what `append` writes)."""
        return self.one

    def ops(self):
        """(path, at, steps, stamps, values) of each op, its points sliced from the columns (a Block of
        `scan`: steps is [the last step], at the op time, stamps and values None)."""
        if self.ats is not None:
            for path, at, last in zip(self.paths, self.ats, self.lasts):
                yield path, at, [last], None, None
            return
        a = 0
        for path, b in zip(self.paths, self.ends):
            yield path, None, self.steps[a:b], self.stamps[a:b], self.values[a:b]
            a = b


class Texts:
    """A run of consecutive LogStrings lines of one point each (what the stdout capture queues, a word
    a line) as columns of json's objects: one entry per line in paths, values (strings), steps, stamps
    (the point times) and ats (the op times); and the lines, for a reader that takes them one by one."""
    __slots__ = ("paths", "values", "steps", "stamps", "ats", "lines")

    def __init__(self, paths: list, values: list, steps: list, stamps: list, ats: list, lines: list):
        self.paths, self.values, self.steps, self.stamps, self.ats = paths, values, steps, stamps, ats
        self.lines = lines

    def __len__(self) -> int:
        return len(self.paths)


def nulls(steps: list) -> list:
    """Steps from a float64 column, None where the step was null (NaN there)."""
    return [None if s != s else s for s in steps]


# orjson reads an int past 64 bits as a float, json as an int: below this magnitude no such token was met
_EXACT_BOUND = 9e18


def _tokens(text: bytes) -> list:
    """json's objects of a text of comma-separated tokens, each one `_TOK` spells (checked by LINE).

    orjson decodes them about four times faster and gives the same objects for such tokens (the same
    correctly rounded doubles, the same ints, -0.0 kept) except where it refuses (NaN, Infinity, a
    number past the double range) or reads an int of more than 64 bits as a float: then json decodes
    them (all tokens under 9e18 in magnitude rules the second out: such an int is 2^63 or more)."""
    array = b"[" + text + b"]"
    objects = _orjson_tokens(array)
    return json.loads(array) if objects is None else objects


def _orjson_tokens(array: bytes) -> list | None:
    """orjson's objects of a JSON array of scalar tokens, or None where they could differ from json's
    (refused: NaN, Infinity, past the double range, null / true / false among numbers; or some token
    of 9e18 or more in magnitude, which may be an int orjson read as a float)."""
    try:
        objects = orjson.loads(array)
        if not objects or (-_EXACT_BOUND < min(objects) and max(objects) < _EXACT_BOUND):
            return objects
    except (ValueError, TypeError):
        pass
    return None


def _decode(column) -> list:
    """json's objects of a column of tokens, decoded at once."""
    return _tokens(b",".join(column))


# the bytes of the points' keys and braces but the commas and the keys' e: deleted, each point's
# `{"value": v, "step": s, "ts": t}, ` is `ev,es,t,` (and an exponent's e, after a digit, stays)
_KEY_BYTES = b'{}": alpstuv'


# a null step's stand-in while the points' rows are decoded (`extend(values)` gives no step): a float
# under 9e18 in magnitude, so _floats takes it; the stand-ins are counted back, so a step that is this
# number, however spelled, sends the rows to json
_NULL_STEP, _NULL_MARK = b'"step": null', b"-8.606238954172917e+18"
_NULL_VALUE = float(_NULL_MARK)


def _float_rows(texts: list, points: int):
    """The points of _point_tokens as an array of (value, step, ts) rows when json reads every token as
    a float (_floats), or a step as null (NaN in the rows), else None."""
    joined = b", ".join(texts)
    nulls = joined.count(_NULL_STEP)
    if nulls:
        joined = joined.replace(_NULL_STEP, b'"step": ' + _NULL_MARK)
    bare = joined.translate(None, _KEY_BYTES)
    del joined                            # (a segment's text: not held beside its copies)
    if not bare.startswith(b"e"):
        return None
    flat = _floats(b"[" + bare[1:].replace(b",e", b",") + b"]", 3 * points)
    if flat is None:
        return None
    rows = flat.reshape(points, 3)
    if nulls:
        marked = rows[:, 1] == _NULL_VALUE
        if int(marked.sum()) != nulls:
            return None
        rows[marked, 1] = numpy.nan
    return rows


def _column_rows(values: bytes, steps: bytes, stamps: bytes, count: int):
    """One-point ops' value, step and ts tokens (each column joined by commas) as an array of (value,
    step, ts) rows when json reads every value and time as a float and every step as a float or null
    (NaN in the rows: json's own NaN token is refused here, so NaN is null), of less than 9e18 in
    magnitude (_floats); else None."""
    try:
        flat = orjson.loads(b"[" + values + b"," + steps + b"," + stamps + b"]")
    except (ValueError, TypeError):
        return None
    if len(flat) != 3 * count:
        return None
    kinds = set(map(type, flat))
    if kinds != {float} and (kinds != {float, type(None)} or None in flat[:count] or None in flat[2 * count:]):
        return None
    floats = numpy.array(flat, numpy.float64)
    if count and (numpy.abs(floats) >= _EXACT_BOUND).any():     # NaN (null) compares False
        return None
    return floats.reshape(3, count).T.copy()


def _floats(array: bytes, count: int):
    """A JSON array of `count` tokens as a float64 array when orjson reads each as a float of less than
    9e18 in magnitude (orjson's doubles are json's; at or past it orjson may have read an int), else None."""
    try:
        flat = orjson.loads(array)
    except (ValueError, TypeError):
        return None
    if len(flat) != count or set(map(type, flat)) != {float}:
        return None
    floats = numpy.array(flat, numpy.float64)
    return floats if not count or numpy.abs(floats).max() < _EXACT_BOUND else None


def _point_tokens(texts: list, points: int) -> list:
    """The (value, step, ts) tokens of `points` points' texts (`{"value": v, "step": s, "ts": t}, ...`,
    every token one `_TOK` spells), flat: with the texts joined as the points are, a point's end and
    the next one's start is one separator.

    The keys go by one bytes.translate, which deletes no byte of a number, and one replace of the keys'
    e's (each after a comma; a number's e is after a digit): a constant (NaN, Infinity, null, true,
    false) loses a letter there and is refused by orjson, and the keys then go by three replaces, for
    json to read the tokens."""
    text = b", ".join(texts)
    bare = text.translate(None, _KEY_BYTES)
    if bare.startswith(b"e"):
        objects = _orjson_tokens(b"[" + bare[1:].replace(b",e", b",") + b"]")
        if objects is not None:
            return objects
    for key in (b'}, {"value": ', b', "step": ', b', "ts": '):
        text = text.replace(key, b", ")
    return _tokens(text[len(b'{"value": '):-len(b"}")])


def _split(segment: bytes, points: bool, whole: bool = False):
    """(items, clean): the segment's lines in order, a Block for each run of client-shaped lines (with
    its points' columns when `points`, else the fold's) and bytes for any other line; clean is False
    when a client-shaped line's path was not JSON (left out, as json leaves its line out). None when
    json's view of some line could differ from the regex's. `whole`: see _one_point_items."""
    if b"\r" in segment:     # bytes.splitlines (the json path) also splits there: take every line whole
        return None
    columns, among = one_point_ops.cut(segment), None
    if columns is None:
        among = one_point_ops.cut_among(segment)
    if columns is not None or among is not None:
        items = _one_point_items(columns, points, among, whole)
        if items is not None:
            return items, True
    found = LINE.findall(segment)
    if not found:
        return [], True
    p1s, vs, ss, ts, texts, ats, others = zip(*found)    # columns at C level, not a loop per line
    gaps = _positions(p1s, b"")               # the lines left to json
    if any(_SHAPED.fullmatch(others[k]) for k in gaps):
        return None                           # a token only json can judge: json reads the segment
    if len(gaps) == len(p1s):
        return list(others), True
    keep = [1] * len(p1s)
    for k in gaps:
        keep[k] = 0
    many = [k for k in _positions(vs, b"") if keep[k]]    # many-point ops (a one-point op has a value)
    try:                 # every token is one json accepts (_TOK): a failure here is a surprise, not a line
        columns = _points(vs, ss, ts, texts, keep, many) if points else _fold_columns(ss, ats, texts, gaps, many)
    except ValueError:
        return None
    if columns is None:
        return None
    split = _assemble(p1s, others, gaps, columns, points)
    if not points and split[1]:
        _with_rows(split[0], vs, ss, ts, texts, keep, many)
    return split


def _with_rows(items: list, *tokens) -> None:
    """The scan's Blocks given their points as `read` gives them (ends and float rows), when every
    token of the segment's client-shaped lines is a float: what the store keeps for the float stream
    (spillable); any other token leaves them as they are, nothing decoded json's way here. `tokens` are
    _split's columns for `_points`; the items of a clean split are its lines in order (a Block of n
    lines, or one other line each), so each Block's points are sliced as _blocks slices them for
    `read`, no Block of `read` made."""
    try:
        columns = _points(*tokens, rows_only=True)
    except ValueError:
        return
    if columns is None:
        return
    ends, rows = columns
    line = 0
    for item in items:          # a regex split's: Blocks and other lines (no Texts)
        if type(item) is Block:
            op_ends, first, last = _op_ends(ends, line, line + len(item))
            item.array = rows[first:last]
            if not item.single():       # one point an op: no ends, as the split's Blocks have none
                item.ends = op_ends
            line += len(item)
        else:
            line += 1


def _scalars(text: bytes, count: int) -> list | None:
    """json's objects of a column of `count` comma-joined tokens, or None unless they are `count`
    scalars (a number, true, false or null each: then each token was one, as a line's count of
    commas allows no other way)."""
    try:
        objects = _tokens(text)
    except ValueError:
        return None
    if len(objects) != count or not set(map(type, objects)) <= _SCALARS:
        return None
    return objects


_SCALARS = {int, float, bool, type(None)}


def _one_point_items(columns: dict | None, points: bool, among: one_point_ops.Among | None = None,
                     whole: bool = False):
    """_split's items of a segment one_point_ops.cut took whole (`columns`) or cut_among took
    (`among`): a Block of each run of cut float lines, a Texts of each run of cut text lines (unless
    some text line's tokens are not a string and scalars: then those are other lines), each other line
    in its place, then the empty text after the last newline; or None where a float line's token is no
    scalar or a path no JSON list of strings. `whole`: a segment of float and text lines alone is one
    Interleaved instead (its runs made only if asked for)."""
    if among is None:
        block = _block_maker(columns, points)
        return None if block is None else [block(0, len(columns["paths"])), b""]
    block = _block_maker(among.floats, points) if among.floats is not None else None
    if among.floats is not None and block is None:
        return None
    kinds, lines = among.kinds, among.lines
    texts = _texts_maker(among.texts, lines, kinds) if among.texts is not None else None
    if texts is None and among.texts is not None:
        if block is None:
            return None
        kinds = [kind if kind != one_point_ops.Among.TEXT else one_point_ops.Among.OTHER for kind in kinds]
    runs = _runs(kinds)
    if whole and block is not None and texts is not None and one_point_ops.Among.OTHER not in kinds:
        return Interleaved(block, texts, runs)
    return _run_items(runs, lines, block, texts)


def _runs(kinds: list) -> list:
    """(kind, first line, end) of each run of lines of one kind."""
    marks = numpy.array(kinds, numpy.int8)       # where a run of one kind of line starts
    starts = [0] + (numpy.flatnonzero(marks[1:] != marks[:-1]) + 1).tolist()
    return [(kinds[a], a, b) for a, b in zip(starts, starts[1:] + [len(kinds)])]


def _run_items(runs: list, lines: list, block, texts) -> list:
    """The items of a cut segment's runs: a Block (block's), a Texts (texts') or the lines of each, and
    the empty text after the last newline."""
    out, made = [], [0, 0, 0]                    # of each kind, the lines made so far
    for kind, a, b in runs:
        if kind == one_point_ops.Among.OTHER:
            out += lines[a:b]
            continue
        first = made[kind]
        made[kind] = first + b - a
        out.append((block if kind == one_point_ops.Among.FLOAT else texts)(first, first + b - a))
    return out + [b""]


class Interleaved:
    """A segment of one-point float lines and one-point text lines alone, in runs (an `append` loop
    that prints): `block`, its float lines as one Block, and `texts`, its text lines as one Texts, for
    a fold that takes each at once; `items()`, its runs as `scan` gives them, for one that cannot. The
    float and text lines hold series of two kinds, so no path is among both."""
    __slots__ = ("block", "texts", "runs", "_block_of", "_texts_of")

    def __init__(self, block_of, texts_of, runs: list):
        self._block_of, self._texts_of, self.runs = block_of, texts_of, runs
        floats = sum(b - a for kind, a, b in runs if kind == one_point_ops.Among.FLOAT)
        self.block, self.texts = block_of(0, floats), texts_of(0, runs[-1][2] - floats)

    def __len__(self) -> int:
        return len(self.block) + len(self.texts)

    def items(self) -> list:
        return _run_items(self.runs, [], self._block_of, self._texts_of)

    def layout(self) -> list:
        """spillable's layout of its items: n for a run of n float lines, -n for one of n text lines,
        0 for the empty text after the last newline."""
        return [b - a if kind == one_point_ops.Among.FLOAT else a - b for kind, a, b in self.runs] + [0]


def _paths_of(texts: list) -> list | None:
    """The attribute paths of a cut column of path texts, or None unless each is in the client's
    spelling (as LINE takes one) and JSON."""
    paths = list(map(_PATHS.get, texts, repeat(_MISS)))
    for k in _positions(paths, _MISS):       # a new path: looked up once
        paths[k] = path_of(texts[k]) if _PATH_TEXT.fullmatch(texts[k]) else None
    return None if None in paths else paths


def _block_maker(columns: dict, points: bool):
    """block(a, b): a Block of a cut's float lines a..b (as `read` wants it when `points`, else as
    `scan` does), or None where a token is no scalar or a path no JSON list of strings."""
    count = len(columns["paths"])
    paths = _paths_of(columns["paths"])
    if paths is None:
        return None
    rows = _one_point_rows(columns, count)   # (value, step, ts) rows when every token is a float
    decoded = {}       # the rest json's way (with rows, only the op times: the versions are checked)
    for name in ("ats",) if rows is not None else ("steps", "values", "stamps", "versions", "ats"):
        decoded[name] = _scalars(columns[name], count)
        if decoded[name] is None:
            return None
    if not points:
        steps, ats = decoded["steps"] if rows is None else nulls(rows[:, 1].tolist()), decoded["ats"]

        def block(a: int, b: int) -> Block:
            return Block(paths[a:b], steps[a:b], True, None not in steps[a:b], ats=ats[a:b],
                         array=None if rows is None else rows[a:b])
    elif rows is not None:
        def block(a: int, b: int) -> Block:
            return Block.of_array(paths[a:b], list(range(1, b - a + 1)), rows[a:b])
    else:
        values, steps, stamps = decoded["values"], decoded["steps"], decoded["stamps"]

        def block(a: int, b: int) -> Block:
            return Block.points(paths[a:b], list(range(1, b - a + 1)), values[a:b], steps[a:b], stamps[a:b])
    return block


def _texts_maker(columns: dict, lines: list, kinds: list):
    """texts(a, b): a Texts of a cut's text lines a..b, or None unless every value is a JSON string,
    every other token a scalar and every path a JSON list of strings."""
    count = len(columns["paths"])
    paths = _paths_of(columns["paths"])
    values = _strings(columns["values"], count)
    if paths is None or values is None:
        return None
    decoded = {}
    for name in ("steps", "stamps", "versions", "ats"):
        decoded[name] = _scalars(columns[name], count)
        if decoded[name] is None:
            return None
    steps, stamps, ats = decoded["steps"], decoded["stamps"], decoded["ats"]
    own = list(compress(lines, map((one_point_ops.Among.TEXT).__eq__, kinds)))

    def texts(a: int, b: int) -> Texts:
        return Texts(paths[a:b], values[a:b], steps[a:b], stamps[a:b], ats[a:b], own[a:b])
    return texts


def _strings(text: bytes, count: int) -> list | None:
    """json's objects of a cut's column of `count` text values (joined by a comma and a newline: none
    spans two), or None unless they are `count` strings (each value then was one)."""
    array = b"[" + text + b"]"
    try:
        objects = orjson.loads(array)
    except (ValueError, TypeError):          # orjson refuses a lone surrogate that json reads
        try:
            objects = json.loads(array)
        except ValueError:
            return None
    if len(objects) != count or set(map(type, objects)) != {str}:
        return None
    return objects


def _one_point_rows(columns: dict, count: int):
    """The value, step and ts columns of a cut segment as a float64 array of rows (_column_rows: NaN
    for a null step), and the versions `count` scalars to orjson; else None (the columns are decoded
    one by one, json's way)."""
    rows = _column_rows(columns["values"], columns["steps"], columns["stamps"], count)
    if rows is None:
        return None
    try:
        versions = orjson.loads(b"[" + columns["versions"] + b"]")
    except (ValueError, TypeError):
        return None
    if len(versions) != count or not set(map(type, versions)) <= _SCALARS:
        return None
    return rows


def spillable(items: list):
    """What `read` of the segment gives, from `scan`'s items, when each of their Blocks holds its points
    as float rows, to keep for the float stream; else None. As (paths, rows, ends, layout, lines,
    text_paths): every Block's op paths, point rows and each op's end in its Block (ends None: one point
    an op) one after the other; the layout (a Block's count of ops, minus a Texts' count of ops, 0 for
    another line), those other lines' bytes, and the Texts' op paths. A Texts whose steps are all null
    (the stdout capture's) is kept as its paths alone, all the stream needs of it; any other as its
    lines. Lines that are not points are kept as they are: the stream decodes them as it would from
    the store. `items` may be scan_whole's Interleaved: its Block and Texts are those of its runs
    end to end."""
    if type(items) is Interleaved:
        block, texts = items.block, items.texts
        if block.array is None or texts.steps.count(None) != len(texts):
            return spillable(items.items())
        return block.paths, block.array, None, items.layout(), [b""], texts.paths
    blocks = [item for item in items if type(item) is Block]
    if not blocks or any(block.array is None for block in blocks):
        return None
    layout, lines, text_paths = [], [], []
    for item in items:
        if type(item) is Block:
            layout.append(len(item))
        elif type(item) is not Texts:
            layout.append(0)
            lines.append(item)
        elif item.steps.count(None) == len(item):
            layout.append(-len(item))
            text_paths += item.paths
        else:
            layout += [0] * len(item)
            lines += item.lines
    paths = [path for block in blocks for path in block.paths]
    rows = blocks[0].array if len(blocks) == 1 else numpy.concatenate([block.array for block in blocks])
    ends = None
    if not all(block.single() for block in blocks):
        ends = [end for block in blocks for end in (block.ends or range(1, len(block) + 1))]
    return paths, rows, ends, layout, lines, text_paths


def spilled(paths: list, rows, ends: list | None, layout: list, lines: list, text_paths: list) -> list:
    """`read`'s items of a segment from what `spillable` gave of its scan (a Texts as its paths and
    null steps alone)."""
    out, others, op, point, text = [], iter(lines), 0, 0, 0
    for n in layout:
        if not n:
            out.append(next(others))
        elif n < 0:
            out.append(Texts(text_paths[text:text - n], None, [None] * -n, None, None, None))
            text -= n
        else:
            block_ends = ends[op:op + n] if ends is not None else list(range(1, n + 1))
            out.append(Block.of_array(paths[op:op + n], block_ends, rows[point:point + block_ends[-1]]))
            op, point = op + n, point + block_ends[-1]
    return out


def _assemble(p1s, others, gaps: list, columns, points: bool):
    """(items, clean) of _split from its columns per line: p1s the path texts (b"" for a line left to
    json), others those lines, gaps where they are."""
    paths = list(map(_PATHS.get, p1s, repeat(_MISS)))   # the memo at C level; a miss looked up
    for k in _positions(paths, _MISS):
        paths[k] = path_of(p1s[k]) if p1s[k] else None
    clean = paths.count(None) == len(gaps)    # else some client-shaped line's path is not JSON
    out, a = [], 0
    for b in gaps + [len(p1s)]:
        _blocks(out, paths, columns, a, b, points)
        if b < len(p1s):
            out.append(others[b])
        a = b + 1
    return out, clean


def _points(vs, ss, ts, texts, keep: list, many: list, rows_only: bool = False):
    """(ends, values, steps, stamps) of the client-shaped lines, ends given per line (a gap's the
    previous line's); None when the points' count disagrees with the braces."""
    counts = keep                             # one point per one-point op, none for a gap
    if not many:                              # one point per op (`append`): three columns as they are
        kept = [b",".join(compress(column, keep)) for column in (vs, ss, ts)]
        rows = _column_rows(*kept, sum(keep))
        if rows is not None:
            return list(accumulate(counts)), rows
        if rows_only:
            return None
        values, steps, stamps = (_decode(compress(column, keep)) for column in (vs, ss, ts))
    else:
        pieces = list(map(_ONE_TEXT.__mod__, zip(vs, ss, ts)))   # a one-point op's text again (rare here)
        counts = list(keep)
        for k in many:
            pieces[k] = texts[k]
            counts[k] = texts[k].count(b"{")  # every point opens one brace
        return _text_points(list(compress(pieces, keep)), counts, rows_only)
    return list(accumulate(counts)), values, steps, stamps


def _text_points(texts: list, counts: list, rows_only: bool = False):
    """_points from the kept lines' points' texts and every line's count of points; when every token is
    a float, (ends, array) instead: the points as rows of a float64 array (_float_rows); with
    `rows_only`, None unless they are."""
    points = sum(counts)
    rows = _float_rows(texts, points)
    if rows is not None:
        return list(accumulate(counts)), rows
    if rows_only:
        return None
    flat = _point_tokens(texts, points)
    if 3 * points != len(flat):
        return None
    return list(accumulate(counts)), flat[0::3], flat[1::3], flat[2::3]


def _fold_columns(ss, ats, texts, gaps: list, many: list):
    """(ats, lasts, numbered, ones) per line for the fold: the op times and last steps decoded (a gap's
    a placeholder, never read), whether each op's steps are all non-null, whether it holds one point;
    no point value or time is decoded."""
    ats, lasts = list(ats), list(ss)
    numbered, ones = [True] * len(ats), [True] * len(ats)
    for k in gaps:
        ats[k] = lasts[k] = b"0"
    for k in many:
        text = texts[k]
        lasts[k] = text[text.rindex(_STEP) + len(_STEP):text.rindex(_TS)]
        numbered[k], ones[k] = b'"step": null' not in text, False
    lasts = _decode(lasts)
    if None in lasts:                          # a one-point op's step is its last
        numbered = [n and last is not None for n, last in zip(numbered, lasts)]
    return _decode(ats), lasts, numbered, ones


def _blocks(out: list, paths, columns, a: int, b: int, points: bool) -> None:
    """Lines a..b (all client-shaped) as Blocks, split where a path is not JSON (those lines left out)."""
    while a < b:
        try:
            bad = paths.index(None, a, b)
        except ValueError:
            bad = b
        if bad > a:
            if points:
                op_ends, first, last = _op_ends(columns[0], a, bad)
                if len(columns) == 2:            # the points as float rows
                    out.append(Block.of_array(paths[a:bad], op_ends, columns[1][first:last]))
                else:
                    _, values, steps, stamps = columns
                    out.append(Block.points(paths[a:bad], op_ends, values[first:last], steps[first:last],
                                            stamps[first:last]))
            else:
                ats, lasts, numbered, ones = columns
                out.append(Block(paths[a:bad], lasts[a:bad], False not in ones[a:bad],
                                 False not in numbered[a:bad], ats=ats[a:bad]))
        a = bad + 1


def _op_ends(ends: list, a: int, b: int):
    """(each op's end among its Block's points, the first point, the end of the last) of lines a..b,
    from the segment's ends given per line."""
    first = ends[a - 1] if a else 0
    return (ends[a:b] if not first else [e - first for e in ends[a:b]]), first, ends[b - 1]


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
    split = _split(segment, True)
    return segment.splitlines() if split is None else split[0]


def read_stored(segment: bytes, segment_id: str) -> list:
    """`read` of the stored segment whose content id is `segment_id`: one whose layout `remember` kept
    is cut by that layout instead of by LINE again (the same items), any other read by `read`."""
    layout = _LAYOUTS.pop(segment_id, None)
    if layout is not None:
        items = _read_known(segment, layout)
        if items is not None:
            return items
    return read(segment)


# the layouts of segments `scan` read clean, by content id: the store scans a segment, then the index's
# float stream reads it in the same process; each is read once (popped). Bounded: a segment of few runs
# of lines only (a training loop's), at most LAYOUTS_KEPT of them.
_LAYOUTS: dict[str, tuple] = {}
LAYOUTS_KEPT, _LAYOUT_ITEMS = 4096, 64
_HEAD_TEXT, _VALUES, _TAIL = b'{"obj": {"type": "LogFloats", "path": ', b', "values": [', b']}, "version": '


def remember(segment_id: str, items: list) -> None:
    """Keep the layout of the segment (content id `segment_id`) that `scan` gave `items` for: its
    lines are then known to be client-shaped (every token checked, every path JSON) or not."""
    if type(items) is Interleaved:                # scan_whole's: its runs are its items
        if len(items.runs) >= _LAYOUT_ITEMS:
            return
        items = items.items()
    if len(items) <= _LAYOUT_ITEMS and len(_LAYOUTS) < LAYOUTS_KEPT:     # a Texts' lines: other lines here
        _LAYOUTS[segment_id] = tuple(len(item) if type(item) is Block else -len(item) if type(item) is Texts
                                     else 0 for item in items)


def _read_known(segment: bytes, layout: tuple):
    """read's items of a segment whose layout `scan` found (n > 0: a Block of n lines, 0: another
    line, -n: n other lines, a Texts of the scan): each client-shaped line cut at its fixed keys (its
    path and points' texts), no regex; None when the lines do not fit the layout."""
    lines = segment.split(b"\n")            # as `^...$` cuts them (scan saw no carriage return)
    if len(lines) != sum(abs(n) or 1 for n in layout):
        return None
    p1s, texts, counts = [b""] * len(lines), [], [0] * len(lines)
    gaps, k, head, values, tail = [], 0, len(_HEAD_TEXT), len(_VALUES), _TAIL
    for n in layout:
        if n <= 0:
            others = -n or 1
            gaps += range(k, k + others)
            k += others
            continue
        # the block's lines cut at C level, a map a step (an `append` loop's block is 2,000 short lines):
        # a path's strings hold no bare quote, so the first `, "values": [` after the head is the key
        block = lines[k:k + n]
        cuts = list(map(bytes.index, block, repeat(_VALUES, n), repeat(head, n)))
        p1s[k:k + n] = map(getitem, block, map(slice, repeat(head, n), cuts))
        points = list(map(getitem, block, map(slice, map(add, cuts, repeat(values, n)),
                                                   map(bytes.rindex, block, repeat(tail, n)))))
        counts[k:k + n] = map(bytes.count, points, repeat(b"{", n))     # every point opens one brace
        texts += points
        k += n
    columns = _text_points(texts, counts) if texts else None
    if columns is None:
        return None
    return _assemble(p1s, lines, gaps, columns, True)[0]


def scan(segment: bytes) -> list | None:
    """The store's first read of a segment: its lines as `^...$` splits them, a Block for each run of
    client-shaped LogFloats ops (one entry per line: path, op time, last step; no point decoded),
    bytes for any other line. None when json's view
    of some line could differ from the regex's (a carriage return, a token json refuses, a path that
    is not JSON): then the caller decodes every line whole, as before."""
    scanned = scan_whole(segment)
    return scanned.items() if type(scanned) is Interleaved else scanned


def scan_whole(segment: bytes) -> "list | Interleaved | None":
    """`scan`, but a segment of one-point float and text lines alone is one Interleaved (what the fold
    takes at once; its runs are made only if the fold cannot)."""
    split = _split(segment, False, whole=True)
    if split is None or not split[1]:
        return None
    return split[0]


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

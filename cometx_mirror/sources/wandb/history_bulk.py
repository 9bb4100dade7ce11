"""History records read a chunk at a time with NumPy: no Python work per record or per point.

A chunk of records is joined into one byte array and walked item by item for all records
at once (history_items.py: each record's items where they lie, in whatever order wandb-core
wrote them, each distinct key decoded once).  The texts are then run through the JSON
number grammar as a table-driven automaton over a padded 2-D array (a column per byte
position), which also tells the integers apart; floats go through Python's own float()
(mapped in C) and integers the exact rule of the row path (value float(int(text)), text
str(int(text))).  The axes are taken only in forms whose result is plain (a `_step` of
digits, a float-form `_timestamp`, an `epoch` the row rule makes an int or nothing); any
record not proven that way goes back to the row path, in order.  A metric text that is no
number (true, a string, null) is given the row path's own rule (`one_value`) where it lies,
once per distinct text in a chunk; a text holding a brace (maybe a dict: nested metrics,
media) sends its record the row way.  A nested key is named as the flattened row names it
("train.loss"), and a record's points come in that row's order: item order, the parts of
one dict together where the dict first appears.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from . import decimal_floats, history_items
from .common import HISTORY_AXES
from .record_shapes import key_of
from ...metric_stream import UNSET

ENABLED = True         # tests turn the bulk path off to compare it with the row path
CHUNK = 4096           # records joined per chunk
_PAD = history_items.PAD
_INT_DIGITS = 18       # an integer axis of at most this many digits is an int64 (and never UNSET)
_MS_LIMIT = 9.2e18     # |timestamp ms| below this fits int64

# byte classes of the number automaton
_OTHER, _MINUS, _PLUS, _ZERO, _DIGIT, _DOT, _EXP, _END = range(8)
_CLASS = np.full(256, _OTHER, np.int8)
_CLASS[ord("-")], _CLASS[ord("+")], _CLASS[ord("0")], _CLASS[ord(".")] = _MINUS, _PLUS, _ZERO, _DOT
_CLASS[ord("1"):ord("9") + 1] = _DIGIT
_CLASS[ord("e")] = _CLASS[ord("E")] = _EXP
# states: the JSON number grammar (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?), then past its end
(_START, _SIGN, _LEAD0, _INT, _POINT, _FRAC, _E, _ESIGN, _EDIGITS, _WHOLE, _FLOAT, _DEAD) = range(12)
_MOVES = {
    _START: {_MINUS: _SIGN, _ZERO: _LEAD0, _DIGIT: _INT},
    _SIGN: {_ZERO: _LEAD0, _DIGIT: _INT},
    _LEAD0: {_DOT: _POINT, _EXP: _E, _END: _WHOLE},
    _INT: {_ZERO: _INT, _DIGIT: _INT, _DOT: _POINT, _EXP: _E, _END: _WHOLE},
    _POINT: {_ZERO: _FRAC, _DIGIT: _FRAC},
    _FRAC: {_ZERO: _FRAC, _DIGIT: _FRAC, _EXP: _E, _END: _FLOAT},
    _E: {_PLUS: _ESIGN, _MINUS: _ESIGN, _ZERO: _EDIGITS, _DIGIT: _EDIGITS},
    _ESIGN: {_ZERO: _EDIGITS, _DIGIT: _EDIGITS},
    _EDIGITS: {_ZERO: _EDIGITS, _DIGIT: _EDIGITS, _END: _FLOAT},
    _WHOLE: {_END: _WHOLE},
    _FLOAT: {_END: _FLOAT},
}
_TABLE = np.full(12 * 8, _DEAD, np.uint8)
for _state, _moves in _MOVES.items():
    for _cls, _to in _moves.items():
        _TABLE[_state * 8 + _cls] = _to
# the same automaton stepped by byte: (state, byte or _END_SYMBOL) -> state
_END_SYMBOL, _SYMBOLS = 256, 257
_BYTE_TABLE = np.array([_TABLE[st * 8 + (_CLASS[sym] if sym < 256 else _END)]
                        for st in range(12) for sym in range(_SYMBOLS)], np.uint16)
_WORDS = (b"NaN", b"Infinity", b"-Infinity")     # the non-finite tokens W&B writes, floats too


def _texts(buf: np.ndarray, at: np.ndarray, length: np.ndarray):
    """(padded 2-D text bytes, final automaton state) of the texts at `at` (flat arrays)."""
    width = int(length.max()) if len(length) else 0
    narrow = np.uint8 if width < 256 else np.int64         # (a narrow compare is the quicker)
    inside = np.arange(width, dtype=narrow)[None, :] < length.astype(narrow)[:, None]
    # rows of a strided view of the buffer (no index per byte); texts lie within its padding
    windows = np.lib.stride_tricks.sliding_window_view(buf, width) if width else np.empty((len(buf), 0), np.uint8)
    grid = windows[np.minimum(at, len(windows) - 1)]
    grid *= inside
    # a symbol per byte position, each column contiguous (the byte, or _END_SYMBOL past the text)
    symbols = np.ascontiguousarray(np.where(inside, grid, np.uint16(_END_SYMBOL)).T)
    state = np.full(len(at), _START, np.uint16)
    for column in symbols:
        state = _BYTE_TABLE.take(state * np.uint16(_SYMBOLS) + column)
    state = _BYTE_TABLE.take(state * np.uint16(_SYMBOLS) + np.uint16(_END_SYMBOL)).astype(np.int64)
    for word in _WORDS:      # a non-finite token: a float, as json and float() read it
        if len(word) <= width:
            maybe = np.flatnonzero((length == len(word)) & (grid[:, 0] == word[0]))
            match = (grid[maybe, :len(word)] == np.frombuffer(word, np.uint8)).all(axis=1)
            state[maybe[match]] = _FLOAT
    return grid, state


def _strings(grid: np.ndarray) -> list[bytes]:
    """Each row's text (its padding stripped: a text holds no zero byte)."""
    if not grid.shape[1]:
        return [b""] * len(grid)
    return np.ascontiguousarray(grid).view(f"S{grid.shape[1]}").ravel().tolist()


class _Key:
    """What the chunk reader needs of one distinct key: the point's name (the parts joined with
    dots, as common.flatten names the row history_row builds), its path, which axis it is."""

    def __init__(self, key):
        self.path = (key,) if isinstance(key, str) else key
        self.name = ".".join(self.path)
        self.axis = self.name if len(self.path) == 1 and self.name in _AXIS_NAMES else None
        self.metric = not (len(self.path) == 1 and self.name in HISTORY_AXES)
        # a nested part `_type` makes its dict maybe a media object, which the row path keeps whole
        self.usable = "_type" not in self.path[1:]


_AXIS_NAMES = ("_step", "_timestamp", "epoch")
_NUMBER_FIRST = np.zeros(256, bool)          # the bytes a number's text (or NaN, Infinity) starts with
_NUMBER_FIRST[list(b"-0123456789NI")] = True


def _scatter(rows: np.ndarray, at: np.ndarray, n: int, fill) -> np.ndarray:
    out = np.full((n, *rows.shape[1:]), fill, rows.dtype)
    out[at] = rows
    return out


class ChunkReader:
    """The reading of a chunk of history payloads, and the keys met so far.
    one_value(text) -> (double, exact text) or None: the row path's rule for a value text."""

    def __init__(self, one_value):
        self.one_value = one_value
        self.codes = history_items.KeyCodes()
        self._keys: list[_Key | None] = []            # by code, as self.codes numbers the keys

    def pieces(self, chunk: list) -> Iterator[tuple]:
        """The chunk's records in order, as ("arrays", ArrayBatches.add arguments) for a run of
        records read here and ("records", [HistoryPayload]) for a run left to the row path."""
        if not len(chunk):
            return
        if isinstance(chunk, list):
            payloads = [r.payload for r in chunk]
            lengths = np.fromiter(map(len, payloads), np.int64, len(payloads))
            ends = np.cumsum(lengths)
            starts = ends - lengths
            buf = np.frombuffer(b"".join(payloads) + bytes(_PAD), np.uint8)
        else:                              # a records.HistorySpan: its records in the span's buffer
            starts, ends = chunk.starts, chunk.ends
            buf = np.frombuffer(chunk.data + bytes(_PAD), np.uint8)
        items = history_items.walk(buf, starts, ends, self.codes)
        read = _Read(self, buf, items)
        yield from read.runs(chunk)

    def keys(self, literals: list[bytes]) -> list[_Key | None]:
        """What each coded key is (None for one the row path must read), by code."""
        if len(self._keys) > len(literals):
            self._keys = []                        # (the codes started afresh)
        for literal in literals[len(self._keys):]:
            key = key_of(literal)
            info = None if key is None else _Key(key)
            self._keys.append(info if info is not None and info.usable else None)
        return self._keys


_COUNTED = 1 << 22     # (record, key) pairs counted in an array; more are sorted


class _Read:
    """One chunk's items turned into points: which records are read here (`bulk`), and their
    points in the row path's order."""

    def __init__(self, reader: ChunkReader, buf, items: history_items.Items):
        self.buf, self.items = buf, items
        keys = reader.keys(items.literals)
        bulk = items.ok.copy()
        record, key = items.record, items.key
        good = np.array([k is not None for k in keys], bool)
        bulk[record[~good[key]]] = False               # a key the row path must read
        names = [k.name if k is not None else "" for k in keys]
        # a key twice in a record (or `key` and nested_key alike): the later one wins in the row
        path_ids = {}
        path_of = np.array([path_ids.setdefault(k.path if k is not None else i, len(path_ids))
                            for i, k in enumerate(keys)], np.int64)
        width = len(path_ids) + 1
        pair = record * width + path_of[key]
        if len(pair) and len(bulk) * width <= _COUNTED:
            bulk[np.flatnonzero(np.bincount(pair, minlength=len(bulk) * width) > 1) // width] = False
        elif len(pair):
            ordered = np.sort(pair)
            bulk[ordered[1:][ordered[1:] == ordered[:-1]] // width] = False
        self._prefixes(keys, path_ids, path_of, bulk)
        self.keys, self.names, self.bulk = keys, names, bulk
        self._axes(reader.one_value)

    def _prefixes(self, keys, path_ids, path_of, bulk) -> None:
        """A record holding a key and a longer one under it ("a" and "a.b"): the row folds one into
        the other, so it is the row path's."""
        inner = {}
        for i, k in enumerate(keys):
            if k is not None:
                for n in range(1, len(k.path)):
                    if k.path[:n] in path_ids:
                        inner.setdefault(i, []).append(path_ids[k.path[:n]])
        if not inner:
            return
        items, width = self.items, len(path_ids) + 1
        have = items.record * width + path_of[items.key]
        for i, prefixes in inner.items():
            records = items.record[items.key == i]
            for prefix in prefixes:
                bulk[records[np.isin(records * width + prefix, have)]] = False

    def _axes(self, one_value) -> None:
        """The records' step, time (ms) and epoch, in the forms whose result is plain; a record
        whose axis is in any other form is the row path's.  Then the metric texts' values."""
        items, bulk = self.items, self.bulk
        n = len(bulk)
        # only texts that may be numbers go through the automaton: a string's length would widen it
        maybe = np.flatnonzero(_NUMBER_FIRST[self.buf[items.text_at]])
        grid, state = _texts(self.buf, items.text_at[maybe], items.text_len[maybe])
        if len(maybe) < len(items.text_at):
            state = _scatter(state, maybe, len(items.text_at), _DEAD)
            grid = _scatter(grid, maybe, len(items.text_at), 0)
        valid = (state == _WHOLE) | (state == _FLOAT)
        strings = _strings(grid)
        for i in np.flatnonzero(~valid).tolist():
            strings[i] = b"0"      # not a number: float() must not fail on it (see _other_values)
        fast, exact_fast = decimal_floats.parse(grid)
        exact_fast &= valid & (state == _FLOAT)

        def floats(at: np.ndarray) -> np.ndarray:
            out = fast[at]
            slow = np.flatnonzero(~exact_fast[at])
            if slow.size:
                out[slow] = [float(strings[i]) for i in at[slow].tolist()]
            return out

        axis_of = np.array([_AXIS_NAMES.index(k.axis) if k is not None and k.axis else -1 for k in self.keys] or [-1],
                           np.int64)[items.key] if len(items.key) else np.empty(0, np.int64)

        def axis(j: int):
            at = np.flatnonzero(axis_of == j)
            bulk[items.record[at[~valid[at]]]] = False
            return at, items.record[at]

        at, rec = axis(0)                                # _step: digits that fit int64, else the record's step
        digits = ((state[at] == _WHOLE) & (items.text_len[at] <= _INT_DIGITS)
                  & (self.buf[items.text_at[at]] != ord("-")))
        bulk[rec[~digits]] = False
        steps = items.step.copy()
        steps[rec[digits]] = np.fromiter(map(int, [strings[i] for i in at[digits].tolist()]), np.int64,
                                         int(digits.sum()))
        at, rec = axis(1)                                # _timestamp: float-form, its ms within int64
        with np.errstate(over="ignore", invalid="ignore"):
            bulk[rec[state[at] != _FLOAT]] = False
            seconds = floats(at)
            ms = seconds * 1000
            finite = np.isfinite(ms)
            bulk[rec[~(~np.isfinite(seconds) | (finite & (np.abs(ms) < _MS_LIMIT)))]] = False
            times = np.full(n, UNSET, np.int64)
            times[rec] = np.where(finite & (np.abs(ms) < _MS_LIMIT), np.trunc(np.where(finite, ms, 0)),
                                  UNSET).astype(np.int64)
            at, rec = axis(2)                            # epoch: an int the row rule makes of it, or none
            epochs = None
            if at.size:
                whole = state[at] == _WHOLE
                bulk[rec[whole & (items.text_len[at] > _INT_DIGITS)]] = False
                number = floats(at)
                integral = np.isfinite(number) & (np.trunc(number) == number)
                bulk[rec[~(whole | ~integral | (np.abs(number) < _MS_LIMIT))]] = False
                epochs = np.full(n, UNSET, np.int64)
                value = np.where(integral & ~whole, np.trunc(np.where(integral, number, 0)), 0).astype(np.int64)
                epochs[rec] = np.where(integral | whole, value, UNSET)
                exact_int = np.flatnonzero(whole & bulk[rec])
                epochs[rec[exact_int]] = np.fromiter((int(strings[i]) for i in at[exact_int].tolist()), np.int64,
                                                     len(exact_int))
        self.steps, self.times, self.epochs = steps, times, epochs
        self._metrics(one_value, state, valid, strings, floats)

    def _metrics(self, one_value, state, valid, strings, floats) -> None:
        """Each metric item's double and exact text, and whether a point comes of it."""
        items, bulk = self.items, self.bulk
        metric = np.array([k is not None and k.metric for k in self.keys] or [False], bool)[items.key] \
            if len(items.key) else np.empty(0, bool)
        at = np.flatnonzero(metric & bulk[items.record])
        values = floats(at)
        exact = None
        integers = np.flatnonzero(state[at] == _WHOLE)
        if integers.size:                            # as the row path: value float(int(t)), text str(int(t))
            exact = np.full(len(at), None, object)
            for i in integers.tolist():
                number = int(strings[at[i]])
                values[i], exact[i] = float(number), str(number)
        present = np.ones(len(at), bool)
        others = np.flatnonzero(~valid[at])
        if others.size:
            exact = np.full(len(at), None, object) if exact is None else exact
            lost = _other_values(self.buf, items.text_at[at[others]], items.text_len[at[others]], one_value)
            for i, point in zip(others.tolist(), lost):
                if point is _ROW_WAY:
                    bulk[items.record[at[i]]] = False
                elif point is None:
                    present[i] = False
                else:
                    values[i], exact[i] = point
        keep = present & bulk[items.record[at]]       # (a record sent the row way since: none of it)
        self.at, self.values = at[keep], values[keep]
        self.exact = None if exact is None else exact[keep]

    def _order(self) -> np.ndarray:
        """The points' order: record by record, each record's as its flattened row has them,
        item order but for the parts of one dict kept together (where the dict first appears)."""
        items, at = self.items, self.at
        depth = max((len(k.path) for k in self.keys if k is not None), default=1)
        if depth == 1:
            return np.arange(len(at))
        record, slot = items.record, items.slot
        sort_keys = []
        for d in range(1, depth + 1):           # where each item's d-part prefix first appears in its record
            prefix_ids: dict = {}
            of_key = np.array([prefix_ids.setdefault(k.path[:d] if k is not None else None, len(prefix_ids))
                               for k in self.keys], np.int64)
            group = record * len(prefix_ids) + of_key[items.key]
            distinct, inverse = np.unique(group, return_inverse=True)
            first = np.full(len(distinct), np.iinfo(np.int64).max, np.int64)
            np.minimum.at(first, inverse, slot)
            sort_keys.append(first[inverse][at])
        return np.lexsort((*reversed(sort_keys), record[at]))

    def runs(self, chunk) -> Iterator[tuple]:
        """Consecutive records read here, as one piece, or left to the row path, as a run of them."""
        bulk, items = self.bulk, self.items
        order = self._order()
        at, values = self.at[order], self.values[order]
        exact = None if self.exact is None else self.exact[order]
        point_record = items.record[at]
        cuts = np.flatnonzero(np.diff(bulk.astype(np.int8))) + 1
        bounds = [0, *cuts.tolist(), len(bulk)]
        for a, b in zip(bounds, bounds[1:]):
            if not bulk[a]:
                yield "records", chunk[a:b]
                continue
            lo, hi = np.searchsorted(point_record, [a, b])
            rec = point_record[lo:hi]
            keys, codes = np.unique(items.key[at[lo:hi]], return_inverse=True)
            yield "arrays", ([self.names[k] for k in keys.tolist()], codes.astype(np.int32).ravel(),
                             self.steps[rec], self.times[rec], values[lo:hi],
                             None if self.epochs is None else self.epochs[rec],
                             None if exact is None else exact[lo:hi].tolist())


_ROW_WAY = object()      # a text only the row path may read


def _other_values(buf: np.ndarray, at: np.ndarray, length: np.ndarray, one_value) -> list:
    """one_value of each text that is no number: a point, None (no point), or _ROW_WAY for a
    text that may hold a dict (the row path flattens nested metrics) or that one_value cannot read.
    A run logs few distinct such texts (true, a phase name), so each is read once."""
    data, seen, out = buf.data, {}, []
    for a, n in zip(at.tolist(), length.tolist()):
        raw = bytes(data[a:a + n])
        try:
            out.append(seen[raw])
            continue
        except KeyError:
            pass
        point = _ROW_WAY
        if b"{" not in raw:             # (" {...}" is a dict too, which a nested row would flatten)
            try:
                point = one_value(raw.decode("utf-8"))
            except Exception:            # (an undecodable text: the row path meets it as it does)
                pass
        seen[raw] = point
        out.append(point)
    return out


def stream_points(records, row_axes, one_value, slow, size: int) -> Iterator:
    """history_columns.stream_points, with the records this module can read taken a chunk at a
    time as ArrayBatches; the others go through history_columns, in order."""
    from . import history_columns
    from .records import HistoryPayload, HistorySpan
    from ...metric_stream import ArrayBatches
    if not ENABLED:
        yield from history_columns.stream_points(_one_by_one(records), row_axes, one_value, slow, size)
        return
    arrays, reader, shapes = ArrayBatches(size), ChunkReader(one_value), history_columns._Shapes()
    chunk: list = []
    yielded = False

    def row_way(run):
        for batch in history_columns.stream_points(run, row_axes, one_value, slow, size, shapes):
            if len(batch.name):
                yield batch

    def span_way(span):
        chunk.append(span)
        yield from flush()

    def flush():
        pieces = reader.pieces(chunk[0] if chunk and type(chunk[0]) is HistorySpan else chunk)
        for kind, piece in pieces:
            if kind == "arrays":
                arrays.add(*piece)
                while arrays.full():
                    yield arrays.take()
            else:              # the row way's points join the arrays, in order, where they can
                for batch in row_way(piece):
                    if not arrays.add_points(batch):
                        yield from arrays.rest()
                        yield batch
                    while arrays.full():
                        yield arrays.take()
        chunk.clear()

    for r in records:
        if type(r) is HistorySpan:         # a span's history records: read as they lie
            for batch in flush():
                yielded = True
                yield batch
            for batch in span_way(r):
                yielded = True
                yield batch
            continue
        if type(r) is HistoryPayload:
            chunk.append(r)
            if len(chunk) < CHUNK:
                continue
            for batch in flush():
                yielded = True
                yield batch
        else:                      # a decoded record: the row way
            for batch in (*flush(), *arrays.rest(), *row_way([r])):
                yielded = True
                yield batch
    for batch in (*flush(), *arrays.rest()):
        yielded = True
        yield batch
    if not yielded:
        yield history_columns.Metrics()


def _one_by_one(records) -> Iterator:
    """The records with each HistorySpan among them given as its HistoryPayloads."""
    from .records import HistorySpan
    for r in records:
        if type(r) is HistorySpan:
            yield from r.payloads()
        else:
            yield r

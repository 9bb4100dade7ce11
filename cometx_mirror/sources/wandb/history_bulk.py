"""History records read a chunk at a time with NumPy: no Python work per record or per point.

A long run repeats a few key lists, and every history row of one is the same bytes apart
from `num`, the value texts and the step (record_shapes.py spells the layout out).  Here
a chunk of records is joined into one byte array and each known key list's layout is
checked for all of them at once, field by field: the tags, each length byte against what
follows, the key literals, the record's length against the payload.  The texts are then
run through the JSON number grammar as a table-driven automaton over a padded 2-D array
(a column per byte position), which also tells the integers apart; floats go through
Python's own float() (mapped in C) and integers the exact rule of the row path (value
float(int(text)), text str(int(text))).  The axes are taken only in forms whose result is
plain (a `_step` of digits, a float-form `_timestamp`, an `epoch` the row rule makes an
int or nothing); any record not proven that way goes back to the row path, in order.
A metric text that is no number (true, a string, null) is given the row path's own rule
(`one_value`) where it lies, once per distinct text in a chunk, so a run that logs one
such key every row still reads in bulk; a text that may be a dict (nested metrics, media)
sends its record the row way.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from . import decimal_floats
from .common import HISTORY_AXES
from .record_shapes import varint
from ...metric_stream import UNSET

ENABLED = True         # tests turn the bulk path off to compare it with the row path
CHUNK = 4096           # records joined per chunk
_LAYOUTS = 16          # key lists learnt per run (a run logs a handful)
_LEARN_TRIES = 8       # records decoded per chunk to learn a key list the chunk's others may share
_PAD = 256             # zero bytes after a chunk: a layout's reads past a short record stay in the array
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


class Layout:
    """One key list's wire layout (wandb-core's `nested_key` or the legacy `key`), and where
    its axes and metrics are.  A key is a str, or the tuple of a nested key's parts (as
    wandb-core writes `run.log({"train": {"loss": x}})`): its metric is named and ordered as
    the row path's flattened row names it ("train.loss", the parts of one dict together)."""

    def __init__(self, keys: tuple, legacy: bool):
        self.keys = keys
        self.literals = [np.frombuffer(item_literal(k, legacy) + b"\x82\x01", np.uint8) for k in keys]
        # an item's length is one byte here (literal + text length byte + a text of at least one byte)
        self.usable = all(len(lit) + 2 < 0x80 for lit in self.literals) and _plain_paths(keys)
        self.step_at = keys.index("_step") if "_step" in keys else None
        self.time_at = keys.index("_timestamp") if "_timestamp" in keys else None
        self.epoch_at = keys.index("epoch") if "epoch" in keys else None
        named = _flattened(keys) if self.usable else []
        self.metric_at = [i for name, i in named if name not in HISTORY_AXES]
        self.names = [name for name, _ in named if name not in HISTORY_AXES]

    def fields(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        """(ok, text starts (m, k), text lengths (m, k), step num or UNSET) of these records:
        ok where the bytes are exactly this layout, as protobuf would parse them."""
        limit = len(buf) - _PAD
        p = starts.astype(np.int64)
        ok = buf[p] == 0x08                                  # num
        n, _, good = _varint(buf, p + 1, 10)
        ok &= good
        p = np.minimum(p + 1 + n, limit)
        ok &= buf[p] == 0x12                                 # history
        n, length, good = _varint(buf, p + 1, 4)
        ok &= good
        p = np.minimum(p + 1 + n, limit)
        ok &= length == (ends - p).astype(np.uint64)
        k = len(self.literals)
        text_at = np.empty((len(p), k), np.int64)
        text_len = np.empty((len(p), k), np.int64)
        for j, literal in enumerate(self.literals):
            item = buf[p + 1].astype(np.int64)
            ok &= (buf[p] == 0x0a) & (item < 0x80)
            q = p + 2
            ok &= (buf[q[:, None] + np.arange(len(literal))] == literal).all(axis=1)
            q = q + len(literal)
            size = buf[q].astype(np.int64)
            ok &= (size > 0) & (size < 0x80) & (item == len(literal) + 1 + size)
            text_at[:, j], text_len[:, j] = q + 1, size
            p = np.minimum(q + 1 + size, limit)
        # the step: none, `12 00` (num 0), or `12 <1 + varint length> 08 <varint>` of at most 8 bytes
        rest = ends - p
        tag, size = buf[p], buf[p + 1].astype(np.int64)
        n, num, good = _varint(buf, p + 3, 8)
        empty = (rest == 2) & (tag == 0x12) & (size == 0)
        full = (rest == 2 + size) & (tag == 0x12) & (buf[p + 2] == 0x08) & good & (size == 1 + n)
        ok &= (rest == 0) | empty | full
        step = np.where(full, num.astype(np.int64), np.where(empty, 0, UNSET))
        return ok, text_at, text_len, step


def item_literal(key, legacy: bool) -> bytes:
    """A HistoryItem's (or SummaryItem's) key fields on the wire: `key` (field 1) in the legacy
    form, else one `nested_key` (field 2) per part."""
    if legacy:
        return b"\x0a" + varint(len(key.encode())) + key.encode()
    return b"".join(b"\x12" + varint(len(part.encode())) + part.encode()
                    for part in ((key,) if isinstance(key, str) else key))


def _plain_paths(keys: tuple) -> bool:
    """No key is a prefix of another (the row would fold one into the other) and no nested part
    past the first is `_type` (its dict could be a media object, which the row path keeps whole)."""
    paths = [(k,) if isinstance(k, str) else k for k in keys]
    if any("_type" in path[1:] for path in paths):
        return False
    whole = set(paths)
    return not any(path[:n] in whole for path in paths for n in range(1, len(path)))


def _flattened(keys: tuple) -> list[tuple[str, int]]:
    """(name, item index) of each key as common.flatten names the row history_row builds: the
    parts joined with dots, in the order of that row's nested dicts."""
    tree: dict = {}
    for i, key in enumerate(keys):
        node = tree
        for part in ((key,) if isinstance(key, str) else key)[:-1]:
            node = node.setdefault(part, {})
        node[key if isinstance(key, str) else key[-1]] = i

    def walk(node: dict, prefix: str):
        for part, value in node.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{part}.")
            else:
                yield f"{prefix}{part}", value
    return list(walk(tree, ""))


def _varint(buf: np.ndarray, p: np.ndarray, most: int):
    """(byte count, value, ended within `most` bytes) of the varints at p."""
    value = np.zeros(len(p), np.uint64)
    count = np.zeros(len(p), np.int64)
    going = np.ones(len(p), bool)
    for i in range(most):
        byte = buf[p + i]
        value |= np.where(going, (byte & 0x7F).astype(np.uint64) << np.uint64(7 * i), np.uint64(0))
        count += going
        going &= byte >= 0x80
    return count, value, ~going


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


class ChunkReader:
    """The key lists learnt so far, and the reading of a chunk of history payloads.
    one_value(text) -> (double, exact text) or None: the row path's rule for a value text."""

    def __init__(self, one_value):
        self.layouts: dict[tuple, Layout | None] = {}
        self.one_value = one_value

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
        owner = np.full(len(chunk), -1, np.int64)
        found: list[tuple] = []            # (layout, rows, per-row results) per layout that read some
        tried = 0
        for layout in [lay for lay in self.layouts.values() if lay is not None]:
            self._try(layout, buf, starts, ends, owner, found)
        while tried < _LEARN_TRIES and (left := np.flatnonzero(owner == -1)).size:
            tried += 1
            layout = self._learn(chunk[int(left[0])])
            if layout is None or not self._try(layout, buf, starts, ends, owner, found, left):
                owner[left[0]] = -2        # not readable here: the row path takes it
        owner[owner < 0] = -1
        yield from _runs(chunk, owner, found)

    def _try(self, layout: Layout, buf, starts, ends, owner, found, rows=None) -> bool:
        rows = np.flatnonzero(owner == -1) if rows is None else rows
        if not rows.size:
            return False
        ok, text_at, text_len, step = layout.fields(buf, starts[rows], ends[rows])
        rows, text_at, text_len, step = rows[ok], text_at[ok], text_len[ok], step[ok]
        if not rows.size:
            return False
        read = _values(layout, buf, text_at, text_len, step, self.one_value)
        if read is None:
            return False
        keep, values, exact, present, steps, times, epochs = read
        if not keep.all():
            rows, values, steps, times = rows[keep], values[keep], steps[keep], times[keep]
            exact = None if exact is None else exact[keep]
            present = None if present is None else present[keep]
            epochs = None if epochs is None else epochs[keep]
        if not rows.size:
            return False
        owner[rows] = len(found)
        found.append((layout, rows, values, exact, present, steps, times, epochs))
        return True

    def _learn(self, record) -> Layout | None:
        """The layout of a record's key list, from the record decoded (it is cached there for
        the row path); None for one the bulk path does not take."""
        try:
            items = record.item
        except Exception:
            return None                    # damaged: the row path reports it, in order
        nested = [tuple(it.nested_key) for it in items]
        parts = {*map(len, nested)}
        if parts and 0 not in parts:     # one part a str, a nested key its parts
            keys, legacy = tuple(n[0] if len(n) == 1 else n for n in nested), False
        elif parts == {0}:
            keys, legacy = tuple(it.key for it in items), True
        else:
            return None
        if (keys, legacy) in self.layouts:
            return None                    # known: it did not read this record
        layout = None
        if keys and len(set(keys)) == len(keys) and len(self.layouts) < _LAYOUTS:
            layout = Layout(keys, legacy)
            layout = layout if layout.usable else None
        self.layouts[keys, legacy] = layout
        return layout


# a time or epoch far out of range overflows on its way to ms or an int: those rows go the row way,
# so NumPy's warnings of them would only be noise on the user's terminal
@np.errstate(over="ignore", invalid="ignore")
def _values(layout: Layout, buf, text_at, text_len, step, one_value):
    """(rows kept, values (m, metrics), exact texts or None, which points are points (m, metrics)
    or None for all, steps, times, epochs or None) of records whose axes take a plain form and
    whose metric texts are numbers or values `one_value` reads."""
    m, k = text_at.shape
    grid, state = _texts(buf, text_at.ravel(), text_len.ravel())
    state = state.reshape(m, k)
    valid = (state == _WHOLE) | (state == _FLOAT)
    axes = [j for j in (layout.step_at, layout.time_at, layout.epoch_at) if j is not None]
    keep = valid[:, axes].all(axis=1) if axes else np.ones(m, bool)
    strings = _strings(grid)
    for i in np.flatnonzero(~valid.ravel()).tolist():
        strings[i] = b"0"        # not a number (its record is not kept): float() must not fail on it

    def column(j):
        return strings[j::k]

    # every text as a double at once (float()'s own bits), float() itself for the few it leaves
    fast, exact_fast = decimal_floats.parse(grid)
    exact_fast &= valid.ravel() & (state.ravel() == _FLOAT)

    def floats(at: np.ndarray) -> np.ndarray:
        out = fast[at]
        slow = np.flatnonzero(~exact_fast[at])
        if slow.size:
            out[slow] = [float(strings[i]) for i in at[slow].tolist()]
        return out

    if layout.step_at is not None:
        j = layout.step_at
        digits = (state[:, j] == _WHOLE) & (text_len[:, j] <= _INT_DIGITS) & (grid.reshape(m, k, -1)[:, j, 0]
                                                                             != ord("-"))
        keep &= digits
        step = np.fromiter((int(t) if d else 0 for t, d in zip(column(j), digits.tolist())), np.int64, m) \
            if not digits.all() else np.fromiter(map(int, column(j)), np.int64, m)
    times = np.full(m, UNSET, np.int64)
    if layout.time_at is not None:
        j = layout.time_at
        keep &= state[:, j] == _FLOAT            # an integer time goes the row way (int arithmetic)
        seconds = floats(np.arange(m) * k + j)
        ms = seconds * 1000
        finite = np.isfinite(ms)
        # a finite time whose ms overflow goes the row way too (which fails on it, as today)
        keep &= ~np.isfinite(seconds) | (finite & (np.abs(ms) < _MS_LIMIT))
        times = np.where(finite & (np.abs(ms) < _MS_LIMIT), np.trunc(np.where(finite, ms, 0)), UNSET).astype(np.int64)
    epochs = None
    if layout.epoch_at is not None:
        j = layout.epoch_at
        whole = state[:, j] == _WHOLE
        keep &= ~whole | (text_len[:, j] <= _INT_DIGITS)
        number = floats(np.arange(m) * k + j)
        integral = np.isfinite(number) & (np.trunc(number) == number)
        keep &= whole | ~integral | (np.abs(number) < _MS_LIMIT)
        epochs = np.where(integral & ~whole, np.trunc(np.where(integral, number, 0)), 0).astype(np.int64)
        epochs = np.where(integral | whole, epochs, UNSET)
        if whole.any():                          # exact ints: a float of 18 digits would round
            at = np.flatnonzero(whole & keep)
            texts = column(j)
            epochs[at] = np.fromiter((int(texts[i]) for i in at.tolist()), np.int64, len(at))
    if not keep.any():
        return None
    metric_at = layout.metric_at
    if not metric_at:
        values = np.empty((m, 0), np.float64)
        return keep, values, None, None, step, times, epochs
    flat = (np.arange(m)[:, None] * k + np.asarray(metric_at)[None, :]).ravel()
    values = floats(flat)
    exact = None
    integers = np.flatnonzero(state.ravel()[flat] == _WHOLE)
    if integers.size:                            # as the row path: value float(int(t)), text str(int(t))
        exact = np.full(len(flat), None, object)
        for i in integers.tolist():
            number = int(strings[flat[i]])
            values[i], exact[i] = float(number), str(number)
    present = None
    others = np.flatnonzero(~valid.ravel()[flat] & np.repeat(keep, len(metric_at)))
    if others.size:
        exact = np.full(len(flat), None, object) if exact is None else exact
        present = np.ones(len(flat), bool)
        lost = _other_values(buf, text_at.ravel()[flat[others]], text_len.ravel()[flat[others]], one_value)
        for i, point in zip(others.tolist(), lost):
            if point is _ROW_WAY:
                keep[i // len(metric_at)] = False
            elif point is None:
                present[i] = False
            else:
                values[i], exact[i] = point
        present = present.reshape(m, len(metric_at))
        if not keep.any():
            return None
    exact = None if exact is None else exact.reshape(m, len(metric_at))
    return keep, values.reshape(m, len(metric_at)), exact, present, step, times, epochs


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


def _runs(chunk: list, owner: np.ndarray, found: list) -> Iterator[tuple]:
    """Consecutive records of one owner (a layout that read them, or the row path) as pieces."""
    cuts = np.flatnonzero(np.diff(owner)) + 1
    bounds = [0, *cuts.tolist(), len(owner)]
    for a, b in zip(bounds, bounds[1:]):
        who = int(owner[a])
        if who < 0:
            yield "records", chunk[a:b]
            continue
        layout, rows, values, exact, present, steps, times, epochs = found[who]
        lo, hi = np.searchsorted(rows, [a, b])
        n, k = hi - lo, len(layout.names)
        columns = [np.tile(np.arange(k, dtype=np.int32), n), np.repeat(steps[lo:hi], k),
                   np.repeat(times[lo:hi], k), values[lo:hi].ravel(),
                   None if epochs is None else np.repeat(epochs[lo:hi], k),
                   None if exact is None else exact[lo:hi].ravel()]
        if present is not None:            # the texts no point comes of (a string, null) are left out
            there = present[lo:hi].ravel()
            columns = [None if c is None else c[there] for c in columns]
        codes, steps_, times_, values_, epochs_, exact_ = columns
        yield "arrays", (layout.names, codes, steps_, times_, values_, epochs_,
                         None if exact_ is None else exact_.tolist())


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

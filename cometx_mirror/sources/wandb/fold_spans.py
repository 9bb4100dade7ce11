"""The store-time fold's history records taken a framed span at a time (records.fold, history=False).

Folded without their points, history records leave three things: how many there are, the
latest `_timestamp` among them, and the rows that log media.  A span's records are told
apart by their first bytes for all at once (`num`, then the history or summary tag), and
each history record's `_timestamp` text is found where records.history_timestamp_text finds
it, by one scan of the span's buffer for the key and its neighbouring bytes checked with
NumPy; the texts become doubles a column at a time (decimal_floats, float() for the rest).
A span is taken this way only when every history record in it is proven plain so (no media
mark, one `_timestamp`, a float-form text, milliseconds within int64): then the records one
by one would have changed nothing but the count and the latest time, in any order, since
they touch nothing else the fold keeps.  Otherwise the span goes the one-by-one way.
The summary records beside the rows are matched to the known summary key sets a run at a time
(`matching`, record_shapes.summary_literals read for many records at once, in any item order), so
that only the last record of each set is held; any other record goes one by one, in order.
"""
from __future__ import annotations

import numpy as np

from . import decimal_floats, history_bulk, history_items

HISTORY_TAG, SUMMARY_TAG = 0x12, 0x1A
_NUM_BYTES = 10          # a longer `num` varint: the span goes the one-by-one way
_KEY = b"_timestamp"     # no prefix of it is also its suffix: occurrences never overlap
_MEDIA = b"_type"        # (likewise)
_MS_LIMIT = 9.2e18


def leading_tags(span) -> tuple[np.ndarray, np.ndarray]:
    """(untold, tag) per record: tag the byte after a leading `num` (records._starts_as's
    reading), 0 for a record that does not start so; untold where `num` runs past
    _NUM_BYTES continuation bytes (then the caller reads the span one by one)."""
    starts, ends = span.starts, span.ends
    view = np.frombuffer(span.data + bytes(_NUM_BYTES + 2), np.uint8)
    first = (view[starts] == 0x08) & (ends - starts >= 3)
    tag_at = np.full(len(starts), -1, np.int64)
    going = first.copy()
    for k in range(1, _NUM_BYTES + 1):        # the varint's last byte is the first below 0x80
        last = going & (view[starts + k] < 0x80)
        tag_at[last] = starts[last] + k + 1
        going &= ~last
    told = (tag_at >= 0) & (tag_at < ends)
    return going, np.where(told, view[np.where(told, tag_at, 0)], 0)


def _occurrences(data: bytes, word: bytes, starts: np.ndarray, ends: np.ndarray):
    """(record of each occurrence of `word` wholly inside a record, its position), and the
    count per record."""
    pieces = data.split(word)           # (in C: the pieces' lengths give the positions)
    at = np.cumsum(np.fromiter(map(len, pieces), np.int64, len(pieces))[:-1] + len(word)) - len(word)
    record = np.searchsorted(starts, at, side="right") - 1
    inside = (record >= 0) & (at + len(word) <= ends[np.maximum(record, 0)])
    record, at = record[inside], at[inside]
    return record, at, np.bincount(record, minlength=len(starts))


def history_times(span, history: np.ndarray) -> int | None | bool:
    """The latest `_timestamp` (ms) of the span's history records, None when they have none
    that is finite, or False when some record must be read the one-by-one way."""
    idx = np.flatnonzero(history)
    if not idx.size:
        return None
    data, starts, ends = span.data, span.starts, span.ends
    _, _, media = _occurrences(data, _MEDIA, starts, ends)
    if media[idx].any():
        return False
    record, at, count = _occurrences(data, _KEY, starts, ends)
    if (count[idx] != 1).any():
        return False
    where = np.full(len(starts), -1, np.int64)
    where[record] = at
    p, a, b = where[idx], starts[idx], ends[idx]
    view = np.frombuffer(data + bytes(history_bulk._PAD), np.uint8)
    # records._TIMESTAMP_ITEM: 0a <item length> (0a|12) 0a "_timestamp" 82 01 <text length>
    ok = (p - 4 >= a) & (p + 12 < b)
    ok &= (view[p - 4] == 0x0A) & (view[p - 3] < 0x80) & ((view[p - 2] == 0x0A) | (view[p - 2] == 0x12))
    ok &= (view[p - 1] == 0x0A) & (view[p + 10] == 0x82) & (view[p + 11] == 0x01) & (view[p + 12] < 0x80)
    ok &= view[p - 3].astype(np.int64) == 15 + view[p + 12].astype(np.int64)
    if not ok.all():
        return False
    text_at = p + 13
    length = np.minimum(view[p + 12].astype(np.int64), b - text_at)     # a slice stops at the record's end
    grid, state = history_bulk._texts(view, text_at, length)
    if (state != history_bulk._FLOAT).any():
        return False          # an integer, a string, anything not float-form: json's way
    seconds, exact = decimal_floats.parse(grid)
    slow = np.flatnonzero(~exact)
    if slow.size:
        texts = history_bulk._strings(grid[slow])
        seconds[slow] = [float(t) for t in texts]
    ms = seconds * 1000
    finite = np.isfinite(ms)
    if (np.isfinite(seconds) & ~finite).any() or (np.abs(ms[finite]) >= _MS_LIMIT).any():
        return False          # ms past a double or int64: the one-by-one way decides
    if not finite.any():             # (NaN and Infinity tell nothing, as one by one)
        return None
    return int(np.trunc(ms[finite]).max())


def span_view(span) -> np.ndarray:
    """The span's bytes as `covered` reads them (padded): made once a span."""
    return np.frombuffer(span.data + bytes(history_bulk._PAD), np.uint8)


def matching(shapes: list, span, rows: np.ndarray, view: np.ndarray | None = None,
             codes: history_items.KeyCodes | None = None) -> np.ndarray:
    """For the span's records `rows`, the index in `shapes` (key sets: record_shapes.summary_literals)
    of the key set each is of, -1 for none: each record walked as history_items walks a summary
    record (one-byte lengths: a longer one is left to summary_literals, one by one), of a set when its
    items' keys are that set, each once.  `view`: span_view(span); `codes`: the fold's KeyCodes."""
    view = span_view(span) if view is None else view
    items = history_items.walk(view, span.starts[rows], span.ends[rows], codes or history_items.KeyCodes(),
                               record_tag=SUMMARY_TAG, step=False)
    n, width = len(rows), len(items.literals) + 1
    pair = np.sort(items.record * width + items.key)
    plain = items.ok.copy()
    plain[pair[1:][pair[1:] == pair[:-1]] // width] = False          # a key twice
    count = np.bincount(items.record, minlength=n)
    out = np.full(n, -1, np.int64)
    for j, shape in enumerate(shapes):
        held = np.array([literal in shape for literal in items.literals] or [False], bool)
        inside = np.bincount(items.record[held[items.key]], minlength=n) if len(items.key) else count
        out[plain & (count == len(shape)) & (inside == count)] = j
    return out

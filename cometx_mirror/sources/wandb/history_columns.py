"""HistoryRecords → metric columns, a batch at a time, with the per-point work done in bulk.

A long run is millions of `HistoryItem {nested_key: [name], value_json: text}`.  Per
record this reads the names and texts out with list comprehensions and C-level maps,
and the axes (_step, _timestamp, epoch) from a dict of them; per batch it checks every
text against the number grammar and converts them with `float`, both mapped in C, and
finds the integers (whose exact text is kept) with one regex over the joined texts.  A
record that does not fit that shape (a nested key, a key twice, a typed value, a dict
value) or a batch holding other texts (true, strings, null) is handed back to the
row-by-row mapping, which gives the same points one at a time.

A record handed over as its bytes (a records.HistoryPayload, as iter_history yields them)
is first tried against the byte shape of its key list (record_shapes.HistoryShape): its
texts are then taken without protobuf, as number tokens, and decoded in bulk the same way;
a record no shape reads is decoded and goes the ways above.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate, repeat
from operator import attrgetter, itemgetter
from typing import Callable, Iterable, Iterator

from ...model import Metrics
from .common import HISTORY_AXES
from .record_shapes import HistoryShape
from .records import HistoryPayload, _loads

_AXES = frozenset(HISTORY_AXES)
_FIRST, _KEY, _VALUE_JSON = itemgetter(0), attrgetter("key"), attrgetter("value_json")
_NESTED = attrgetter("nested_key")
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_TOKEN = rf"(?:{_NUMBER}|NaN|-?Infinity)"
_ONE_NUMBER = re.compile(_TOKEN)      # one regex over the joined texts would keep a backtracking
                                      # stack of ~600 bytes a point: matched per text, mapped in C
_INTEGER = re.compile(r"^-?(?:0|[1-9][0-9]*)$", re.M)
_INTEGER_BYTES = re.compile(_INTEGER.pattern.encode(), re.M)


def _axis(text: str):
    return int(text) if text.isdigit() else _loads(text)


_DECIMAL = re.compile(rb"-?(?:0|[1-9][0-9]*)\.[0-9]+")


def _axis_bytes(text: bytes):
    """_axis of a raw text: a plain decimal is the same double from float() as from json."""
    if text.isdigit():
        return int(text)
    return float(text) if _DECIMAL.fullmatch(text) else _loads(text.decode("ascii"))


_LAYOUTS: dict[tuple, tuple | None] = {}
_LAYOUT_CACHE = 1024     # distinct key lists remembered (a run logs a handful)


def _layout(keys: tuple) -> tuple | None:
    """Where a record with these keys has its axes and metrics: (axis (name, index) pairs,
    metric names in logged order, a getter of their texts); None for a key logged twice.
    Every row of a run logs the same keys, so this is worked out once per key list."""
    try:
        return _LAYOUTS[keys]
    except KeyError:
        pass
    if len(set(keys)) != len(keys):
        layout = None
    else:
        axes = tuple((k, keys.index(k)) for k in ("_step", "_timestamp", "epoch") if k in keys)
        at = [i for i, k in enumerate(keys) if k not in _AXES]
        pick = itemgetter(*at) if len(at) > 1 else (lambda texts: [texts[at[0]]]) if at else (lambda texts: ())
        layout = axes, [keys[i] for i in at], pick
    if len(_LAYOUTS) >= _LAYOUT_CACHE:
        _LAYOUTS.clear()
    _LAYOUTS[keys] = layout
    return layout


class _Segment:
    """Fast-path points not yet decoded: names, value texts and each point's axes."""

    def __init__(self):
        self.raw: bool | None = None      # texts as bytes (read by shape) or str (from protobuf)
        self.names: list[str] = []
        self.texts: list[str] = []
        self.step: list = []
        self.epoch: list = []
        self.timestamp: list = []

    def __len__(self) -> int:
        return len(self.names)

    def add(self, r, row_axes) -> bool:
        """Take a record's points; False (nothing taken) when it needs the row mapping."""
        items = r.item
        if not items:
            return False
        # map() over a getter: the loop runs in C, not a bytecode loop per item
        nested = list(map(_NESTED, items))
        parts = {*map(len, nested)}
        if parts == {1}:             # wandb-core: every key one part
            keys = tuple(map(_FIRST, nested))
        elif parts == {0}:           # the legacy writer's `key`
            keys = tuple(map(_KEY, items))
        else:
            return False             # a nested key (or both forms)
        layout = _layout(keys)
        if layout is None:
            return False             # a key twice
        texts = list(map(_VALUE_JSON, items))
        if any(map(type(items[0]).WhichOneof, items, repeat("value"))):
            return False             # a typed (non-JSON) value
        if "{" in "".join(texts):
            return False             # maybe a dict value (nested metrics, media)
        axis_at, names, pick = layout
        axes = {k: _axis(texts[i]) for k, i in axis_at}
        if "_step" not in axes and r.HasField("step"):
            axes["_step"] = r.step.num
        self._row(names, pick(texts), row_axes(axes))
        return True

    def add_texts(self, layout: tuple, texts: tuple, step_num: int | None, row_axes) -> None:
        """A record's value texts (bytes, in key order) read by its HistoryShape."""
        axis_at, names, pick = layout
        axes = {k: _axis_bytes(texts[i]) for k, i in axis_at}
        if "_step" not in axes and step_num is not None:
            axes["_step"] = step_num
        self._row(names, pick(texts), row_axes(axes))

    def _row(self, names, texts, step_ts_epoch: tuple) -> None:
        """One record's points: its metric names and texts, each point with the record's axes."""
        step, ts, epoch = step_ts_epoch
        self.names += names
        self.texts += texts
        n = len(names)
        self.step += [step] * n
        self.epoch += [epoch] * n
        self.timestamp += [ts] * n

    def decode(self, one_value: Callable[[str], tuple[float, str | None] | None]) -> Metrics:
        """The segment's points; `one_value` maps a text the bulk path does not take."""
        texts, n = self.texts, len(self.texts)
        # a raw segment's texts are number tokens (bytes): their shape matched only those
        if self.raw or all(map(_ONE_NUMBER.fullmatch, texts)):
            joined = (b"\n" if self.raw else "\n").join(texts)
            values = list(map(float, texts))
            exact: list = [None] * n
            starts = None
            for m in (_INTEGER_BYTES if self.raw else _INTEGER).finditer(joined):
                if starts is None:       # where each text starts in `joined`
                    starts = list(accumulate((len(t) + 1 for t in texts), initial=0))
                i = bisect_right(starts, m.start()) - 1
                number = int(texts[i])
                values[i], exact[i] = float(number), str(number)
            return Metrics(name=self.names, value=values, step=self.step, epoch=self.epoch,
                           timestamp=self.timestamp, context=[None] * n, text=exact)
        out = Metrics()
        for name, text, step, epoch, ts in zip(self.names, texts, self.step, self.epoch, self.timestamp):
            point = one_value(text)
            if point is not None:
                out.add(name, point[0], step, epoch, ts, None, point[1])
        return out


def _extend(out: Metrics, more: Metrics) -> Metrics:
    if not out.name:
        return more
    out.extend(more)
    return out


def stream_points(records: Iterable, row_axes, one_value, slow: Callable[[object, Metrics], None],
                  size: int, shapes: "_Shapes | None" = None) -> Iterator[Metrics]:
    """Batches of about `size` points (a record is never split) from HistoryRecords in order.

    row_axes(axes dict) -> (step, timestamp ms, epoch); one_value(text) -> (double, exact
    text) or None; slow(record, out) adds a record's points the row-by-row way."""
    out, segment = Metrics(), _Segment()
    shapes = _Shapes() if shapes is None else shapes      # (the caller's, learnt across its calls)
    for r in records:
        if type(r) is HistoryPayload:
            # the shape that read the last record nearly always reads this one: tried first, inline
            got = shapes.last.read(r.payload) if shapes.last is not None else None
            read = (shapes.last.layout, *got) if got is not None else shapes.read(r)
            if read is not None:
                if segment.raw is False:          # a segment holds texts of one kind
                    out, segment = _extend(out, segment.decode(one_value)), _Segment()
                segment.raw = True
                segment.add_texts(*read, row_axes)
                read = True
        else:
            read = None
        if read is None:
            if segment.raw and len(segment):
                out, segment = _extend(out, segment.decode(one_value)), _Segment()
            record = r.record if type(r) is HistoryPayload else r
            if segment.add(record, row_axes):
                segment.raw = False
            else:
                if len(segment):
                    out, segment = _extend(out, segment.decode(one_value)), _Segment()
                slow(record, out)
        if len(segment) + len(out.name) >= size:
            yield _extend(out, segment.decode(one_value))
            out, segment = Metrics(), _Segment()
    yield _extend(out, segment.decode(one_value))


class _Shapes:
    """The byte shapes of the key lists seen so far; a record is tried against the last one
    that read a record (by the caller, inline), then the others, then decoded to learn its keys."""

    def __init__(self):
        self.known: dict[tuple, HistoryShape | None] = {}
        self.last: HistoryShape | None = None

    def read(self, r: HistoryPayload):
        """(layout, texts, step num) of a record the last shape did not read, from its bytes, else None."""
        payload = r.payload
        for shape in self.known.values():
            if shape is not None and shape is not self.last and (got := shape.read(payload)) is not None:
                self.last = shape
                return shape.layout, *got
        shape = self._learn(r.record)
        if shape is not None and (got := shape.read(payload)) is not None:
            self.last = shape
            return shape.layout, *got
        return None

    def _learn(self, record) -> HistoryShape | None:
        """The shape of a decoded record's key list (None for one the bulk path does not take)."""
        items = record.item
        nested = list(map(_NESTED, items))
        parts = {*map(len, nested)}
        if parts == {1}:
            keys, legacy = tuple(map(_FIRST, nested)), False
        elif parts == {0}:
            keys, legacy = tuple(map(_KEY, items)), True
        else:
            return None
        if (keys, legacy) in self.known:
            return self.known[keys, legacy]
        layout = _layout(keys)
        shape = None
        if layout is not None and len(self.known) < _SHAPES:
            shape = HistoryShape(keys, legacy)
            shape.layout = layout
            if not shape.usable:
                shape = None
        self.known[keys, legacy] = shape
        return shape


_SHAPES = 16      # shapes tried per run: a run logs a handful of key lists

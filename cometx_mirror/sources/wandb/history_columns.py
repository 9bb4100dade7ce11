"""HistoryRecords → metric columns, a batch at a time, with the per-point work done in bulk.

A long run is millions of `HistoryItem {nested_key: [name], value_json: text}`.  Per
record this reads the names and texts out with list comprehensions and C-level maps,
and the axes (_step, _timestamp, epoch) from a dict of them; per batch it checks every
text against the number grammar and converts them with `float`, both mapped in C, and
finds the integers (whose exact text is kept) with one regex over the joined texts.  A
record that does not fit that shape (a nested key, a key twice, a typed value, a dict
value) or a batch holding other texts (true, strings, null) is handed back to the
row-by-row mapping, which gives the same points one at a time.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate, repeat
from operator import attrgetter, itemgetter
from typing import Callable, Iterable, Iterator

from ...model import Metrics
from .common import HISTORY_AXES
from .records import _loads

_AXES = frozenset(HISTORY_AXES)
_FIRST, _KEY, _VALUE_JSON = itemgetter(0), attrgetter("key"), attrgetter("value_json")
_NESTED = attrgetter("nested_key")
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_TOKEN = rf"(?:{_NUMBER}|NaN|-?Infinity)"
_ONE_NUMBER = re.compile(_TOKEN)      # one regex over the joined texts would keep a backtracking
                                      # stack of ~600 bytes a point: matched per text, mapped in C
_INTEGER = re.compile(r"^-?(?:0|[1-9][0-9]*)$", re.M)


def _axis(text: str):
    return int(text) if text.isdigit() else _loads(text)


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
        step, ts, epoch = row_axes(axes)
        self.names += names
        self.texts += pick(texts)
        n = len(names)
        self.step += [step] * n
        self.epoch += [epoch] * n
        self.timestamp += [ts] * n
        return True

    def decode(self, one_value: Callable[[str], tuple[float, str | None] | None]) -> Metrics:
        """The segment's points; `one_value` maps a text the bulk path does not take."""
        texts, n = self.texts, len(self.texts)
        if all(map(_ONE_NUMBER.fullmatch, texts)):
            joined = "\n".join(texts)
            values = list(map(float, texts))
            exact: list = [None] * n
            starts = None
            for m in _INTEGER.finditer(joined):
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


_COLUMNS = ("name", "value", "step", "epoch", "timestamp", "context", "text")


def _extend(out: Metrics, more: Metrics) -> Metrics:
    if not out.name:
        return more
    for column in _COLUMNS:
        getattr(out, column).extend(getattr(more, column))
    return out


def stream_points(records: Iterable, row_axes, one_value, slow: Callable[[object, Metrics], None],
                  size: int) -> Iterator[Metrics]:
    """Batches of about `size` points (a record is never split) from HistoryRecords in order.

    row_axes(axes dict) -> (step, timestamp ms, epoch); one_value(text) -> (double, exact
    text) or None; slow(record, out) adds a record's points the row-by-row way."""
    out, segment = Metrics(), _Segment()
    for r in records:
        if not segment.add(r, row_axes):
            if len(segment):
                out, segment = _extend(out, segment.decode(one_value)), _Segment()
            slow(r, out)
        if len(segment) + len(out.name) >= size:
            yield _extend(out, segment.decode(one_value))
            out, segment = Metrics(), _Segment()
    yield _extend(out, segment.decode(one_value))

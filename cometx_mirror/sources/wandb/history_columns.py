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
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_TOKEN = rf"(?:{_NUMBER}|NaN|-?Infinity)"
_ONE_NUMBER = re.compile(_TOKEN)      # one regex over the joined texts would keep a backtracking
                                      # stack of ~600 bytes a point: matched per text, mapped in C
_INTEGER = re.compile(r"^-?(?:0|[1-9][0-9]*)$", re.M)


def _axis(text: str):
    return int(text) if text.isdigit() else _loads(text)


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
        nested = [it.nested_key for it in items]
        parts = {*map(len, nested)}
        if parts == {1}:             # wandb-core: every key one part
            keys = list(map(_FIRST, nested))
        elif parts == {0}:           # the legacy writer's `key`
            keys = list(map(_KEY, items))
        else:
            return False             # a nested key (or both forms)
        # map() over a getter: the loop runs in C, not a bytecode loop per item
        texts = list(map(_VALUE_JSON, items))
        by_key = dict(zip(keys, texts))
        if len(by_key) != len(keys) or any(map(type(items[0]).WhichOneof, items, repeat("value"))):
            return False             # a key twice, or a typed (non-JSON) value
        if "{" in "".join(texts):
            return False             # maybe a dict value (nested metrics, media)
        axes = {k: _axis(by_key[k]) for k in ("_step", "_timestamp", "epoch") if k in by_key}
        if "_step" not in axes and r.HasField("step"):
            axes["_step"] = r.step.num
        step, ts, epoch = row_axes(axes)
        for key in _AXES:            # what is left are the metrics, in logged order
            by_key.pop(key, None)
        self.names += by_key
        self.texts += by_key.values()
        n = len(by_key)
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

"""Metric points read in column batches: one interface for every source.

A long run holds millions of points; holding them all as Python objects costs
~0.6 KB a point.  A normalizer may instead give an experiment a `MetricStream`:
a model.Metrics whose points are produced on demand, a batch of at most
BATCH_POINTS at a time, by re-reading the stored objects.  The index ingests
batch by batch (`batches(metrics)`), so memory stays bounded by one batch;
anything else that reads the columns (push, check, export) gets them whole, read
on first use, exactly as a plain Metrics.  No I/O here: the producer does it.

A reader that decodes points into NumPy arrays hands them on as `ArrayBatch`es
(built by `ArrayBatches`): the index inserts the arrays as they are, with no
Python object per point; any other consumer reads the usual list columns.
"""
from __future__ import annotations

from typing import Callable, Iterator

from .model import Metrics

BATCH_POINTS = 1 << 16
_COLUMNS = ("name", "step", "epoch", "timestamp", "value", "context", "text")


class MetricStream(Metrics):
    """Metrics from `produce()`, an iterator of Metrics batches (callable again for a second read)."""

    def __init__(self, produce: Callable[[], Iterator[Metrics]]):   # no dataclass fields: see _whole
        self._produce = produce
        self._all: Metrics | None = None

    def batches(self) -> Iterator[Metrics]:
        if self._all is not None:
            yield self._all
        else:
            yield from self._produce()

    def whole(self) -> Metrics:
        """Every point as one plain Metrics (read once, then kept)."""
        if self._all is None:
            whole = Metrics()
            for batch in self._produce():
                whole.extend(batch)
            self._all = whole
        return self._all

    def __repr__(self) -> str:
        return "MetricStream(...)" if self._all is None else f"MetricStream({self._all!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Metrics) and all(
            getattr(self, c) == getattr(other, c) for c in _COLUMNS)


def _column(name: str):
    return property(lambda self: getattr(self.whole(), name),
                    lambda self, value: setattr(self.whole(), name, value))


for _name in _COLUMNS:
    setattr(MetricStream, _name, _column(_name))


def batches(metrics: Metrics) -> Iterator[Metrics]:
    """The points of any Metrics as batches: a stream's own, or a plain Metrics as one."""
    if isinstance(metrics, MetricStream):
        return metrics.batches()
    return iter((metrics,))


class BatchBuilder:
    """Collects points column by column and hands out a batch every BATCH_POINTS."""

    def __init__(self, size: int | None = None):
        self.size = size or BATCH_POINTS
        self.batch = Metrics()

    def full(self) -> bool:
        return len(self.batch.name) >= self.size

    def take(self) -> Metrics:
        batch, self.batch = self.batch, Metrics()
        return batch


UNSET = -(1 << 63)    # in an int64 column of an ArrayBatch: no value (a reader holding this very number gives lists)


class ArrayBatch(Metrics):
    """A batch of points held as the NumPy arrays a reader decoded: `codes` (int32) index each
    point's name in `names`; `steps`, `times` (ms) and `epochs` are int64, UNSET where a point has
    none (`epochs` None: none has one); `values` float64; `texts` None, or each point's exact text
    or None.  Context is unset throughout.  The list columns of Metrics are made on first use, so
    a consumer that knows nothing of arrays reads it as any batch."""

    def __init__(self, names: list[str], codes, steps, times, values, epochs=None,
                 texts: list | None = None):   # no dataclass fields: see MetricStream
        self.names, self.codes, self.steps, self.times, self.values = names, codes, steps, times, values
        self.epochs, self.texts = epochs, texts
        self._lists: Metrics | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def whole(self) -> Metrics:
        if self._lists is None:
            n = len(self.codes)
            self._lists = Metrics(name=list(map(self.names.__getitem__, self.codes.tolist())),
                                  step=unset_as_none(self.steps), timestamp=unset_as_none(self.times),
                                  epoch=[None] * n if self.epochs is None else unset_as_none(self.epochs),
                                  value=self.values.tolist(), context=[None] * n,
                                  text=[None] * n if self.texts is None else list(self.texts))
        return self._lists

    def __repr__(self) -> str:
        return f"ArrayBatch({len(self.codes)} points of {len(self.names)} names)"

    __eq__ = MetricStream.__eq__


def unset_as_none(column) -> list:
    """An int64 column as a list, None where it holds UNSET."""
    values = column.tolist()
    if (column == UNSET).any():
        return [None if v == UNSET else v for v in values]
    return values


for _name in _COLUMNS:
    setattr(ArrayBatch, _name, _column(_name))


def _int64s(np, column: list):
    """An int column (None where unset) as int64 with UNSET; TypeError for any other kind of value
    (a float or a bool would be changed by the array), OverflowError past int64, ValueError for UNSET."""
    if not {*map(type, column)} <= {int, type(None)}:
        raise TypeError("not an int column")
    array = np.fromiter((UNSET if v is None else v for v in column), np.int64, len(column))
    if int((array == UNSET).sum()) != column.count(None):
        raise ValueError("UNSET itself")
    return array


class ArrayBatches:
    """Collects points as arrays (each piece with its own list of names, the arguments of
    ArrayBatch) and hands out ArrayBatches of exactly `size` points, the last one shorter."""

    def __init__(self, size: int | None = None):
        self.size = size or BATCH_POINTS
        self._codes: dict[str, int] = {}
        self._pieces: list[tuple] = []
        self._count = 0

    def add(self, names: list[str], codes, steps, times, values, epochs=None, texts: list | None = None) -> None:
        import numpy as np
        remap = np.fromiter((self._codes.setdefault(n, len(self._codes)) for n in names), np.int32, len(names))
        self._pieces.append((remap[codes], steps, times, values, epochs, texts))
        self._count += len(codes)

    def add_points(self, m: Metrics) -> bool:
        """A plain batch's points after the others, as arrays; False (nothing added) when one of
        them has no array form: a context, a value that is not a number, an int outside int64
        (or UNSET itself).  A reader whose row way gives a few points among long runs of arrays
        then hands out full batches, not a short one at every turn."""
        import numpy as np
        if m.context.count(None) != len(m.context) or None in m.value:
            return False
        try:
            steps, times, epochs = (_int64s(np, c) for c in (m.step, m.timestamp, m.epoch))
            values = np.array(m.value, np.float64)
        except (OverflowError, TypeError, ValueError):
            return False
        names = list(dict.fromkeys(m.name))
        at = {name: i for i, name in enumerate(names)}
        codes = np.fromiter(map(at.__getitem__, m.name), np.int32, len(m.name))
        texts = None if m.text.count(None) == len(m.text) else list(m.text)
        self.add(names, codes, steps, times, values, None if (epochs == UNSET).all() else epochs, texts)
        return True

    def __len__(self) -> int:
        return self._count

    def full(self) -> bool:
        return self._count >= self.size

    def take(self) -> ArrayBatch:
        """The first `size` points (all of them when fewer)."""
        import numpy as np
        codes, steps, times, values, epochs, texts = zip(*self._pieces)
        sizes = list(map(len, codes))
        columns = [np.concatenate(c) for c in (codes, steps, times, values)]
        if any(e is not None for e in epochs):
            columns.append(np.concatenate([np.full(n, UNSET, np.int64) if e is None else e
                                           for n, e in zip(sizes, epochs)]))
        else:
            columns.append(None)
        if any(t is not None for t in texts):
            columns.append([t for n, piece in zip(sizes, texts) for t in (piece or [None] * n)])
        else:
            columns.append(None)
        cut = min(self.size, self._count)
        rest = [None if c is None else c[cut:] for c in columns]
        self._count = len(rest[0])
        self._pieces = [tuple(rest)] if self._count else []
        return ArrayBatch(list(self._codes), *(None if c is None else c[:cut] for c in columns))

    def rest(self) -> Iterator[ArrayBatch]:
        while self._count:
            yield self.take()

"""Metric points read in column batches: one interface for every source.

A long run holds millions of points; holding them all as Python objects costs
~0.6 KB a point.  A normalizer may instead give an experiment a `MetricStream`:
a model.Metrics whose points are produced on demand, a batch of at most
BATCH_POINTS at a time, by re-reading the stored objects.  The index ingests
batch by batch (`batches(metrics)`), so memory stays bounded by one batch;
anything else that reads the columns (push, check, export) gets them whole, read
on first use, exactly as a plain Metrics.  No I/O here: the producer does it.
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
                for column in _COLUMNS:
                    getattr(whole, column).extend(getattr(batch, column))
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

"""Metric points compared by key without holding them: sums per series, bags of digests.

A point's key is (name, step, epoch, timestamp, exact text, context): the exact
text, so "7" and "7.0" differ and NaN equals NaN.  Each key is reduced to the
xxh3-128 digest of its repr (the store already trusts xxh3-128 as an identity).

- `SeriesSums`: per series, the count and the sum (mod 2**128) of its points'
  digests, with and without context.  Equal multisets have equal sums; unequal ones
  collide with odds of about 2**-128.  O(series) memory, whatever the points.
- `KeyBag`: a multiset of digests per series (about 100 bytes a point), for the
  point-by-point differences a resumed or grown push needs.

A series read from total-fidelity files has no context (`contextless`): it is keyed
without context on both sides.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Iterator

import xxhash

from ... import model
from ...metric_stream import batches as _batches

_MOD = 1 << 128


def _digest(m: model.Metrics, i: int, context: bool) -> int:
    key = (m.name[i], m.step[i], m.epoch[i], m.timestamp[i], m.exact(i), m.context[i] if context else None)
    return xxhash.xxh3_128_intdigest(repr(key).encode("utf-8", "surrogatepass"))


def parts(*sources) -> Iterator[model.Metrics]:
    """The batches of several Metrics (plain or streams, None skipped), one after another."""
    for source in sources:
        if source is None:
            continue
        if callable(source):
            yield from source()
        else:
            yield from _batches(source)


class SeriesSums:
    """Count and digest sums per series name."""

    def __init__(self):
        self.count: Counter = Counter()
        self.sum: dict[str, int] = {}           # with context
        self.bare: dict[str, int] = {}          # without context

    def add(self, m: model.Metrics, rows: Iterable[int] | None = None) -> "SeriesSums":
        for i in (range(len(m)) if rows is None else rows):
            name = m.name[i]
            self.count[name] += 1
            self.sum[name] = (self.sum.get(name, 0) + _digest(m, i, True)) % _MOD
            self.bare[name] = (self.bare.get(name, 0) + _digest(m, i, False)) % _MOD
        return self

    @classmethod
    def of(cls, *sources) -> "SeriesSums":
        out = cls()
        for batch in parts(*sources):
            out.add(batch)
        return out

    def plus(self, other: "SeriesSums") -> "SeriesSums":
        out = SeriesSums()
        for s in (self, other):
            out.count.update(s.count)
            for name in s.count:
                out.sum[name] = (out.sum.get(name, 0) + s.sum.get(name, 0)) % _MOD
                out.bare[name] = (out.bare.get(name, 0) + s.bare.get(name, 0)) % _MOD
        return out

    def same(self, other: "SeriesSums", name: str, contextless: frozenset = frozenset()) -> bool:
        """Do both hold the same multiset of points of `name`?"""
        sums = "bare" if name in contextless else "sum"
        return (self.count[name] == other.count[name]
                and getattr(self, sums).get(name, 0) == getattr(other, sums).get(name, 0))


class KeyBag:
    """A multiset of point digests per series; `take` removes the points it holds."""

    def __init__(self, contextless: frozenset = frozenset(), only: frozenset | None = None):
        self.contextless = contextless
        self.only = only
        self.keys: dict[str, Counter] = {}

    @classmethod
    def of(cls, *sources, contextless: frozenset = frozenset(), only: frozenset | None = None) -> "KeyBag":
        bag = cls(contextless, only)
        for batch in parts(*sources):
            for i, name in enumerate(batch.name):
                if only is None or name in only:
                    bag.keys.setdefault(name, Counter())[_digest(batch, i, name not in contextless)] += 1
        return bag

    def take(self, m: model.Metrics) -> list[int]:
        """Rows of `m` the bag does not hold (each held point matches one row, in order)."""
        missing = []
        for i, name in enumerate(m.name):
            if self.only is not None and name not in self.only:
                continue
            have = self.keys.get(name)
            k = _digest(m, i, name not in self.contextless)
            if have and have[k] > 0:
                have[k] -= 1
            else:
                missing.append(i)
        return missing

    def left(self) -> Counter:
        """Points still in the bag, per series."""
        return Counter({name: n for name, keys in self.keys.items() if (n := sum(keys.values()))})


def excess(held, *expected, contextless: frozenset = frozenset()) -> Counter:
    """Points of `held` (what the destination answered) that `expected` lacks, per series.

    The sums decide most series in one streamed pass of each side; a series they cannot
    (unequal: excess, a sample, or points missing) is compared point by point."""
    have, want = SeriesSums.of(held), SeriesSums.of(*expected)
    unsure = frozenset(n for n in have.count if not have.same(want, n, contextless))
    if not unsure:
        return Counter()
    bag = KeyBag.of(held, contextless=contextless, only=unsure)
    for batch in parts(*expected):
        bag.take(batch)
    return bag.left()


def difference(want, have, contextless: frozenset = frozenset()) -> tuple[Counter, Counter]:
    """(points of `want` missing from `have`, points of `have` not in `want`), counted per
    series; each side streamed, and only the series whose sums differ held as digests."""
    a, b = SeriesSums.of(want), SeriesSums.of(have)
    unsure = frozenset(n for n in set(a.count) | set(b.count) if not a.same(b, n, contextless))
    if not unsure:
        return Counter(), Counter()
    bag = KeyBag.of(have, contextless=contextless, only=unsure)
    missing: Counter = Counter()
    for batch in parts(want):
        missing.update(batch.name[i] for i in bag.take(batch))
    return missing, bag.left()

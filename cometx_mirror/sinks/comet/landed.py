"""Reading back what Comet appends: did an unanswered write land, and is there more than we sent?

Comet appends metric points and output lines; it never overwrites them, so a batch
resent after a try that was applied (a gateway's 502 after the backend committed, a
reset or timeout after the body left) is stored twice.  `Appends` keeps, per
experiment, what the destination should hold before and after each append, so an
unanswered try is decided by one read: the destination holds "before" (resend),
"before + the batch" (done), or something else (stop, never guess).

Comet answers at most 15,000 values per metric (a sample beyond that), so a metric
the destination only samples cannot be decided (read_metrics reads a series whole from
total-fidelity files where the destination keeps them); a big metric's batches are kept
apart from the other metrics' (`chunks`) so only its unanswered tries can fail.  A
sample is still a part of what is there, so points beyond what we sent are always excess.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Callable, Iterable, Iterator

from ... import model
from . import point_keys
from .client import PushError
from .point_keys import SeriesSums

SAMPLED_AT = 15_000       # Comet's metrics/get-all answers at most this many values per metric


class UndecidedWrite(PushError):
    """An append whose answer was lost, and the destination cannot tell whether it landed."""


class ExcessAtDestination(PushError):
    """The destination holds appended data the mirror does not (duplicates, or another writer's)."""


def _columns() -> list[str]:
    return [f.name for f in dataclasses.fields(model.Metrics)]


def take(m: model.Metrics, rows: Iterable[int]) -> model.Metrics:
    """The points `rows` of `m`, every column (whatever columns Metrics has)."""
    rows = list(rows)
    return model.Metrics(**{name: [getattr(m, name)[i] for i in rows] for name in _columns()})


def chunks(points: Iterable[model.Metrics], by_name: dict[str, int], before_counts: Counter,
           size: int) -> Iterator[model.Metrics]:
    """The points of `points` (batches of any size) in requests of at most `size`, each
    metric's points in their order; `by_name`: how many points of each metric will come.

    A metric that will hold more than SAMPLED_AT points gets requests of its own, so an
    undecidable check never takes a small metric's batch with it; small metrics share.
    Memory: one pending request per big metric and one shared."""
    columns = _columns()
    pending: dict[str | None, dict[str, list]] = {}
    big = {name for name, n in by_name.items() if before_counts[name] + n > SAMPLED_AT}
    for batch in points:
        cols = [getattr(batch, c) for c in columns]
        for i, name in enumerate(batch.name):
            slot = name if name in big else None
            buf = pending.get(slot)
            if buf is None:
                buf = pending[slot] = {c: [] for c in columns}
            for c, col in zip(columns, cols):
                buf[c].append(col[i])
            if len(buf["name"]) >= size:
                yield model.Metrics(**pending.pop(slot))
    for buf in pending.values():
        yield model.Metrics(**buf)


def _sampled(dest: model.Metrics, name: str, expected: int) -> bool:
    """Is the destination's answer for `name` possibly only a sample?  A read that knows
    (`sampled`, set where total-fidelity files gave the whole series) says so; else any
    series expected beyond the limit is."""
    known = getattr(dest, "sampled", None)
    return name in known if known is not None else expected > SAMPLED_AT


def _contextless(m: model.Metrics) -> frozenset:
    return frozenset(getattr(m, "contextless", frozenset()))


class Appends:
    """What one destination experiment holds of the appended resources while a push writes it.

    `before` is what it held when the push started: the metrics of the manifest pushed
    last time or read back after a crash (None: a new experiment), and its output text
    (None: not known yet, read before the first output write).  What was sent is kept as
    sums per metric (point_keys.SeriesSums), never as points; `resend`, when set, yields
    the sent points again for the rare read-back the sums cannot decide."""

    def __init__(self, read_metrics: Callable[[], model.Metrics], read_output: Callable[[], str],
                 before: model.Metrics | None, before_output: str | None):
        self._read_metrics = read_metrics
        self._read_output = read_output
        self.before = before
        self.output = before_output
        self._before_sums: SeriesSums | None = None
        self.sent = SeriesSums()
        self.resend: Callable[[], Iterator[model.Metrics]] | None = None
        self.wrote = False

    def before_sums(self) -> SeriesSums:
        if self._before_sums is None:
            self._before_sums = SeriesSums.of(self.before)
        return self._before_sums

    # -- metrics --
    def batch_landed(self, batch: model.Metrics) -> bool:
        """After an unanswered try: True if `batch` is stored, False if not; raises when unsure."""
        dest = self._read_metrics()
        held = SeriesSums.of(dest)
        before = self.before_sums().plus(self.sent)
        after = before.plus(SeriesSums().add(batch))
        contextless = _contextless(dest)
        verdicts = set()
        for name in dict.fromkeys(batch.name):
            if _sampled(dest, name, after.count[name]):
                raise UndecidedWrite(
                    f"a metric batch's answer was lost and {name!r} has more than {SAMPLED_AT:,} points, "
                    f"which the destination only samples: cannot tell whether it landed; not resending")
            if held.same(after, name, contextless):
                verdicts.add(True)
            elif held.same(before, name, contextless):
                verdicts.add(False)
            else:
                raise UndecidedWrite(
                    f"a metric batch's answer was lost and the destination holds {held.count[name]} points of "
                    f"{name!r}, expected {before.count[name]} or {after.count[name]}: not resending")
        if len(verdicts) != 1:
            raise UndecidedWrite("a metric batch's answer was lost and only part of it is at the destination")
        return verdicts.pop()

    def batch_sent(self, batch: model.Metrics) -> None:
        self.sent.add(batch)
        self.wrote = True

    # -- output --
    def output_before(self) -> str:
        if self.output is None:
            self.output = self._read_output()
        return self.output

    def output_landed(self, text: str) -> bool:
        held, before = self._read_output(), self.output_before()
        if held == before + text:
            return True
        if held == before:
            return False
        raise UndecidedWrite(f"an output write's answer was lost and the destination holds {len(held)} "
                             f"characters of output, expected {len(before)} or {len(before + text)}: "
                             f"not resending")

    def output_sent(self, text: str) -> None:
        self.output = self.output_before() + text
        self.wrote = True

    # -- excess --
    def check_no_excess(self) -> None:
        """Read back after writing: the destination holds what it held plus what was sent, no more."""
        if self.sent.count and self.resend is None:
            raise RuntimeError("Appends.resend is needed to compare what was sent")
        excess_of(self._read_metrics(), self.before, self.resend if self.sent.count else None)
        if self.output is not None:
            held = self._read_output()
            if len(held) > len(self.output):
                raise ExcessAtDestination(
                    f"the destination's output has {len(held) - len(self.output)} characters more than "
                    f"the mirror's: written twice, or by someone else; push does not remove them")


def excess_of(held: model.Metrics, *expected) -> None:
    """Raise when `held` (what the destination answered) has points the `expected` parts
    (Metrics, streams, or callables yielding batches) lack.

    Valid under sampling: a sample is a part of what is stored, so its extra points are real."""
    contextless = _contextless(held)
    for part in expected:
        if isinstance(part, model.Metrics):
            contextless |= _contextless(part)
    names = point_keys.excess(held, *expected, contextless=contextless)
    if names:
        name, n = names.most_common(1)[0]
        raise ExcessAtDestination(
            f"the destination holds {sum(names.values())} metric point(s) more than the mirror ({n} of {name!r}): "
            f"written twice, or by someone else; push does not remove them")

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
apart from the other metrics' (`batches`) so only its unanswered tries can fail.  A
sample is still a part of what is there, so points beyond what we sent are always excess.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Callable, Iterable

from ... import model
from .client import PushError
from .plan import missing_points

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


def rows_by_name(m: model.Metrics, rows: Iterable[int] | None = None) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i in (range(len(m)) if rows is None else rows):
        out.setdefault(m.name[i], []).append(i)
    return out


def batches(m: model.Metrics, rows: list[int], before: model.Metrics | None, size: int) -> list[list[int]]:
    """`rows` in batches of at most `size` points, each metric's points in their order.

    A metric that will hold more than SAMPLED_AT points gets batches of its own, so an
    undecidable check never takes a small metric's batch with it; small metrics share."""
    before_counts = Counter(before.name) if before is not None else Counter()
    out: list[list[int]] = []
    shared: list[int] = []
    for name, mine in rows_by_name(m, rows).items():
        if before_counts[name] + len(mine) > SAMPLED_AT:
            out.extend(mine[i:i + size] for i in range(0, len(mine), size))
            continue
        for i in mine:
            shared.append(i)
            if len(shared) >= size:
                out.append(shared)
                shared = []
    if shared:
        out.append(shared)
    return out


def _sampled(dest: model.Metrics, name: str, expected: int) -> bool:
    """Is the destination's answer for `name` possibly only a sample?  A read that knows
    (`sampled`, set where total-fidelity files gave the whole series) says so; else any
    series expected beyond the limit is."""
    known = getattr(dest, "sampled", None)
    return name in known if known is not None else expected > SAMPLED_AT


def _same(a: model.Metrics, b: model.Metrics, contextless: frozenset = frozenset()) -> bool:
    return len(a) == len(b) and not missing_points(a, b, contextless)


class Appends:
    """What one destination experiment holds of the appended resources while a push writes it.

    `before` is what it held when the push started: the metrics of the manifest pushed
    last time or read back after a crash (None: a new experiment), and its output text
    (None: not known yet, read before the first output write)."""

    def __init__(self, read_metrics: Callable[[], model.Metrics], read_output: Callable[[], str],
                 before: model.Metrics | None, before_output: str | None):
        self._read_metrics = read_metrics
        self._read_output = read_output
        self.before = before if before is not None else model.Metrics()
        self.output = before_output
        self._sent: list[model.Metrics] = []
        self.wrote = False

    # -- metrics --
    def _expected(self, name: str) -> model.Metrics:
        parts = [self.before, *self._sent]
        return take_named(parts, name)

    def batch_landed(self, batch: model.Metrics) -> bool:
        """After an unanswered try: True if `batch` is stored, False if not; raises when unsure."""
        dest = self._read_metrics()
        dest_rows = rows_by_name(dest)
        verdicts = set()
        for name in dict.fromkeys(batch.name):
            before = self._expected(name)
            after = _concat(before, take(batch, rows_by_name(batch)[name]))
            held = take(dest, dest_rows.get(name, []))
            if _sampled(dest, name, len(after)):
                raise UndecidedWrite(
                    f"a metric batch's answer was lost and {name!r} has more than {SAMPLED_AT:,} points, "
                    f"which the destination only samples: cannot tell whether it landed; not resending")
            contextless = getattr(dest, "contextless", frozenset())
            if _same(held, after, contextless):
                verdicts.add(True)
            elif _same(held, before, contextless):
                verdicts.add(False)
            else:
                raise UndecidedWrite(
                    f"a metric batch's answer was lost and the destination holds {len(held)} points of "
                    f"{name!r}, expected {len(before)} or {len(after)}: not resending")
        if len(verdicts) != 1:
            raise UndecidedWrite("a metric batch's answer was lost and only part of it is at the destination")
        return verdicts.pop()

    def batch_sent(self, batch: model.Metrics) -> None:
        self._sent.append(batch)
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
        expected = _concat(self.before, *self._sent)
        excess_of(self._read_metrics(), expected)
        if self.output is not None:
            held = self._read_output()
            if len(held) > len(self.output):
                raise ExcessAtDestination(
                    f"the destination's output has {len(held) - len(self.output)} characters more than "
                    f"the mirror's: written twice, or by someone else; push does not remove them")


def excess_of(held: model.Metrics, expected: model.Metrics) -> None:
    """Raise when `held` (what the destination answered) has points `expected` lacks.

    Valid under sampling: a sample is a part of what is stored, so its extra points are real."""
    extra = missing_points(held, expected)
    if extra:
        names = Counter(held.name[i] for i in extra)
        name, n = names.most_common(1)[0]
        raise ExcessAtDestination(
            f"the destination holds {len(extra)} metric point(s) more than the mirror ({n} of {name!r}): "
            f"written twice, or by someone else; push does not remove them")


def take_named(parts: list[model.Metrics], name: str) -> model.Metrics:
    return _concat(*(take(p, [i for i, n in enumerate(p.name) if n == name]) for p in parts))


def _concat(*parts: model.Metrics) -> model.Metrics:
    return model.Metrics(**{n: [v for p in parts for v in getattr(p, n)] for n in _columns()})

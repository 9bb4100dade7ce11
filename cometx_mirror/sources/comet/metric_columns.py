"""Comet's metric entries (REST `metrics/get-all`, cometx's metrics.jsonl) as columns.

One entry is `{"metricName", "metricValue" (text), "step", "epoch", "timestamp",
"runContext"}`; a run can hold millions of them, so they become columns, column by
column, and entries too many to hold as dicts stream (streamed_points).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from ... import model
from ...metric_stream import BATCH_POINTS, MetricStream

# A source holding more than this many bytes of metric entries streams them (streamed_points);
# up to it (about 25,000 points, some 25 MB of dicts at most: most experiments') they are read whole.
WHOLE_BYTES = 4 << 20
HELD = 4096         # entries held as dicts at once, then made columns (or written) in one call


def as_int(value: Any) -> int | None:
    if type(value) is int:      # the common case, and the fastest way out
        return value
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def metric_points(points: list[dict]) -> model.Metrics:
    """Comet's metric entries (metricName, metricValue as text, step, epoch, timestamp,
    runContext) as columns, column by column: a run can hold millions of points."""
    values, texts = model.metrics_from_texts([m.get("metricValue") for m in points])
    return model.Metrics(
        name=[m["metricName"] for m in points], value=values, text=texts,
        step=[as_int(m.get("step")) for m in points], epoch=[as_int(m.get("epoch")) for m in points],
        timestamp=[as_int(m.get("timestamp")) for m in points], context=[m.get("runContext") for m in points])


def streamed_points(entries: Callable[[], Iterator[dict]]) -> MetricStream:
    """metric_points over entries too many to hold as dicts: a MetricStream whose every pass
    takes `entries()` again and turns a few thousand at a time into columns, yielded in
    batches of BATCH_POINTS."""
    def batches() -> Iterator[model.Metrics]:
        out, held = model.Metrics(), []
        for entry in entries():
            held.append(entry)
            if len(held) == HELD:
                out.extend(metric_points(held))
                held = []
                if len(out) >= BATCH_POINTS:
                    yield out
                    out = model.Metrics()
        out.extend(metric_points(held))
        if out.name:
            yield out
    return MetricStream(batches)

"""Comet's `metrics/get-all` answer as a stream: from the server into the store, and from the
store into column batches.

The answer holds every sampled point of every metric of an experiment (up to 15,000 per
metric, and an experiment may log hundreds of metrics).  Parsed whole it costs about 1 KB
a point as Python dicts (a fetch of 60 metrics of 15,000 points peaked at 1.3 GB).  An
answer of up to WHOLE_BYTES (most) is still parsed whole; past that its entries are parsed
as they arrive (json_stream), so memory holds a run of entries and one batch.

The stored bytes stay what they always were, canonical.dumps of the whole answer: its
form is json's, which writes an object as its sorted keys and a list as its items
joined by commas, so the answer is written piece by piece, the entries (spooled to a
temp file while the rest of the answer may still follow) at their key's place.
"""
from __future__ import annotations

import itertools
import json
import tempfile
from typing import Iterator

from ... import model
from ...json_stream import ObjectStream
from ...store import canonical
from ...store.objects import CHUNK, ObjectStore
from . import full_metrics, metric_columns, shapes
from .metric_columns import metric_points, streamed_points
from .reader import CometReader

ENDPOINT = "experiment/metrics/get-all"
ENTRIES = "metrics"


class _Stored:
    """One try at storing the answer (a retry makes a new one).  An answer of up to WHOLE_BYTES
    is parsed whole, as every other answer is; past that, its entries are checked, counted and
    spooled as they arrive."""

    def __init__(self, reader: CometReader, objects: ObjectStore):
        self.reader, self.objects = reader, objects

    def __call__(self, chunks: Iterator[bytes]) -> tuple[dict, dict[str, int]]:
        chunks = iter(chunks)
        head, size = [], 0
        for chunk in chunks:
            head.append(chunk)
            size += len(chunk)
            if size > metric_columns.WHOLE_BYTES:
                return self._streamed(itertools.chain(head, chunks))
        answer = json.loads(b"".join(head))
        self._check(shapes.problem(ENDPOINT, answer))
        data = canonical.dumps(answer)
        counts = full_metrics.counts(m.get("metricName") for m in answer.get(ENTRIES) or [])
        return {"object": self.objects.put_bytes(data), "size": len(data)}, counts

    def _streamed(self, chunks: Iterator[bytes]) -> tuple[dict, dict[str, int]]:
        answer = ObjectStream(chunks, ENTRIES)
        counts: dict[str, int] = {}
        self.objects.tmp.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.objects.tmp, prefix="answer-") as spool:
            held: list = []
            for i, entry in enumerate(answer.items()):
                name = entry.get("metricName") if type(entry) is dict else None
                if type(name) is not str:       # what shapes checks, at a glance; it says what is wrong
                    self._check(shapes.item_problem(ENDPOINT, ENTRIES, i, entry))
                counts[name] = counts.get(name, 0) + 1
                held.append(entry)
                if len(held) == metric_columns.HELD:
                    _spool(spool, held, answer)
                    held = []
            _spool(spool, held, answer)
            self._check(shapes.problem(ENDPOINT, answer.rest))
            object_id, size = self.objects.put_stream(_canonical(answer, spool))
        return {"object": object_id, "size": size}, counts

    def _check(self, wrong: str | None) -> None:
        if wrong:
            raise shapes.not_comet(self.reader.creds.shown_url, ENDPOINT, wrong)


def _spool(spool, entries: list, answer: ObjectStream) -> None:
    """Append the entries' canonical text to the spool, comma-separated, in one call: a list's
    canonical form is its items' joined by commas.  Without a NaN or infinity among them (none
    in the text), orjson may write them as they are."""
    if not entries:
        return
    text = canonical.dumps(entries) if answer.non_finite else canonical.dumps_clean(entries)
    spool.write((b"," if spool.tell() else b"") + text[1:-1])


def _canonical(answer: ObjectStream, spool) -> Iterator[bytes]:
    """canonical.dumps of the whole answer, from its small keys and the spooled entries."""
    keys = sorted({*answer.rest, *([ENTRIES] if answer.found else [])})
    yield b"{"
    for i, key in enumerate(keys):
        yield (b"," if i else b"") + canonical.dumps(key) + b":"
        if key == ENTRIES and answer.found:
            yield b"["
            spool.seek(0)
            while chunk := spool.read(CHUNK):
                yield chunk
            yield b"]"
        else:
            yield canonical.dumps(answer.rest[key])
    yield b"}"


def fetch(reader: CometReader, objects: ObjectStore, key: str) -> tuple[dict, dict[str, int]]:
    """Download the answer for experiment `key` into the store: ({"object", "size"}, points per
    metric name)."""
    return reader.get_streamed(ENDPOINT, lambda chunks: _Stored(reader, objects)(chunks), experimentKey=key)


def _entries(objects: ObjectStore, object_id: str) -> Iterator[dict]:
    answer = ObjectStream(objects.read_chunks(object_id), ENTRIES)
    for entry in answer.items():
        if isinstance(entry, dict):
            yield entry


def counts(objects: ObjectStore, object_id: str) -> dict[str, int]:
    """Points per metric name in a stored answer, read as a stream."""
    return full_metrics.counts(entry.get("metricName") for entry in _entries(objects, object_id))


def points(objects: ObjectStore, ref: dict | None) -> model.Metrics:
    """The stored answer's points (metricValue kept as its text, never a guessed type).  An answer
    of up to WHOLE_BYTES is read whole, as a plain Metrics; a larger one is a MetricStream whose
    every pass reads the object again, entry by entry (streamed_points)."""
    if not ref:
        return metric_points([])
    if ref.get("size", metric_columns.WHOLE_BYTES + 1) <= metric_columns.WHOLE_BYTES:
        return metric_points(canonical.loads(objects.get_bytes(ref["object"])).get(ENTRIES) or [])
    return streamed_points(lambda: _entries(objects, ref["object"]))


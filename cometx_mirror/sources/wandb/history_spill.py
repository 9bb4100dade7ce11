"""The history spans a fetch's fold framed, kept (sources/spill.py) for the index's stream of the same run.

The store pass frames every record of the log to fold it; the index's stream of history points
comes after the run is stored, and framing the stored log again would decompress it and walk its
blocks a second time. So each span the fold framed goes to a spill with its history records told
apart (records.HistorySpan: the span's bytes and the history records' bounds and offsets), and the
stream takes them back in order. A spill serves one read of exactly the bytes it was made from:
the log's stored parts and the record boundary the fold started at. One the fold did not finish
(a span refused past CAP, a failure), or that was closed, serves none: the stream reads the store.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy

from ..spill import Spill
from .records import HistorySpan

_MADE: "OrderedDict[tuple, HistorySpill]" = OrderedDict()     # finished spills by what they were made from
_MADE_LOCK = threading.Lock()


class HistorySpill(Spill):
    def __init__(self, folder):
        super().__init__(folder)
        self._count = 0
        self._whole = True       # every span the fold framed was kept

    def put_span(self, span) -> None:
        """Keep one framed span's history records (a span with none is not kept)."""
        history = HistorySpan(span, "")
        if not len(history) or not self._whole:
            return
        bounds = [numpy.ascontiguousarray(a, numpy.int64).tobytes()
                  for a in (history.starts, history.ends, history.offsets)]
        self._whole = self.put(self._count, [history.data, *bounds])
        self._count += 1

    def spans(self, name: str):
        """The kept spans in order, as HistorySpans of the log `name` (one in memory at a time)."""
        try:
            for key in range(self._count):
                pieces = self.take(key)
                if pieces is None:      # claimed, so only a failed read of the file
                    raise OSError(f"{name}: a span of the fetch's spill could not be read back")
                yield _span(pieces, name)
        finally:
            self.close()

    def finished(self, parts: list[dict], start: int) -> None:
        """The fold ended: the spill serves the stored `parts` read from `start`, if it kept every span."""
        if not self._whole:
            self.close()
            return
        key = (tuple(p["object"] for p in parts), start)
        with _MADE_LOCK:
            old = _MADE.pop(key, None)
            _MADE[key] = self
            for made_key in [k for k, s in _MADE.items() if s._file is None]:
                del _MADE[made_key]           # closed (past OPEN_AT_MOST), or never opened: serves nothing
        if old is not None and old is not self:
            old.close()


def take_spans(parts: list[dict], start: int, name: str):
    """The history spans of the stored `parts` from `start` as the fold framed them (an iterator,
    for one read), or None when no finished spill has them (then the caller frames the stored log)."""
    with _MADE_LOCK:
        spill = _MADE.pop((tuple(p["object"] for p in parts), start), None)
    return spill.spans(name) if spill is not None and spill.claim() else None


def _span(pieces, name: str) -> HistorySpan:
    data, starts, ends, offsets = pieces
    return HistorySpan.of(bytes(data), *(numpy.frombuffer(a, numpy.int64) for a in (starts, ends, offsets)),
                          name=name)

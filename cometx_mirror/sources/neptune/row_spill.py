"""Float rows a fetch's store decoded, kept on disk until the index's stream of the same run reads them.

The store's scan of an `append` loop's segment decodes every point already (one_point_ops). The
index's stream of float points comes after the whole log is stored, and reading each segment again
would decompress it and decode each point a second time. So the scan's rows of such a segment go to
an unnamed temporary file beside the mirror's objects (24 + 4 bytes a point: value, step and time as
float64, then the path's code), and the stream takes them back by the segment's id. Memory holds
one segment's rows at a time whatever the run's length; a run with no such segment opens no file.
A segment the spill lacks (a later reindex, a read after `close`, a run past CAP, a spill closed
because OPEN_AT_MOST newer ones are open) is read from the store, as before: the rows are the ones
that read gives (tests/test_neptune_one_point_ops.py).
"""
from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict

import numpy


class RowSpill:
    CAP = 2 << 30          # bytes spilled a run at most: past it, segments are read from the store again
    # files open at once in a process: a run whose index is never built in this fetch (unchanged, or
    # failed) keeps its spill until its reader goes, so the oldest are closed past this many
    OPEN_AT_MOST = 8
    _open: "OrderedDict[int, RowSpill]" = OrderedDict()
    _open_lock = threading.Lock()

    def __init__(self, folder: str | os.PathLike):
        self._folder = folder
        self._file = None
        self._size = 0
        self._where: dict[str, tuple[int, int]] = {}     # segment id -> (offset, points)
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self._lock = threading.Lock()     # another run's put may close this spill while the index reads it

    def put(self, segment_id: str, paths: list[str], rows) -> None:
        """Keep a segment's points: one path each, as (value, step, ts) float64 rows."""
        count, oldest = len(paths), []
        with self._lock:
            if segment_id in self._where or self._size + 28 * count > self.CAP:
                return
            if self._file is None:
                os.makedirs(self._folder, exist_ok=True)
                self._file = tempfile.TemporaryFile(dir=self._folder, prefix="spill-")
                with self._open_lock:
                    self._open[id(self)] = self
                    while len(self._open) > self.OPEN_AT_MOST:
                        oldest.append(self._open.popitem(last=False)[1])
            codes = self._codes
            for path in dict.fromkeys(paths):      # a run has few series: new ones are rare
                if path not in codes:
                    codes[path] = len(self._names)
                    self._names.append(path)
            self._file.write(numpy.ascontiguousarray(rows, numpy.float64).tobytes())
            self._file.write(numpy.fromiter(map(codes.__getitem__, paths), numpy.int32, count).tobytes())
            self._where[segment_id] = (self._size, count)
            self._size += 28 * count
        for spill in oldest:                       # outside this lock: each takes its own
            spill.close()

    def take(self, segment_id: str):
        """(paths, rows) of a segment `put` kept, or None."""
        with self._lock:
            where = self._where.get(segment_id)
            if where is None or self._file is None:
                return None
            offset, count = where
            self._file.flush()
            data = os.pread(self._file.fileno(), 28 * count, offset)
        if len(data) != 28 * count:
            return None
        names = self._names
        paths = list(map(names.__getitem__, numpy.frombuffer(data, numpy.int32, count, 24 * count).tolist()))
        return paths, numpy.frombuffer(data, numpy.float64, 3 * count).reshape(count, 3)

    def close(self) -> None:
        """Drop the file (its segments are read from the store from now on)."""
        with self._open_lock:
            self._open.pop(id(self), None)
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._where.clear()
            self._size = 0            # a later put (a run still being stored) starts a new file

"""Float rows a fetch's store decoded, kept (sources/spill.py) until the index's stream of the same run reads them.

The store's scan of an `append` loop's segment decodes every point already (one_point_ops). The
index's stream of float points comes after the whole log is stored, and reading each segment again
would decompress it and decode each point a second time. So the scan's rows of such a segment are
spilled (24 + 4 bytes a point: value, step and time as float64, then the path's code), and the
stream takes them back by the segment's id. A segment the spill lacks is read from the store, as
before: the rows are the ones that read gives (tests/test_neptune_one_point_ops.py).
"""
from __future__ import annotations

import os

import numpy

from ..spill import Spill


class RowSpill(Spill):
    def __init__(self, folder: str | os.PathLike):
        super().__init__(folder)
        self._codes: dict[str, int] = {}      # a run has few series: each path is coded once
        self._names: list[str] = []

    def put(self, segment_id: str, paths: list[str], rows) -> bool:
        """Keep a segment's points: one path each, as (value, step, ts) float64 rows."""
        codes = self._codes
        for path in dict.fromkeys(paths):
            if path not in codes:
                codes[path] = len(self._names)
                self._names.append(path)
        return super().put(segment_id, [numpy.ascontiguousarray(rows, numpy.float64).tobytes(),
                                        numpy.fromiter(map(codes.__getitem__, paths), numpy.int32,
                                                       len(paths)).tobytes()])

    def take(self, segment_id: str):
        """(paths, rows) of a segment `put` kept, or None."""
        pieces = super().take(segment_id)
        if pieces is None:
            return None
        rows, codes = pieces
        names = self._names
        paths = list(map(names.__getitem__, numpy.frombuffer(codes, numpy.int32).tolist()))
        return paths, numpy.frombuffer(rows, numpy.float64).reshape(len(paths), 3)

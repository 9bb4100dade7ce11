"""Float rows a fetch's store decoded, kept (sources/spill.py) until the index's stream of the same run reads them.

The store's scan of a segment whose LogFloats ops hold only floats decodes their points
(float_lines.scan: an `append` loop's by one_point_ops, an `extend` loop's from the regex's
captures). The index's stream of float points comes after the whole log is stored, and reading
each segment again would decompress it and cut its lines a second time. So what `read` would give
of such a segment is spilled (float_lines.spillable: the points' value, step and time as float64,
each op's path code, for ops of many points where each ends, and the segment's other lines as they
are, with the layout that puts them back in order), and the stream takes it back by the segment's
id. A segment the spill lacks is read from the store, as before: the items are the ones that read
gives (tests/test_neptune_one_point_ops.py).
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

    def put(self, segment_id: str, paths: list[str], rows, ends: list[int] | None, layout: list[int],
            lines: list[bytes], text_paths: list[str]) -> bool:
        """Keep what float_lines.spillable gave of a segment: its ops' points as (value, step, ts) float64
        rows, one path an op, each op's points ending at `ends` (None: one point an op), the layout
        and bytes of its other lines, and the paths of its text ops kept as paths alone."""
        pieces = [numpy.ascontiguousarray(rows, numpy.float64).tobytes(), self._coded(paths),
                  numpy.array(layout, numpy.int64).tobytes(),
                  numpy.fromiter(map(len, lines), numpy.int64, len(lines)).tobytes(), b"".join(lines),
                  self._coded(text_paths)]
        if ends is not None:
            pieces.append(numpy.array(ends, numpy.int64).tobytes())
        return super().put(segment_id, pieces)

    def _coded(self, paths: list[str]) -> bytes:
        codes = self._codes
        for path in dict.fromkeys(paths):
            if path not in codes:
                codes[path] = len(self._names)
                self._names.append(path)
        return numpy.fromiter(map(codes.__getitem__, paths), numpy.int32, len(paths)).tobytes()

    def _paths(self, coded: bytes) -> list[str]:
        return list(map(self._names.__getitem__, numpy.frombuffer(coded, numpy.int32).tolist()))

    def take(self, segment_id: str):
        """(paths, rows, ends, layout, lines, text_paths) of a segment `put` kept, or None."""
        pieces = super().take(segment_id)
        if pieces is None:
            return None
        rows, codes, layout, lengths, joined, text_codes, *ends = pieces
        joined, lines, at = bytes(joined), [], 0
        for n in numpy.frombuffer(lengths, numpy.int64).tolist():
            lines.append(joined[at:at + n])
            at += n
        return (self._paths(codes), numpy.frombuffer(rows, numpy.float64).reshape(-1, 3),
                numpy.frombuffer(ends[0], numpy.int64).tolist() if ends else None,
                numpy.frombuffer(layout, numpy.int64).tolist(), lines, self._paths(text_codes))

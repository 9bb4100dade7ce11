"""Framing a span of a W&B record log at once, with NumPy, instead of a Python step per chunk.

A chunk never crosses a block boundary, so every 32 KiB block starts a chain of chunks of
its own: the blocks of a span are walked side by side (step i reads the i-th chunk header
of every block still going), which takes as many NumPy steps as the fullest block has
chunks.  The chunks found are then put in file order, their checksums computed (zlib, in
C: one call per chunk), the FIRST/MIDDLE/LAST sequence checked as a whole, and the
payloads joined into one buffer with each record's bounds and file offset.

Damage is reported exactly as records.LogReader's chunk-by-chunk loop reports it: of every
problem found in a span (a bad header, a non-zero "empty" header, a checksum, a chunk out of
sequence) the one at the lowest offset is raised, after the records before it; a torn
tail ends the scan quietly after them.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

ENABLED = True          # tests turn the bulk framing off to compare it with the chunk-by-chunk loop
SPAN_BLOCKS = 64        # blocks read and framed at once (2 MiB)

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_TYPE_CRC = [zlib.crc32(bytes([kind])) for kind in range(5)]
_TORN = None            # an event that ends the scan without an error


@dataclass
class Span:
    """Whole records framed together: record i is data[starts[i]:ends[i]], its first chunk at
    file offset offsets[i]."""
    data: bytes
    starts: np.ndarray
    ends: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def records(self) -> Iterator[tuple[int, bytes]]:
        data = self.data
        for at, a, b in zip(self.offsets.tolist(), self.starts.tolist(), self.ends.tolist()):
            yield at, data[a:b]


def _walk(buf: bytes, view: np.ndarray, first: int):
    """(positions, lengths, kinds, checksums) of the chunks of `buf` up to its first event, in
    file order, and that event: (position, reason), reason None for a torn tail; or None."""
    end = len(buf)
    pos = np.arange(-(-end // BLOCK), dtype=np.int64) * BLOCK
    pos[0] = first
    going = np.arange(len(pos))
    found: list[tuple] = []
    events: list[tuple[int, str | None]] = []
    while going.size:
        p = pos[going]
        left = (going + 1) * BLOCK - p              # to the end of the chunk's own block
        live = left >= HEADER                       # else: block trailer (zero padding), done
        torn = live & (p + HEADER > end)
        if torn.any():
            events.append((int(p[torn][0]), _TORN))
        live &= ~torn
        going, p, left = going[live], p[live], left[live]
        if not going.size:
            break
        length = view[p + 4].astype(np.int64) | (view[p + 5].astype(np.int64) << 8)
        kind = view[p + 6].astype(np.int64)
        crc = (view[p].astype(np.int64) | (view[p + 1].astype(np.int64) << 8)
               | (view[p + 2].astype(np.int64) << 16) | (view[p + 3].astype(np.int64) << 24))
        empty = (crc == 0) & (length == 0) & (kind == 0)
        good = ~empty
        for i in np.flatnonzero(empty).tolist():
            at = int(p[i])
            stop = min(end, at + int(left[i]))
            if buf.count(0, at, stop) != stop - at:
                events.append((at, "empty chunk header before data"))
            # else: the zero-filled rest of a block (preallocated), done
        bad = good & ((kind > LAST) | (kind < FULL) | (HEADER + length > left))
        for i in np.flatnonzero(bad).tolist():
            events.append((int(p[i]), f"bad chunk header (type {int(kind[i])}, length {int(length[i])})"))
        good &= ~bad
        cut = good & (p + HEADER + length > end)
        if cut.any():
            events.append((int(p[cut][0]), _TORN))
        good &= ~cut
        found.append((p[good], length[good], kind[good], crc[good]))
        going = going[good]
        pos[going] = p[good] + HEADER + length[good]
    event = min(events, key=lambda e: e[0]) if events else None
    if not found:
        empty_i64 = np.empty(0, np.int64)
        return (empty_i64,) * 4, event
    cols = [np.concatenate(c) for c in zip(*found)]
    order = np.argsort(cols[0], kind="stable")
    cols = [c[order] for c in cols]
    if event is not None:
        keep = int(np.searchsorted(cols[0], event[0]))
        cols = [c[:keep] for c in cols]
    return tuple(cols), event


def _pieces(buf: bytes, pos: np.ndarray, length: np.ndarray) -> list:
    """Each chunk's data as a memoryview of buf (made in C: no Python step per chunk)."""
    data_at = pos + HEADER
    return list(map(memoryview(buf).__getitem__, map(slice, data_at.tolist(), (data_at + length).tolist())))


def _first_bad_checksum(pieces: list, kind: np.ndarray, crc: np.ndarray) -> int | None:
    """Index of the first chunk whose checksum does not match, or None (one zlib call a chunk)."""
    start = np.asarray(_TYPE_CRC, np.int64)[kind].tolist()
    sums = np.fromiter(map(zlib.crc32, pieces, start), np.int64, len(pieces))
    bad = np.flatnonzero(sums != crc)
    return int(bad[0]) if bad.size else None


def _first_out_of_sequence(kind: np.ndarray, pending: bool) -> tuple[int, str] | None:
    """(index, reason) of the first chunk out of the FIRST/MIDDLE/LAST sequence, or None."""
    inside = np.empty(len(kind), bool)      # a fragmented record open before each chunk
    inside[:1] = pending
    inside[1:] = (kind[:-1] == FIRST) | (kind[:-1] == MIDDLE)
    starts = (kind == FULL) | (kind == FIRST)
    bad_start = starts & inside
    bad_more = ~starts & ~inside
    i = np.flatnonzero(bad_start | bad_more)
    if not i.size:
        return None
    i = int(i[0])
    return i, ("record starts inside a fragmented record" if bad_start[i]
               else "continuation chunk without a first chunk")


class Framer:
    """The framing state carried from one span to the next: a record begun but not ended."""

    def __init__(self):
        self.carry: bytes | None = None      # its bytes so far
        self.carry_at = 0                    # its file offset
        self.complete_end: int | None = None    # set after a span that ended a record

    def frame(self, buf: bytes, base: int, first: int):
        """(Span of the whole records of buf from `first` on, event or None): see _walk."""
        view = np.frombuffer(buf, np.uint8)
        (pos, length, kind, crc), event = _walk(buf, view, first)
        pieces = _pieces(buf, pos, length)
        bad = _first_bad_checksum(pieces, kind, crc) if len(pos) else None
        if bad is not None:
            event = (int(pos[bad]), "checksum mismatch")
            pos, length, kind, pieces = pos[:bad], length[:bad], kind[:bad], pieces[:bad]
        wrong = _first_out_of_sequence(kind, self.carry is not None) if len(pos) else None
        if wrong is not None:
            i, reason = wrong
            event = (int(pos[i]), reason)
            pos, length, kind, pieces = pos[:i], length[:i], kind[:i], pieces[:i]
        carried = self.carry if self.carry is not None else b""
        data = b"".join([carried, *pieces]) if carried else b"".join(pieces)
        upto = np.cumsum(length) + len(carried)
        closes = np.flatnonzero((kind == FULL) | (kind == LAST))
        ends = upto[closes]
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64) if closes.size else ends
        opens = np.concatenate([[0], closes[:-1] + 1]).astype(np.int64) if closes.size else closes
        offsets = base + pos[opens] if closes.size else closes.astype(np.int64)
        if closes.size and self.carry is not None:
            offsets[0] = self.carry_at
        if closes.size:
            last = int(closes[-1])
            self.complete_end = base + int(pos[last]) + HEADER + int(length[last])
        tail_from = int(ends[-1]) if closes.size else 0
        if len(kind) and kind[-1] in (FIRST, MIDDLE):
            if not closes.size and self.carry is not None:
                pass                                   # the carried record goes on
            else:
                self.carry_at = base + int(pos[closes[-1] + 1 if closes.size else 0])
            self.carry = data[tail_from:]
        elif len(kind):
            self.carry = None
        return Span(data, starts, ends, offsets), (None if event is None else event)

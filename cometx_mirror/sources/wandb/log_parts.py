"""A `.wandb` record log stored as parts: what the first fetch saw, then one tail per growth.

A live run only ever appends to its log.  Storing the whole file again on every
fetch would write the unchanged prefix once more (as a new, larger object) and
fold it again; instead a fetch that finds the stored parts still at the start of
the file stores only the bytes after them as one more object, and folds only
from where the last fold stopped.  Each part is an ordinary content-addressed
object, so "the prefix is unchanged" is checked by hashing the file's first
bytes against the parts' own ids (sources/file_prefix): no extra bookkeeping can go stale.

Manifest entry (`manifest["log"]`):
  one part:  {"object": id, "size": n, "resume": {...}}   (the form every log had before)
  grown:     {"parts": [{"object": id, "size": n}, ...], "size": total, "resume": {...}}
`resume` names a small JSON object: the fetch's fold state and the byte where it ended.
"""
from __future__ import annotations

import contextlib
import os
from typing import BinaryIO, Iterator

from ..file_prefix import HASH_CHUNK, Range


def parts(entry: dict) -> list[dict]:
    """The log's parts in file order, for either form of the entry."""
    if "parts" in entry:
        return [dict(p) for p in entry["parts"]]
    return [{"object": entry["object"], "size": entry["size"]}]


def entry(log_parts: list[dict], resume: dict | None) -> dict:
    """The manifest entry for these parts (the one-part form when there is one)."""
    if len(log_parts) == 1:
        out = dict(log_parts[0])
    else:
        out = {"parts": log_parts, "size": sum(p["size"] for p in log_parts)}
    if resume is not None:
        out["resume"] = resume
    return out


class StoringRange(Range):
    """A Range whose bytes from `store_from` on are stored as they are read (`writer`: an
    ObjectStore.writer), so that a reader folding the file stores it in the same pass; `finish`
    stores what the reader left unread and names the part."""

    def __init__(self, f: BinaryIO, end: int, writer, store_from: int):
        super().__init__(f, end)
        self.writer, self.next = writer, store_from      # next: the first byte not stored yet

    def read(self, n: int = -1) -> bytes:
        at = self.f.tell()
        data = super().read(n)
        if at > self.next:             # a byte skipped (no reader here does): stored from the file
            self._store_upto(at)
        if at + len(data) > self.next:
            self.writer.write(memoryview(data)[self.next - at:] if self.next > at else data)
            self.next = at + len(data)
        return data

    def _store_upto(self, pos: int) -> None:
        while self.next < pos:
            chunk = os.pread(self.f.fileno(), min(HASH_CHUNK, pos - self.next), self.next)
            if not chunk:
                break
            self.writer.write(chunk)
            self.next += len(chunk)

    def finish(self) -> dict:
        """The stored part: bytes [store_from, end) of the file (OSError if the file is shorter now)."""
        self._store_upto(self.end)
        if self.next < self.end:
            raise OSError(f"the log ended at byte {self.next}, before byte {self.end}")
        object_id, size = self.writer.finish()
        return {"object": object_id, "size": size}


class _Concatenated:
    """The parts' bytes read one after another, as one readable stream (each part verified)."""

    def __init__(self, mirror, log_parts: list[dict]):
        self._mirror, self._parts = mirror, log_parts
        self._ids = iter([p["object"] for p in log_parts])
        self._current = None
        self.start = 0         # set by skip_to
        self._fill = 0         # zero bytes still to hand out before `start` (see seek)
        self._head = b""       # bytes to hand out before the next part's (see skip_to)

    def skip_to(self, start: int, head: bytes = b"") -> None:
        """Begin at byte `start`: the parts wholly before it are never opened; inside a part
        its bytes up to `start` are read and dropped (an object is compressed: no seeking),
        unless `head`, the bytes from `start` to that part's end, is given."""
        skipped = 0
        for part in self._parts:
            if skipped + part["size"] > start:
                if head and skipped + part["size"] == start + len(head):
                    next(self._ids)     # its bytes from `start` on are `head`
                    self._head = head
                    skipped = start
                break
            next(self._ids)
            skipped += part["size"]
        while skipped < start:
            dropped = len(self._read(min(HASH_CHUNK, start - skipped)))
            if not dropped:
                break
            skipped += dropped
        self.start = start

    def seek(self, pos: int) -> int:
        """Only back to a point before `start` (records.LogReader goes to the start of the
        block holding it): the bytes up to `start` come back as zeros, which a reader
        resuming at `start` never looks at."""
        if pos > self.start:
            raise ValueError("a stored log is read forward from where it was opened")
        self._fill = self.start - pos
        return pos

    def read(self, n: int = -1) -> bytes:
        if not self._fill:
            return self._read(n)
        zeros = self._fill if n < 0 else min(n, self._fill)
        self._fill -= zeros
        return bytes(zeros) + (self._read(-1 if n < 0 else n - zeros) if n != zeros else b"")

    def _read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = (self._head, b"") if n < 0 or n >= len(self._head) else \
                (self._head[:n], self._head[n:])
            return head + (self._read_parts(-1 if n < 0 else n - len(head)) if n != len(head) else b"")
        return self._read_parts(n)

    def _read_parts(self, n: int = -1) -> bytes:
        out: list[bytes] = []
        while n != 0:
            if self._current is None:
                object_id = next(self._ids, None)
                if object_id is None:
                    break
                self._current = self._mirror.objects.open(object_id)
            data = self._current.read(n)
            if not data:
                self.close()
                continue
            out.append(data)
            if n > 0:
                n -= len(data)
        return b"".join(out)

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


@contextlib.contextmanager
def open_log(mirror, log_entry: dict, start: int = 0, head: bytes = b"") -> Iterator[BinaryIO]:
    """The stored log as one stream, read part after part (never whole in memory), from byte
    `start` (a record boundary) on: see _Concatenated.seek for the bytes before it, and
    skip_to for `head`."""
    stream = _Concatenated(mirror, parts(log_entry))
    if start:
        stream.skip_to(start, head)
    try:
        yield stream
    finally:
        stream.close()

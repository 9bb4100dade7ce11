"""What a fetch's store pass already decoded, kept on disk until the index's pass over the same run reads it.

A reader stores a run's log first and indexes it after (the index is built from the store, so that
`reindex` can run the mapping again). Reading the stored log a second time would decompress and
decode what the store pass had in hand, so a reader may put those pieces here, by a key of its
own, and the index's pass takes them back. Pieces go to an unnamed temporary file beside the
mirror's objects: memory holds one piece at a time whatever the run's length, and the file is gone
when closed or when the process ends. A key the spill lacks (a later reindex, a read after
`close`, a run past CAP, a spill closed because OPEN_AT_MOST newer ones are open) is read from the
store, as before; a spill is an optimisation the index can always do without.
"""
from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from typing import Sequence


class Spill:
    CAP = 2 << 30          # bytes a spill holds at most: past it, pieces are read from the store again
    # files open at once in a process: a run whose index is never built in this fetch (unchanged, or
    # failed) keeps its spill until its reader goes, so the oldest are closed past this many
    OPEN_AT_MOST = 8
    _open: "OrderedDict[int, Spill]" = OrderedDict()
    _open_lock = threading.Lock()

    def __init__(self, folder: str | os.PathLike):
        self._folder = folder
        self._file = None
        self._size = 0
        self._where: dict = {}            # key -> (offset, the pieces' lengths)
        self._lock = threading.Lock()     # another run's put may close this spill while the index reads it

    def put(self, key, pieces: Sequence[bytes]) -> bool:
        """Keep the pieces under `key`; False when they were not kept (the key taken, or past CAP)."""
        lengths, oldest = [len(p) for p in pieces], []
        with self._lock:
            if key in self._where or self._size + sum(lengths) > self.CAP:
                return False
            if self._file is None:
                os.makedirs(self._folder, exist_ok=True)
                self._file = tempfile.TemporaryFile(dir=self._folder, prefix="spill-")
                with self._open_lock:
                    self._open[id(self)] = self
                    while len(self._open) > self.OPEN_AT_MOST:
                        oldest.append(self._open.popitem(last=False)[1])
            for piece in pieces:
                self._file.write(piece)
            self._where[key] = (self._size, lengths)
            self._size += sum(lengths)
        for spill in oldest:                       # outside this lock: each takes its own
            spill.close()
        return True

    def take(self, key) -> list[bytes] | None:
        """The pieces `put` kept under `key`, or None."""
        with self._lock:
            where = self._where.get(key)
            if where is None or self._file is None:
                return None
            offset, lengths = where
            self._file.flush()
            data = os.pread(self._file.fileno(), sum(lengths), offset)
        if len(data) != sum(lengths):
            return None
        view, pieces, at = memoryview(data), [], 0
        for n in lengths:
            pieces.append(view[at:at + n])
            at += n
        return pieces

    def claim(self) -> bool:
        """Keep the spill open until its reader closes it (no newer spill closes it); False when
        it is closed already."""
        with self._open_lock:
            self._open.pop(id(self), None)
        with self._lock:
            return self._file is not None

    def close(self) -> None:
        """Drop the file (what it held is read from the store from now on)."""
        with self._open_lock:
            self._open.pop(id(self), None)
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._where.clear()
            self._size = 0            # a later put (a run still being stored) starts a new file

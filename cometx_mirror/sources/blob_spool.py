"""Blobs a fold derives as it reads (a neptune 1.x run's inline images), kept on disk until stored.

A run that logs an image every few steps carries them in its op log as base64; holding their bytes
until the run is mapped would grow memory with the run. Each blob goes to one temporary file of the
run as it comes, hashed on the way, and `SpooledBlob.store` puts it in the object store from there:
memory holds one blob at a time. The file is unnamed, in the folder the reader gives (beside the
mirror's objects, as the row spill's: not a /tmp that may live in memory), and gone when the spool
is collected or the process ends.
"""
from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass

from ..store.objects import hash_bytes


class BlobSpool:
    def __init__(self, folder: str | os.PathLike | None = None):
        """`folder`: where the file goes (None: the system's temporary folder)."""
        self._folder = folder
        self._file = None
        self._size = 0
        self._lock = threading.Lock()     # the index may read one blob while the fetch stores another

    def put(self, data: bytes) -> "SpooledBlob":
        with self._lock:
            if self._file is None:
                if self._folder is not None:
                    os.makedirs(self._folder, exist_ok=True)
                self._file = tempfile.TemporaryFile(dir=self._folder, prefix="blobs-")
            self._file.write(data)
            offset, self._size = self._size, self._size + len(data)
        return SpooledBlob(self, offset, len(data), hash_bytes(data))

    def __eq__(self, other) -> bool:        # the same bytes spooled (a fold compared with another)
        if not isinstance(other, BlobSpool):
            return NotImplemented
        return self._size == other._size and (not self._size or
                                              self.read(0, self._size) == other.read(0, other._size))

    def __repr__(self) -> str:
        return f"BlobSpool({self._size} bytes)"

    def read(self, offset: int, size: int) -> bytes:
        with self._lock:
            self._file.flush()
            data = os.pread(self._file.fileno(), size, offset)
        if len(data) != size:
            raise OSError(f"a spooled blob came back short ({len(data)} of {size} bytes)")
        return data


@dataclass(frozen=True)
class SpooledBlob:
    """One blob of a BlobSpool: its object id and size are known; its bytes are read back to be stored."""
    spool: BlobSpool
    offset: int
    size: int
    object_id: str

    def store(self, objects) -> str:
        objects.put_bytes(self.spool.read(self.offset, self.size))
        return self.object_id

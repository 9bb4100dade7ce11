"""Content-addressed byte storage for uploaded files (assets, patches, panel zips).

In memory by default; with a folder, each blob is a file named by its sha256, so
identical uploads (a dataset logged by ten experiments) are stored once and
survive restarts.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from typing import Iterable, Iterator, Optional

CHUNK = 1 << 16


class BlobStore:
    def __init__(self, folder: Optional[str] = None) -> None:
        self._folder = folder
        self._mem: dict[str, bytes] = {}
        self._lock = threading.Lock()
        if folder:
            os.makedirs(folder, exist_ok=True)

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self._folder is None:
            with self._lock:
                self._mem.setdefault(digest, data)
            return digest
        path = self._path(digest)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # Write beside the target, then rename: a crash never leaves half a blob.
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return digest

    def put_stream(self, chunks: Iterable[bytes]) -> str:
        """Store bytes given in chunks without holding them whole (a folder store only)."""
        if self._folder is None:
            return self.put(b"".join(chunks))
        sha = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self._folder)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    sha.update(chunk)
                    f.write(chunk)
            digest = sha.hexdigest()
            path = self._path(digest)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return digest

    def size(self, digest: str) -> int:
        if self._folder is None:
            return len(self._mem[digest])
        return os.path.getsize(self._path(digest))

    def get(self, digest: str) -> bytes:
        return b"".join(self.iter(digest))

    def iter(self, digest: str) -> Iterator[bytes]:
        """Yield the blob in chunks, so large downloads are streamed."""
        if self._folder is None:
            data = self._mem[digest]
            for i in range(0, len(data), CHUNK):
                yield data[i:i + CHUNK]
            return
        with open(self._path(digest), "rb") as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    return
                yield chunk

    def iter_range(self, digest: str, start: int, stop: int) -> Iterator[bytes]:
        """Yield bytes [start, stop) of the blob in chunks (ranged downloads)."""
        if self._folder is None:
            data = self._mem[digest]
            for i in range(start, stop, CHUNK):
                yield data[i:min(stop, i + CHUNK)]
            return
        with open(self._path(digest), "rb") as f:
            f.seek(start)
            left = stop - start
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    def _path(self, digest: str) -> str:
        return os.path.join(self._folder, digest[:2], digest)

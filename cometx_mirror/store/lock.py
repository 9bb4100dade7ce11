"""One writer at a time: an exclusive flock on <mirror>/lock.

flock is released by the kernel when the holder dies, so a kill -9 never leaves
a stale lock behind.  The pid written into the file is only for the message.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import ExpectedError


PRIVATE_UMASK = 0o077


class LockedError(ExpectedError):
    """Another process holds the mirror's write lock."""


class WriteLock:
    def __init__(self, root: Path, purpose: str):
        self.path = Path(root) / "lock"
        self.purpose = purpose
        self._fd: int | None = None

    def __enter__(self) -> "WriteLock":
        # Whatever a writer creates in the mirror (objects, temp files, refs, the index)
        # is the owner's only, as the folder is (0700; mirror.py): the process umask is
        # the one place that covers files made by DuckDB and by every store module.
        self._umask = os.umask(PRIVATE_UMASK)
        try:
            return self._take()
        except BaseException:
            os.umask(self._umask)
            raise

    def _take(self) -> "WriteLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockedError(f"the mirror is busy: {holder} holds its write lock") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.purpose} (pid {os.getpid()})".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
            os.umask(self._umask)

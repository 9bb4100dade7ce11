"""Locks on object storage, restic's way: lock objects with an expiry, no lock server.

A writer (fetch, push, reindex) puts `locks/<random>` saying who it is and
whether it is exclusive, then lists locks/: a writer backs off when it sees a
live exclusive lock; gc (exclusive) backs off when it sees any live lock but its
own.  Two that start at the same moment both see each other and both back off,
so they never overlap.  A holder rewrites its lock every REFRESH seconds; a lock
not rewritten for STALE seconds belongs to a dead process and is ignored (and
removed by the next exclusive locker).  Writers never wait for each other:
objects are written once under their content's name and refs move by
compare-and-swap, so any number of them may hold shared locks at once.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from .backend import Backend
from .lock import LockedError

STALE = float(os.environ.get("COMETX_MIRROR_LOCK_STALE", 30 * 60))
REFRESH = STALE / 6


class RemoteLock:
    def __init__(self, backend: Backend, purpose: str, exclusive: bool):
        self.backend = backend
        self.purpose = purpose
        self.exclusive = exclusive
        self.key = f"locks/{uuid.uuid4().hex}"
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"purpose": self.purpose, "host": socket.gethostname(), "pid": os.getpid(),
                           "exclusive": self.exclusive, "time": time.time()}).encode()

    def __enter__(self) -> "RemoteLock":
        self.backend.put_bytes(self.key, self._body())
        try:
            holder = self._conflict()
        except BaseException:
            self.backend.delete(self.key)
            raise
        if holder:
            self.backend.delete(self.key)
            raise LockedError(f"the mirror is busy: {holder} holds its "
                              f"{'exclusive ' if 'exclusive' in holder else ''}lock")
        self._refresher = threading.Thread(target=self._refresh, daemon=True, name="lock-refresh")
        self._refresher.start()
        return self

    def _conflict(self) -> str | None:
        """Who stops us: a live exclusive lock (for a writer) or any live lock (for gc)."""
        now = time.time()
        for entry in self.backend.list("locks/"):
            if entry.key == self.key:
                continue
            try:
                info = json.loads(self.backend.read(entry.key))
            except Exception:
                continue              # removed meanwhile, or not ours to read
            if now - float(info.get("time", 0)) > STALE:
                if self.exclusive:
                    self.backend.delete(entry.key)   # a dead holder's lock
                continue
            if self.exclusive or info.get("exclusive"):
                kind = " (exclusive)" if info.get("exclusive") else ""
                return f"{info.get('purpose', '?')} on {info.get('host', '?')} (pid {info.get('pid', '?')}){kind}"
        return None

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH):
            try:
                self.backend.put_bytes(self.key, self._body())
            except Exception:
                pass                  # the next refresh tries again; STALE allows five misses

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._refresher:
            self._refresher.join(timeout=5)
        self.backend.delete(self.key)

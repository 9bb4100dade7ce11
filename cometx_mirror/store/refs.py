"""Refs name the latest snapshot of each source scope; the reflog records every move.

A ref is a small object under refs/ holding one object id.  It moves by the
backend's compare-and-swap (a local lockfile and rename, or a conditional PUT):
a concurrent writer's move is never overwritten, the update fails instead.  The
reflog is append-only JSON lines and keeps older snapshots reachable for gc.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Iterator

from ..errors import ExpectedError
from .backend import Backend
from .local import LocalBackend

_PART_RE = re.compile(r"^[A-Za-z0-9._@+=-][A-Za-z0-9._@+= -]*$")


class RefError(ExpectedError):
    pass


def ref_part(text: str) -> str:
    """Make one path component safe for a ref name (keeps it readable)."""
    safe = re.sub(r"[^A-Za-z0-9._@+=-]", "_", text.strip()) or "_"
    return "_" + safe if safe.startswith(".") else safe


class RefMoved(RefError):
    """The ref is not at the value the update expected (another writer moved it)."""


class Refs:
    LOG = "logs/reflog.jsonl"

    def __init__(self, root: Path, backend: Backend | None = None):
        self.backend = backend or LocalBackend(root)
        # the reflog file, on a local backend (tests write torn lines into it)
        self.reflog = None if self.backend.remote else self.backend.local_path(self.LOG)

    def _key(self, name: str) -> str:
        parts = name.split("/")
        if not parts or any(p in ("", ".", "..") or not _PART_RE.match(p) or p.endswith(".lock")
                            for p in parts):
            raise RefError(f"bad ref name {name!r}")
        return "refs/" + name

    def get(self, name: str) -> str | None:
        return self._load(name)[0]

    def _load(self, name: str) -> tuple[str | None, str | None]:
        data, version = self.backend.load(self._key(name))
        if data is None:
            return None, None
        return data.decode(errors="replace").strip() or None, version

    def names(self) -> Iterator[str]:
        for entry in self.backend.list("refs/"):
            if not entry.key.endswith(".lock") and ".tmp" not in entry.name:
                yield entry.key[len("refs/"):]

    def items(self) -> Iterator[tuple[str, str]]:
        for name in self.names():
            value = self.get(name)
            if value:
                yield name, value

    def update(self, name: str, new: str, old: str | None, message: str) -> None:
        """Move `name` from `old` to `new`; RefMoved when it is not at `old` (or
        another writer moves it at the same moment)."""
        current, version = self._load(name)
        if current != old:
            raise RefMoved(f"ref {name} moved while we worked; run the command again")
        if not self.backend.swap(self._key(name), (new + "\n").encode(), version):
            raise RefMoved(f"ref {name} moved while we worked; run the command again")
        self._log(name, old, new, message)

    def _log(self, name: str, old: str | None, new: str, message: str) -> None:
        line = json.dumps({"time": time.time(), "ref": name, "old": old, "new": new,
                           "message": message}, sort_keys=True)
        self.backend.append(self.LOG, (line + "\n").encode())

    def log_entries(self) -> Iterator[dict]:
        """Every reflog entry, oldest first.  A line that is not an entry (a torn last
        line after a crash mid-append, garbage) is skipped; bytes that are not UTF-8
        are read as U+FFFD, so an entry whose message alone is damaged still keeps
        its snapshots reachable.  `bad_log_lines` names both kinds for `verify`."""
        for _, entry, _ in self._read_log():
            if entry is not None:
                yield entry

    def bad_log_lines(self) -> list[int]:
        """Line numbers (from 1) of reflog lines that are skipped or not valid UTF-8."""
        return [n for n, entry, clean in self._read_log() if entry is None or not clean]

    def _read_log(self) -> Iterator[tuple[int, dict | None, bool]]:
        # bytes: one bad line must not stop the others
        for n, raw in enumerate(self.backend.lines(self.LOG), 1):
            if not raw.strip():
                continue
            try:
                text, clean = raw.decode("utf-8"), True
            except UnicodeDecodeError:
                text, clean = raw.decode("utf-8", errors="replace"), False
            try:
                entry = json.loads(text)
            except ValueError:
                entry = None
            yield n, (entry if _is_entry(entry) else None), clean


def _is_entry(entry) -> bool:
    """What `_log` writes: a ref, the snapshot it moved to (and from), a time."""
    return (isinstance(entry, dict) and isinstance(entry.get("ref"), str) and isinstance(entry.get("new"), str)
            and isinstance(entry.get("old"), (str, type(None)))
            and isinstance(entry.get("time"), (int, float)) and not isinstance(entry.get("time"), bool))

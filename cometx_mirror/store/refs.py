"""Refs name the latest snapshot of each source scope; the reflog records every move.

A ref is a text file under refs/ holding one object id.  Updates follow git's
lockfile protocol: write <ref>.lock, fsync, rename over the ref; a compare of the
old value catches a concurrent writer.  The reflog is append-only JSON lines and
keeps older snapshots reachable for gc.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Iterator

from ..errors import ExpectedError

_PART_RE = re.compile(r"^[A-Za-z0-9._@+=-][A-Za-z0-9._@+= -]*$")


class RefError(ExpectedError):
    pass


def ref_part(text: str) -> str:
    """Make one path component safe for a ref name (keeps it readable)."""
    safe = re.sub(r"[^A-Za-z0-9._@+=-]", "_", text.strip()) or "_"
    return "_" + safe if safe.startswith(".") else safe


class Refs:
    def __init__(self, root: Path):
        self.dir = Path(root) / "refs"
        self.reflog = Path(root) / "logs" / "reflog.jsonl"

    def _path(self, name: str) -> Path:
        parts = name.split("/")
        if not parts or any(p in ("", ".", "..") or not _PART_RE.match(p) or p.endswith(".lock")
                            for p in parts):
            raise RefError(f"bad ref name {name!r}")
        return self.dir.joinpath(*parts)

    def get(self, name: str) -> str | None:
        try:
            return self._path(name).read_text().strip() or None
        except FileNotFoundError:
            return None

    def names(self) -> Iterator[str]:
        if not self.dir.is_dir():
            return
        for p in sorted(self.dir.rglob("*")):
            if p.is_file() and not p.name.endswith(".lock"):
                yield p.relative_to(self.dir).as_posix()

    def items(self) -> Iterator[tuple[str, str]]:
        for name in self.names():
            value = self.get(name)
            if value:
                yield name, value

    def update(self, name: str, new: str, old: str | None, message: str) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.with_name(path.name + ".lock")
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise RefError(f"ref {name} is being updated by another process") from None
        try:
            if self.get(name) != old:
                raise RefError(f"ref {name} moved while we worked; run the command again")
            os.write(fd, (new + "\n").encode())
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(lock, path)
            self._log(name, old, new, message)
        finally:
            if fd >= 0:
                os.close(fd)
            if lock.exists():
                lock.unlink()

    def _log(self, name: str, old: str | None, new: str, message: str) -> None:
        self.reflog.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"time": time.time(), "ref": name, "old": old, "new": new,
                           "message": message}, sort_keys=True)
        with open(self.reflog, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

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
        try:
            f = open(self.reflog, "rb")     # bytes: one bad line must not stop the others
        except FileNotFoundError:
            return
        with f:
            for n, raw in enumerate(f, 1):
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

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
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
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
        """Every reflog entry, oldest first; a torn last line (a crash mid-append) is skipped."""
        try:
            with open(self.reflog, encoding="utf-8") as f:
                for line in f:
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue
        except FileNotFoundError:
            return

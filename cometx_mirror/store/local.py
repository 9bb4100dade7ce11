"""The store's bytes in a local folder: the files docs/store.md describes.

Objects are published by rename (a reader sees a whole file or none) and
fsynced with their folder; refs move by git's lockfile protocol; the reflog is
one append-only file.  Modes follow the writer's umask (store/lock.py); objects
are made read-only, 0400.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Iterator

from .backend import Entry, NotFound


class LocalBackend:
    remote = False

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.location = str(self.root)

    def local_path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    # -- reading -----------------------------------------------------------
    def stat(self, key: str) -> Entry | None:
        try:
            st = self.local_path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Entry(key, st.st_size, st.st_mtime) if not _is_dir(st) else None

    def read(self, key: str) -> bytes:
        try:
            return self.local_path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(key) from None

    def read_head(self, key: str, n: int) -> tuple[bytes, int]:
        try:
            with open(self.local_path(key), "rb") as f:
                return f.read(n), os.fstat(f.fileno()).st_size
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(key) from None

    def reader(self, key: str) -> BinaryIO:
        try:
            return open(self.local_path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(key) from None

    def list(self, prefix: str) -> Iterator[Entry]:
        base = self.local_path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue      # removed while we listed
                yield Entry(f"{rel}/{name}" if rel != "." else name, st.st_size, st.st_mtime)

    # -- writing -----------------------------------------------------------
    def put_file(self, key: str, path: str | os.PathLike) -> None:
        final = self.local_path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o400)         # immutable, and the owner's only (docs/store.md)
        try:
            os.replace(path, final)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            _copy_in(path, final)     # staged on another file system (export-index's temp folder)
        fsync_dir(final.parent)

    def put_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        final = self.local_path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if if_absent:
            try:
                os.link(tmp, final)       # fails when the key exists: create-only
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        else:
            os.replace(tmp, final)
        fsync_dir(final.parent)
        return True

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.local_path(key))
        except FileNotFoundError:
            pass

    def move(self, key: str, dest: str) -> bool:
        src, target = self.local_path(key), self.local_path(dest)
        target.parent.mkdir(exist_ok=True, parents=True)
        try:
            os.rename(src, target)
        except OSError:
            return False          # gone already (another reader moved it), or read-only
        fsync_dir(src.parent)
        return True

    def touch(self, key: str) -> None:
        try:
            os.utime(self.local_path(key))
        except PermissionError:
            pass                  # another user's object: it is whole, that is enough

    # -- refs: compare-and-swap by git's lockfile protocol ------------------
    def load(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            data = self.local_path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None, None
        return data, data.decode(errors="replace")

    def swap(self, key: str, data: bytes, version: str | None) -> bool:
        path = self.local_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.with_name(path.name + ".lock")
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False          # another process is moving this ref right now
        try:
            if self.load(key)[1] != version:
                return False
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(lock, path)
            return True
        finally:
            if fd >= 0:
                os.close(fd)
            if lock.exists():
                lock.unlink()

    # -- the reflog: one append-only file -----------------------------------
    def append(self, key: str, line: bytes) -> None:
        path = self.local_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def lines(self, key: str) -> Iterator[bytes]:
        try:
            f = open(self.local_path(key), "rb")
        except FileNotFoundError:
            return
        with f:
            yield from f


def _is_dir(st: os.stat_result) -> bool:
    import stat
    return stat.S_ISDIR(st.st_mode)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_in(path: str | os.PathLike, final: Path) -> None:
    """A rename across file systems: copy beside `final`, fsync, rename, drop the source."""
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    os.chmod(tmp, 0o400)
    os.replace(tmp, final)
    os.unlink(path)

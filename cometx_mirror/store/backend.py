"""The one interface between the store and where its bytes live (restic's backend layer).

Everything above this (objects, refs, reflog, locks, quarantine) speaks in keys:
"/"-separated names relative to the mirror ("objects/ab/<30 hex>",
"refs/comet/host/ws", "config.json").  Two implementations stand behind it,
`LocalBackend` (a folder, today's files) and `S3Backend` (a bucket and prefix);
nothing above the store can tell them apart.

The operations are the ones a content-addressed store needs and no more:
read (whole, a head, a stream), stat, list, put (a file or bytes, optionally
only if absent), delete, move (quarantine), append a line to a log, and a
compare-and-swap for refs (`load` gives an opaque version, `swap` replaces only
that version).
"""
from __future__ import annotations

import os
from typing import BinaryIO, Iterator, NamedTuple, Protocol


class NotFound(Exception):
    """The key does not exist."""


class Entry(NamedTuple):
    key: str
    size: int
    mtime: float      # seconds since the epoch: a file's mtime, an object's LastModified

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class Backend(Protocol):
    location: str           # what messages show: a folder, or s3://bucket/prefix
    remote: bool   # every request is a round trip: a second read is a download, a stat costs

    def stat(self, key: str) -> Entry | None: ...
    def read(self, key: str) -> bytes: ...
    def read_head(self, key: str, n: int) -> tuple[bytes, int]: ...   # first n bytes, total size
    def reader(self, key: str) -> BinaryIO: ...
    def put_file(self, key: str, path: str | os.PathLike) -> None: ...  # consumes the file
    def put_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool: ...
    def list(self, prefix: str) -> Iterator[Entry]: ...
    def delete(self, key: str) -> None: ...
    def move(self, key: str, dest: str) -> bool: ...
    def touch(self, key: str) -> None: ...
    def load(self, key: str) -> tuple[bytes | None, str | None]: ...
    def swap(self, key: str, data: bytes, version: str | None) -> bool: ...
    def append(self, key: str, line: bytes) -> None: ...
    def lines(self, key: str) -> Iterator[bytes]: ...
    def local_path(self, key: str): ...


def is_remote(location: str | os.PathLike) -> bool:
    return str(location).startswith("s3://")


def open_backend(location: str | os.PathLike) -> Backend:
    if is_remote(location):
        from .s3 import S3Backend
        return S3Backend.from_url(str(location))
    from .local import LocalBackend
    return LocalBackend(location)

"""Whether a queue is as the previous fetch read it, told without reading it.

A neptune run folder's queue (1.x op logs, neptune-scale's SQLite files) only changes by being written,
and writing moves a file's size or mtime. A fetch records each queue file's `stamp`; the next one
compares them before reading anything. Equal stamps, the files the ops name unchanged (driver.store_file's
rule), nothing found missing and every object the manifest names still in the store: reading the queue
again would give the same raw manifest, so the previous one is reused and the queue is not read (a run
of 10^7 points took tens of seconds to be found unchanged). Anything else reads the queue, as before.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from .driver import store_file

_DRIVER_KEYS = ("raw_digest", "artifacts")      # what the driver adds to a raw manifest


def stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def same(path: Path, recorded: dict | None) -> bool:
    """Whether the file is there with the size and mtime recorded (a stamp, or an entry holding one)."""
    if not recorded or "size" not in recorded or "mtime_ns" not in recorded:
        return False
    try:
        now = stamp(path)
    except OSError:
        return False
    return now["size"] == recorded["size"] and now["mtime_ns"] == recorded["mtime_ns"]


def files_unchanged(mirror, files: dict, where: Callable[[str], Path]) -> bool:
    """Whether each file the manifest stored (recorded name -> its entry) is as it was: store_file would
    give its entry back (`where` gives a recorded name's place on disk)."""
    for recorded, entry in files.items():
        path = where(recorded)
        if not path.is_file() or store_file(mirror, path, entry) != entry:
            return False
    return True


def stored(mirror, object_ids: Iterable[str]) -> bool:
    """Whether every object is in the store (a lost one is stored again by reading the queue)."""
    return all(map(mirror.objects.exists, object_ids))


def raw_of(old: dict) -> dict:
    """The raw manifest the previous fetch's was made from (what a reader's store returned)."""
    return {k: v for k, v in old.items() if k not in _DRIVER_KEYS}

"""Whether a neptune 1.x run folder is as the previous fetch read it, told without reading it.

Its op logs only change by being written, and writing moves a file's size or mtime. A fetch records each
log's `stamp`; the next one compares them before reading anything. Equal stamps, the files the ops name
unchanged (by the rule driver.store_file keeps a stored file by), nothing found missing and every object
the manifest names still in the store: reading the folder again would give the same raw manifest, so the
previous one is reused and no log is read (a run of 10^7 points took tens of seconds to be found
unchanged). Anything else reads the logs: from where the last fetch ended when they only grew
(v1_resume), else whole. (A neptune-scale queue is told by its own counts: scale_resume. Its SQLite files
are no such stamp: a reader opening the database touches its -wal file.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from ...store.objects import ObjectError


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


def files_unchanged(mirror, files: dict, where: Callable[[str], Path | None]) -> bool:
    """Whether each file the manifest stored (recorded name -> its entry) is as it was: stamped as then,
    or gone from the disk (its stored copy is kept then), its object still stored (store_file would keep
    the entry). `where` gives a recorded name's place on disk."""
    for recorded, entry in files.items():
        path = where(recorded)
        if path is None or not still_stored(mirror, entry) or (path.exists() and not same(path, entry)):
            return False
    return True


def still_stored(mirror, entry: dict | None) -> bool:
    """Whether a stored file's entry names an object the store holds."""
    return bool(entry) and mirror.objects.exists(entry.get("object_id") or "")


def stored(mirror, object_ids: Iterable[str]) -> bool:
    """Whether every object is in the store (a lost one is stored again by reading the queue)."""
    return all(map(mirror.objects.exists, object_ids))


def previous(check: Callable[[Any, dict], Any], mirror, old: dict | None) -> Any:
    """check(mirror, old): what the previous fetch left that this one can take (the previous raw manifest
    if the queue is as it was, where to resume, the logs kept), else None; None too when `old` is not a
    manifest the check can read (a damaged mirror's): the queue is then read."""
    if not isinstance(old, dict):
        return None
    try:
        return check(mirror, old)
    except (KeyError, TypeError, ValueError, AttributeError, OSError, ObjectError):
        return None

"""`gc`: mark from refs + reflog, sweep what nothing references (git prune, restic prune).

Under the exclusive write lock, so no fetch runs meanwhile (on object storage:
no live lock of any writer on any machine, store/remote_lock.py).  Only objects
older than the grace period go: a writer whose lock expired (or a clock skew)
may have written an object it is about to reference, and on a local disk put_*
freshens the mtime of an object it re-adds.  gc refuses to run while anything a ref reaches is
missing or unreadable: deleting more from a damaged store makes it worse, and
a manifest we cannot parse could be keeping anything alive.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from ..errors import ExpectedError
from ..index import queries
from ..index.db import IndexUnavailable, open_read
from ..store.mirror import Mirror
from . import reachable

DEFAULT_GRACE = 24 * 3600


class GcRefused(ExpectedError):
    """gc found the store damaged and deleted nothing."""


@dataclass
class GcReport:
    dry_run: bool
    grace: float
    referenced: int = 0
    swept: list[str] = field(default_factory=list)         # object ids removed (or to remove)
    swept_bytes: int = 0
    kept_young: int = 0                                      # unreferenced but inside the grace
    tmp_removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__, swept=len(self.swept), tmp_removed=len(self.tmp_removed))


def parse_duration(text: str) -> float:
    """'24h', '30m', '2d', '90s' or plain seconds -> seconds."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    try:
        if text and text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except ValueError:
        raise ValueError(f"bad duration {text!r} (use e.g. 24h, 30m, 2d, 0)") from None
    if value < 0:
        raise ValueError(f"bad duration {text!r}: negative")
    return value


def gc(mirror: Mirror, grace: float = DEFAULT_GRACE, dry_run: bool = False) -> GcReport:
    with mirror.write_lock("gc", exclusive=True):
        return _gc_locked(mirror, grace, dry_run)


def _gc_locked(mirror: Mirror, grace: float, dry_run: bool) -> GcReport:
    report = GcReport(dry_run=dry_run, grace=grace)
    walk = reachable.walk(mirror)
    # Anything a ref reaches must be whole; an unreadable snapshot or manifest in
    # history may name objects we cannot see, so it stops gc too.  A missing data
    # object only history names is lost already: sweeping cannot make it worse.
    bad = [p for p in walk.problems if p.current or p.what != "missing"]
    if bad:
        raise GcRefused(f"refusing to gc: {len(bad)} referenced objects are missing or damaged "
                        f"(first: {bad[0].line()}); run `cometx-mirror verify`, then fetch again to heal")
    marked = set(walk.marked) | _index_marks(mirror)
    report.referenced = len(marked)
    cutoff = time.time() - grace
    for entry in list(mirror.objects.entries()):
        oid = entry.key
        if oid in marked:
            continue
        if entry.mtime > cutoff:
            report.kept_young += 1
            continue
        report.swept.append(oid)
        report.swept_bytes += entry.size
        if not dry_run:
            mirror.objects.remove(oid)
    for p in mirror.objects.stale_tmp(cutoff):
        report.tmp_removed.append(p.name)
        if not dry_run:
            _unlink(p)
    return report


def _index_marks(mirror: Mirror) -> set[str]:
    """Object ids the index tables name (normally a subset of the manifests' own)."""
    if not mirror.index_path.exists():
        return set()
    try:
        with open_read(mirror.index_path, wait=2.0) as con:
            return {oid for _, oid, _ in queries.index_object_ids(con).rows}
    except IndexUnavailable:
        return set()


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

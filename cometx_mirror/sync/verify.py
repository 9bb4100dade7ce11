"""`verify`: is the mirror whole?  (restic's `check`, kopia's `snapshot verify`.)

Structure (always, cheap): the config opened; every ref names a snapshot that
parses; every snapshot's manifests parse; every object a manifest declares
exists with the size it says; the index names the same manifests as the refs,
and every object id in its tables exists.

`read_data` also re-reads every object in objects/ and rehashes it (zstd frame
checksum + xxh3-128 against the name), retrying once so a transient read error
is told apart from damage.  A `subset` (from parse_subset) reads part of them,
as restic's --read-data-subset: "n/t" is the n-th of t fixed slices by object
id, so runs 1/t .. t/t cover the store once between them; "x%" a random sample.

Errors fail the run (exit 1); unreferenced objects and stale tmp files are info.
A damaged object is moved into quarantine/ (see store/objects.py) and gets one
line naming its entity and saying that the next fetch is the fix.  An index
behind the refs (a kill during ingest) is a warning: any read heals it.
"""
from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Callable

from ..index import queries
from ..index.db import IndexBusy, IndexUnavailable, open_read
from ..store.mirror import Mirror
from ..store.objects import ObjectError
from . import reachable

STALE_TMP_SECONDS = 24 * 3600


@dataclass
class VerifyReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)    # object ids that failed the rehash
    missing: list[str] = field(default_factory=list)    # referenced object ids not in the store
    objects_checked: int = 0
    bytes_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return dict(self.__dict__, ok=self.ok)


class BadSubset(ValueError):
    """A --read-data-subset that is neither n/t nor x%."""


def parse_subset(text: str) -> Callable[[list[str]], list[str]]:
    """"n/t" -> the objects of slice n of t (by id); "x%" -> a random x % of them."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if m:
        n, t = int(m.group(1)), int(m.group(2))
        if not 1 <= n <= t:
            raise BadSubset(f"bad subset {text!r}: n/t needs 1 <= n <= t")
        return lambda ids: [oid for oid in ids if int(oid[:8], 16) % t == n - 1]
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", text)
    if m and 0 < float(m.group(1)) <= 100:
        share = float(m.group(1)) / 100
        return lambda ids: random.sample(ids, max(1, round(len(ids) * share))) if ids else []
    raise BadSubset(f"bad subset {text!r}: use n/t (e.g. 1/5) or a percentage (e.g. 10%)")


FIX = "the next `cometx-mirror fetch` of it downloads it again"
OBJECT_PROBLEMS = ("missing", "damaged", "wrong size")


def _object_line(what: str, oid: str, owner: tuple[str, str] | None, detail: str = "") -> str:
    """One line per damaged or missing data object: whose it is, and that fetch is the fix."""
    whose = f" of {owner[0]} ({owner[1]})" if owner else ""
    return f"{what} object {oid}{whose}{detail}; {FIX}"


def verify(mirror: Mirror, read_data: bool = False, subset: Callable[[list[str]], list[str]] | None = None,
           progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    report = VerifyReport()
    walk = reachable.walk(mirror)
    reported: set[str] = set()         # data objects that have their line already
    for p in walk.problems:
        owner = walk.owners.get(p.object_id) if p.current else None
        if owner and p.what in OBJECT_PROBLEMS:
            quarantined = mirror.objects.in_quarantine(p.object_id)
            line = _object_line(p.what, p.object_id, owner, " (moved to quarantine/)" if quarantined else "")
            reported.add(p.object_id)
        else:
            line = p.line()
        (report.errors if p.current else report.warnings).append(line)
        if p.what == "missing":
            report.missing.append(p.object_id)
    _check_index(mirror, report)

    all_ids = list(mirror.objects.ids())
    unreferenced = [oid for oid in all_ids if oid not in walk.marked]
    report.info.append(f"{len(walk.snapshots)} snapshots, {len(walk.manifests)} manifests, "
                       f"{len(walk.marked)} referenced objects, {len(all_ids)} objects in store")
    if unreferenced:
        report.info.append(f"{len(unreferenced)} unreferenced objects (gc removes them after the grace period)")
    stale = [p for p in _tmp_files(mirror) if time.time() - p.stat().st_mtime > STALE_TMP_SECONDS]
    if stale:
        report.info.append(f"{len(stale)} stale tmp files (gc removes them)")
    quarantine = mirror.objects.quarantined()
    if quarantine:
        report.info.append(f"{len(quarantine)} damaged copies kept in quarantine/ (never read; delete them "
                           "when you no longer need them)")

    if read_data or subset:
        # an object a read moved into quarantine/ still belongs to the store's damage: it is read
        # (found damaged) in its slice, like the objects still in objects/
        present = set(all_ids)
        moved = sorted({p.object_id for p in walk.problems if p.object_id not in present
                        and mirror.objects.in_quarantine(p.object_id)})
        candidates = sorted(all_ids + moved)
        to_read = subset(candidates) if subset else candidates
        for n, oid in enumerate(to_read, 1):
            _rehash(mirror, oid, report, walk.owners.get(oid), reported)
            if progress:
                progress(n, len(to_read))
    return report


def _rehash(mirror: Mirror, oid: str, report: VerifyReport, owner: tuple[str, str] | None,
            reported: set[str]) -> None:
    first_error = None
    if not mirror.objects.exists(oid) and mirror.objects.in_quarantine(oid):
        first_error = "moved to quarantine/ by an earlier read"
    else:
        for attempt in range(2):
            try:
                # the retry tells a transient read error from damage; only damage is moved aside
                mirror.objects.check(oid, quarantine=attempt == 1)
                report.objects_checked += 1
                report.bytes_checked += mirror.objects.stored_size(oid)
                if first_error:
                    report.warnings.append(f"object {oid}: read failed once, ok on retry ({first_error})")
                return
            except (ObjectError, OSError) as e:
                first_error = " ".join(str(e).split()).split("; ")[0]
    report.damaged.append(oid)
    if oid not in reported:
        reported.add(oid)
        report.errors.append(_object_line("damaged", oid, owner, f": {first_error}"))


def _check_index(mirror: Mirror, report: VerifyReport) -> None:
    if not mirror.index_path.exists():
        report.warnings.append("no index yet (any read or `cometx-mirror reindex` builds it)")
        return
    try:
        current = mirror.current_manifests()
    except ObjectError:
        return   # already reported by the walk
    try:
        with open_read(mirror.index_path, wait=2.0) as con:
            indexed = dict(con.execute("SELECT label, manifest_id FROM manifests").fetchall())
            ids = queries.index_object_ids(con).rows
    except IndexBusy as e:      # a fetch is writing it: not damage
        report.warnings.append(f"index not checked: {' '.join(str(e).split())}")
        return
    except IndexUnavailable as e:
        report.errors.append(f"index not checked: {' '.join(str(e).split())}")
        return
    behind = sorted(label for label, mid in current.items() if indexed.get(label) != mid)
    extra = sorted(label for label in indexed if label not in current)
    if behind or extra:
        # a crash between a ref update and the ingest: the next read (or write) catches the
        # index up, as it rebuilds a missing one, so this is a note, not an error
        example = (behind + extra)[0]
        report.warnings.append(f"the index is behind the refs on {len(behind) + len(extra)} entities "
                               f"(e.g. {example}); the next read brings it up to date")
    # a quarantined object has its line from the walk already (damaged, and fetch is the fix)
    missing = sorted({oid for _, oid, _ in ids if not mirror.objects.exists(oid)
                      and not mirror.objects.in_quarantine(oid)})
    for oid in missing:
        report.errors.append(f"missing object {oid}, named by an index row")
        if oid not in report.missing:
            report.missing.append(oid)


def _tmp_files(mirror: Mirror):
    return mirror.objects.tmp_files()

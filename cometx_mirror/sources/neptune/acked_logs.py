"""A neptune 1.x run's first op logs, deleted by a syncing client, kept as the mirror stored them.

In async mode the client's disk queue starts a new data-<N>.log at 64 MiB and deletes a log once its
server has acknowledged an operation of the next one (DiskQueue.ack); the folder goes once every
operation is synced. A fetch of a run still syncing finds its first logs gone: read as it is, the
folder holds less than the mirror, so the shrink guard keeps the stored run and takes none of the new
lines. Those operations are in the mirror still. The logs the last fetch stored that are now missing
from the front of the folder are kept as stored when no operation went unseen: the first operation of
the first log left is numbered right after the last one stored (the queue numbers each operation it
takes, one by one, `version`). Anything else (a log missing between two that are there, a gap in the
numbers, a first log without one whole line yet) keeps none: the folder is read as it is, as before.
"""
from __future__ import annotations

import json
import re
from itertools import chain, takewhile
from pathlib import Path

from . import queue_stamps

_NUMBER = re.compile(r"^data-(\d+)\.log$")


def kept(mirror, old_logs: list[dict], present: list[Path]) -> list[dict]:
    """The entries of `old_logs` (the previous manifest's, in order) that the client deleted since and
    the mirror keeps; [] when none is, or some operation between them and the folder's logs is lost."""
    names = {p.name for p in present}
    gone = list(takewhile(lambda entry: entry["file"] not in names, old_logs))
    if not gone or not present or any(entry["file"] not in names for entry in old_logs[len(gone):]):
        return []
    if max(map(_number, (entry["file"] for entry in gone))) >= _number(present[0].name):
        return []                          # the client deletes its oldest logs, never a newer one
    if not queue_stamps.stored(mirror, chain.from_iterable(entry["segments"] for entry in gone)):
        return []
    last, first = _last_version(mirror, gone), _first_version(present[0])
    return gone if last is not None and first == last + 1 else []


def _number(name: str) -> int:
    return int(_NUMBER.match(name)[1])


def _version(line: bytes) -> int | None:
    try:
        version = json.loads(line).get("version")
    except (ValueError, AttributeError):
        return None
    return version if type(version) is int else None


def _last_version(mirror, gone: list[dict]) -> int | None:
    """The number of the last operation stored of the gone logs (from the last line of their last
    segment)."""
    segments = [seg for entry in gone for seg in entry["segments"]]
    if not segments:
        return None
    lines = mirror.objects.get_bytes(segments[-1]).rstrip(b"\n").rsplit(b"\n", 1)
    return _version(lines[-1])


def _first_version(log: Path) -> int | None:
    with open(log, "rb") as f:
        line = f.readline()
    return _version(line) if line.endswith(b"\n") else None

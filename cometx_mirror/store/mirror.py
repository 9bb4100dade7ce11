"""The mirror on disk: config, objects, refs, reflog, lock and snapshots.

    <mirror>/config.json      written once; an unknown format is refused
    <mirror>/objects/ab/<id>  immutable content-addressed objects
    <mirror>/refs/<source>/<origin>/<scope...>   latest snapshot per source scope
    <mirror>/logs/reflog.jsonl
    <mirror>/index.duckdb     derived from the refs; `reindex` rebuilds it
    <mirror>/lock, tmp/

Write order (restic's): data objects, then manifests, then the snapshot, then
the ref.  A crash leaves unreferenced objects at worst, which gc collects.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import ExpectedError
from . import canonical, faultpoint
from .lock import WriteLock
from .objects import ObjectError, ObjectStore
from .refs import Refs

FORMAT = 1
CONFIG = "config.json"
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


class MirrorError(ExpectedError):
    """A mirror that is missing, unreadable or of an unknown format."""


@dataclass
class Snapshot:
    id: str
    ref: str
    parent: str | None
    time: float
    source: str
    origin: str
    scope: str
    manifests: dict[str, str]
    stats: dict[str, Any]

    @classmethod
    def from_object(cls, snapshot_id: str, ref: str, data: dict) -> "Snapshot":
        return cls(id=snapshot_id, ref=ref, parent=data.get("parent"), time=data["time"],
                   source=data["source"], origin=data.get("origin", ""), scope=data.get("scope", ""),
                   manifests=data.get("manifests", {}), stats=data.get("stats", {}))


class Mirror:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.objects = ObjectStore(self.root)
        self.refs = Refs(self.root)
        self.index_path = self.root / "index.duckdb"

    # -- life cycle --------------------------------------------------------
    @classmethod
    def init(cls, root: str | os.PathLike) -> "Mirror":
        root = Path(root)
        if (root / CONFIG).exists():
            return cls.open(root)
        try:
            # Private, as ssh and restic keep theirs: the mirror holds code, output and
            # logged data.  Later files follow from the write lock's umask (store/lock.py).
            root.parent.mkdir(parents=True, exist_ok=True)
            root.mkdir(mode=PRIVATE_DIR, exist_ok=True)
            for sub in ("objects", "refs", "logs", "tmp"):
                (root / sub).mkdir(mode=PRIVATE_DIR, exist_ok=True)
            config = {"format": FORMAT, "object_hash": "xxh3-128", "codec": "zstd:3",
                      "mirror_id": uuid.uuid4().hex, "created": time.time()}
            tmp = root / (CONFIG + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
            with os.fdopen(fd, "wb") as f:
                f.write(canonical.dumps(config))
            os.replace(tmp, root / CONFIG)
        except OSError as e:
            raise MirrorError(f"cannot create a mirror at {root}: {e.strerror}") from None
        return cls.open(root)

    @classmethod
    def open(cls, root: str | os.PathLike) -> "Mirror":
        root = Path(root)
        try:
            config = json.loads((root / CONFIG).read_text())
        except FileNotFoundError:
            raise MirrorError(f"no mirror at {root} (run `cometx-mirror init` or fetch into it)") from None
        except (OSError, ValueError) as e:
            raise MirrorError(f"unreadable mirror config at {root / CONFIG}: {e}") from None
        if config.get("format") != FORMAT or config.get("object_hash") != "xxh3-128":
            raise MirrorError(f"mirror at {root} has format {config.get('format')!r}; "
                              f"this version reads format {FORMAT} only")
        mirror = cls(root)
        mirror.config = config
        return mirror

    def write_lock(self, purpose: str) -> WriteLock:
        return WriteLock(self.root, purpose)

    # -- JSON objects ------------------------------------------------------
    def put_json(self, value: Any) -> str:
        return self.objects.put_bytes(canonical.dumps(value))

    def get_json(self, object_id: str) -> Any:
        try:
            return canonical.loads(self.objects.get_bytes(object_id))
        except ValueError:
            raise ObjectError(f"object {object_id} is not JSON") from None

    # -- snapshots ---------------------------------------------------------
    def commit_snapshot(self, ref: str, source: str, origin: str, scope: str,
                        manifests: dict[str, str], stats: dict[str, Any] | None = None,
                        message: str = "fetch") -> str:
        """Write a snapshot object of `manifests` and move `ref` to it.

        `manifests` maps a label ("experiment/<key>", "artifact/<name>", ...) to
        a manifest object id: the whole state of the scope, changed or not.
        """
        parent = self.refs.get(ref)
        snapshot = {"type": "snapshot", "parent": parent, "time": time.time(), "source": source,
                    "origin": origin, "scope": scope, "manifests": manifests, "stats": stats or {}}
        snapshot_id = self.put_json(snapshot)
        faultpoint.hit("before_ref_update")
        self.refs.update(ref, snapshot_id, parent, message)
        faultpoint.hit("after_ref_update")
        return snapshot_id

    def snapshot(self, snapshot_id: str, ref: str = "") -> Snapshot:
        return Snapshot.from_object(snapshot_id, ref, self.get_json(snapshot_id))

    def head_snapshots(self) -> Iterator[Snapshot]:
        for ref, snapshot_id in self.refs.items():
            yield self.snapshot(snapshot_id, ref)

    def history(self, skip: set[str] | frozenset = frozenset()) -> Iterator[Snapshot]:
        """Every readable snapshot any ref has pointed at, newest first (from the reflog).

        A damaged old snapshot is skipped rather than raised: history feeds the
        index's snapshots table, and one bad object must not stop every fetch.
        `verify` reports it.
        """
        seen = set()
        for entry in reversed(list(self.refs.log_entries())):
            sid = entry.get("new")
            if sid and sid not in seen and sid not in skip and self.objects.exists(sid):
                seen.add(sid)
                try:
                    snap = self.snapshot(sid, entry.get("ref", ""))
                except (ObjectError, KeyError, TypeError, AttributeError):
                    continue
                yield snap

    def current_manifests(self) -> dict[str, str]:
        """label -> manifest id across all refs; where two scopes overlap the newer snapshot wins."""
        out: dict[str, tuple[float, str]] = {}
        for snap in self.head_snapshots():
            for label, manifest_id in snap.manifests.items():
                key = f"{snap.source}:{label}"
                if key not in out or out[key][0] <= snap.time:
                    out[key] = (snap.time, manifest_id)
        return {k: v[1] for k, v in out.items()}

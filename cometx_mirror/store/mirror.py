"""The mirror on disk: config, objects, refs, reflog, lock and snapshots.

    <mirror>/config.json      written once; an unknown format is refused
    <mirror>/objects/ab/<id>  immutable content-addressed objects
    <mirror>/refs/<source>/<origin>/<scope...>   latest snapshot per source scope
    <mirror>/logs/reflog.jsonl
    <mirror>/index.duckdb     derived from the refs; `reindex` rebuilds it
    <mirror>/lock, tmp/

Write order (restic's): data objects, then manifests, then the snapshot, then
the ref.  A crash leaves unreferenced objects at worst, which gc collects.

The location is a folder or `s3://BUCKET/PREFIX` (store/backend.py).  For a
bucket, the index and staging files live in a local cache folder keyed by the
mirror's id (`$COMETX_MIRROR_CACHE`, else the user's cache dir), and `root` is
that folder: the layers above find the index and tmp/ the same way for both.
"""
from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import ExpectedError
from . import canonical, faultpoint
from .backend import NotFound, is_remote, open_backend
from .lock import LockedError, WriteLock
from .objects import ObjectError, ObjectStore
from .refs import RefMoved, Refs

FORMAT = 1
CONFIG = "config.json"
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
# How often a snapshot is rebased onto a ref another writer moved before we give up.
REF_RETRIES = 20
notes = logging.getLogger("cometx_mirror")   # one-line notes the CLI shows


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
    def __init__(self, location: str | os.PathLike, backend=None, config: dict | None = None):
        self.backend = backend or open_backend(location)
        self.location = self.backend.location
        self.remote = self.backend.remote
        self.root = _cache_dir(self.backend, config) if self.remote else Path(location)
        self.objects = ObjectStore(self.root, self.backend)
        self.refs = Refs(self.root, self.backend)
        self.index_path = self.root / "index.duckdb"

    # -- life cycle --------------------------------------------------------
    @classmethod
    def init(cls, location: str | os.PathLike) -> "Mirror":
        if is_remote(location):
            return cls._init_remote(str(location))
        root = Path(location)
        if (root / CONFIG).exists():
            return cls.open(root)
        try:
            # Private, as ssh and restic keep theirs: the mirror holds code, output and
            # logged data.  Later files follow from the write lock's umask (store/lock.py).
            root.parent.mkdir(parents=True, exist_ok=True)
            root.mkdir(mode=PRIVATE_DIR, exist_ok=True)
            for sub in ("objects", "refs", "logs", "tmp"):
                (root / sub).mkdir(mode=PRIVATE_DIR, exist_ok=True)
            tmp = root / (CONFIG + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
            with os.fdopen(fd, "wb") as f:
                f.write(canonical.dumps(_new_config()))
            os.replace(tmp, root / CONFIG)
        except OSError as e:
            raise MirrorError(f"cannot create a mirror at {root}: {e.strerror}") from None
        return cls.open(root)

    @classmethod
    def _init_remote(cls, location: str) -> "Mirror":
        backend = open_backend(location)
        # create-only: two machines creating one mirror at once agree on the first config
        backend.put_bytes(CONFIG, canonical.dumps(_new_config()), if_absent=True)
        return cls.open(location)

    @classmethod
    def open(cls, location: str | os.PathLike) -> "Mirror":
        backend = open_backend(location)
        where = backend.location
        try:
            config = json.loads(backend.read(CONFIG))
        except NotFound:
            raise MirrorError(f"no mirror at {where} (run `cometx-mirror init` or fetch into it)") from None
        except (OSError, ValueError) as e:
            raise MirrorError(f"unreadable mirror config at {where}/{CONFIG}: {e}") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT \
                or config.get("object_hash") != "xxh3-128":
            got = config.get("format") if isinstance(config, dict) else None
            raise MirrorError(f"mirror at {where} has format {got!r}; "
                              f"this version reads format {FORMAT} only")
        mirror = cls(location, backend, config)    # one client, one read of the config
        mirror.config = config
        return mirror

    def write_lock(self, purpose: str, exclusive: bool = False, own_cache_if_busy: bool = True):
        """The lock a writer holds.  On a local disk: one writer at a time (flock).  On
        object storage: many writers share it and only `exclusive` (gc) excludes the
        others (store/remote_lock.py), plus a local cache folder's flock for its index.
        When another process on this machine holds the cache folder, a writer takes a
        cache folder of its own (`own_cache_if_busy`) rather than stop: the index is a
        cache of the refs, so any copy catches up.  A reader's catch-up passes False: it
        reads the shared cache as it is rather than build a second index."""
        if not self.remote:
            return WriteLock(self.root, purpose)
        from .remote_lock import RemoteLock
        cache = _CacheLock(self, purpose) if own_cache_if_busy else WriteLock(self.root, purpose)
        return _Both(cache, RemoteLock(self.backend, purpose, exclusive))

    def _use_cache(self, folder: Path) -> None:
        """Point the index and staging files at another local cache folder."""
        self.root = folder
        self.index_path = folder / "index.duckdb"
        self.objects.root = folder
        self.objects.tmp = folder / "tmp"

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
        for _ in range(REF_RETRIES):
            parent = self.refs.get(ref)
            snapshot = {"type": "snapshot", "parent": parent, "time": time.time(), "source": source,
                        "origin": origin, "scope": scope, "manifests": manifests, "stats": stats or {}}
            snapshot_id = self.put_json(snapshot)
            faultpoint.hit("before_ref_update")
            try:
                self.refs.update(ref, snapshot_id, parent, message)
            except RefMoved:
                continue     # another writer moved the ref: rebase onto its snapshot
            faultpoint.hit("after_ref_update")
            if self._kept(ref, snapshot_id):
                return snapshot_id
        raise RefMoved(f"ref {ref} kept moving under us ({REF_RETRIES} tries); run the command again")

    def _kept(self, ref: str, snapshot_id: str, depth: int = 50) -> bool:
        """Our move is in the ref's history, read back: a store that does not serialize
        conditional writes (some S3 servers) may have let a concurrent one overwrite it.
        Then the caller writes the snapshot again on top (our old one stays in the reflog)."""
        if not self.remote:
            return True      # the local lockfile serializes moves
        current = self.refs.get(ref)
        for _ in range(depth):
            if current is None:
                return False
            if current == snapshot_id:
                return True
            try:
                current = self.get_json(current).get("parent")
            except ObjectError:
                return False
        return True          # far down the chain: others built on top long since

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


def _new_config() -> dict:
    return {"format": FORMAT, "object_hash": "xxh3-128", "codec": "zstd:3",
            "mirror_id": uuid.uuid4().hex, "created": time.time()}


def _cache_dir(backend, config: dict | None = None) -> Path:
    """The local folder of a remote mirror: its index, stamp and staging files."""
    base = os.environ.get("COMETX_MIRROR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "cometx-mirror")
    try:
        key = (config if config is not None else json.loads(backend.read(CONFIG))).get("mirror_id")
    except (NotFound, ValueError, AttributeError):
        key = None
    if not isinstance(key, str) or not key.isalnum():
        import hashlib      # no mirror there yet (fetch --list): keyed by its location
        key = "at-" + hashlib.sha256(backend.location.encode()).hexdigest()[:16]
    path = Path(base) / key
    Path(base).mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    path.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    return path


# A machine's writers of one bucket mirror share its cache folder; while it is busy, each
# further writer takes the first free one of <folder>.w1 ... (kept for the next such writer).
CACHE_SLOTS = 16


class _CacheLock:
    """The cache folder's flock; when another process holds it, the first free spare
    folder's, and the mirror then keeps its index there."""

    def __init__(self, mirror: "Mirror", purpose: str):
        self.mirror, self.purpose = mirror, purpose
        self.held: WriteLock | None = None

    def __enter__(self):
        base = self.mirror.root
        try:
            self.held = WriteLock(base, self.purpose).__enter__()
            return self
        except LockedError as busy:
            first = busy
        for n in range(1, CACHE_SLOTS):
            folder = base.with_name(f"{base.name}.w{n}")
            folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
            try:
                self.held = WriteLock(folder, self.purpose).__enter__()
            except LockedError:
                continue
            self.mirror._use_cache(folder)
            holder = str(first).removeprefix("the mirror is busy: ").removesuffix(" holds its write lock")
            notes.info(f"{holder} holds this machine's cache of the mirror; this {self.purpose} keeps "
                       f"its index in a cache folder of its own ({folder.name})")
            return self
        raise first

    def __exit__(self, *exc) -> None:
        if self.held is not None:
            self.held.__exit__(*exc)
            self.held = None


class _Both:
    """Two locks taken in order and released in reverse."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def __enter__(self):
        self.first.__enter__()
        try:
            self.second.__enter__()
        except BaseException:
            self.first.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.second.__exit__(*exc)
        finally:
            self.first.__exit__(*exc)

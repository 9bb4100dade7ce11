"""The server's data read from a mirror, read-only: the other side of the data seam.

`State` (server/state.py) keeps everything in dicts; `MirrorState` answers the same
attributes (`lock`, `settings`, `users`, `data`, `blobs`, `find_project`,
`experiment`, `project_of`, `can_access`, `user_for_key`) from the index and the
object store, so the handlers cannot tell them apart.  Start-up reads nothing: a
background thread then reads the light rows (workspaces, projects, one header per
experiment), or the first request does if it comes sooner; an experiment's heavy
parts (metrics, params, assets, output, ...) are read when a handler first touches
them, and a few such records are kept.

Every DuckDB connection is short and read-only: an open one would keep a fetch from
writing the index.  When the index file changes (a fetch ran), the caches are dropped.
"""
from __future__ import annotations

import hmac
import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import timezone
from typing import Any, Iterator, Optional

import xxhash

from .. import model
from ..errors import ExpectedError
from ..store.mirror import Mirror
from .state import SYSTEM_DETAIL_KEYS, ApiError, Settings, User

READER = "reader"
HEAVY_KEEP = 8          # full experiment records kept in memory
HEAVY_KEYS = ("metrics", "params", "tags", "html", "code", "graph", "output", "system",
              "git", "gitPatch", "dependencies", "cloudDetails", "assets", "models")


class SnapshotNotFound(ExpectedError):
    """--snapshot names no snapshot of this mirror."""


def ms(ts) -> Optional[int]:
    # The index keeps naive UTC timestamps.
    return None if ts is None else round(ts.replace(tzinfo=timezone.utc).timestamp() * 1000)


def stable_id(*parts: str) -> str:
    return xxhash.xxh3_128_hexdigest("\0".join(parts).encode())


class MirrorBlobs:
    """The BlobStore calls the handlers make, over the mirror's objects (verified reads)."""

    def __init__(self, mirror: Mirror) -> None:
        self.objects = mirror.objects

    def get(self, digest: str) -> bytes:
        return self.objects.get_bytes(digest)

    def iter(self, digest: str) -> Iterator[bytes]:
        return self.objects.read_chunks(digest)

    def size(self, digest: str) -> int:
        return self.objects.raw_size(digest)

    def iter_range(self, digest: str, start: int, end: int) -> Iterator[bytes]:
        pos = 0
        for chunk in self.objects.read_chunks(digest):
            lo, hi = max(start - pos, 0), min(end - pos, len(chunk))
            if lo < hi:
                yield chunk[lo:hi]
            pos += len(chunk)
            if pos >= end:
                return


class ExperimentRecord(dict):
    """An experiment record whose heavy keys are read from the index on first use."""

    def __init__(self, header: dict, loader) -> None:
        super().__init__(header)
        self._loader = loader

    def _load(self) -> None:
        if "metrics" not in self:
            dict.update(self, self._loader(self))

    def __missing__(self, key):
        if key in HEAVY_KEYS:
            self._load()
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def get(self, key, default=None):
        if key in HEAVY_KEYS:
            self._load()
        return dict.get(self, key, default)

    def setdefault(self, key, default=None):
        # total_fidelity.refresh keeps its bookkeeping here; harmless in memory.
        return dict.setdefault(self, key, default)


class _Experiments(Mapping):
    """experimentKey -> record; headers from the catalog, heavy parts on demand."""

    def __init__(self, state: "MirrorState") -> None:
        self._state = state

    def __getitem__(self, key: str) -> dict:
        catalog = self._state.catalog()
        record = catalog["experiments"].get(key) or catalog["by_exp_id"].get(key)
        if record is None:
            raise KeyError(key)
        return record

    def __iter__(self):
        return iter(self._state.catalog()["experiments"])

    def __len__(self) -> int:
        return len(self._state.catalog()["experiments"])


class _Data(Mapping):
    """What `state.data` holds, read from the catalog; writes are impossible (a Mapping)."""

    def __init__(self, state: "MirrorState") -> None:
        self._state = state
        self._experiments = _Experiments(state)

    def __getitem__(self, name: str):
        if name == "experiments":
            return self._experiments
        if name in ("artifacts", "registry", "panels"):
            return self._state.workspace_things()[name]
        if name == "seq":
            return 0
        return self._state.catalog()[name]

    def __iter__(self):
        return iter(("workspaces", "projects", "experiments", "artifacts", "registry", "panels", "seq"))

    def __len__(self) -> int:
        return 7


class MirrorState:
    """A mirror served read-only.  `api_key`: the key every request must carry (None:
    any request is answered, for a server bound to loopback only)."""

    read_only = True

    def __init__(self, mirror: Mirror, api_key: Optional[str] = None, snapshot: Optional[str] = None) -> None:
        self.lock = threading.RLock()
        self.settings = Settings(sampling=False)     # a backup answers every point it holds
        self.mirror = mirror
        self.api_key = api_key or None
        self.user = User(READER, api_key or "", [])
        self.users = [self.user]
        self.blobs = MirrorBlobs(mirror)
        self.data = _Data(self)
        self._index = mirror.index_path
        self._tmp: Optional[str] = None
        self._catalog: Optional[dict] = None
        self._things: Optional[dict] = None
        self._seen: Optional[tuple] = None
        self._heavy: OrderedDict[str, ExperimentRecord] = OrderedDict()
        if snapshot:
            self._index = self._snapshot_index(snapshot)

    # ----- keys and access -------------------------------------------------------------

    def user_for_key(self, raw: Optional[str]) -> Optional[User]:
        if self.api_key is None:
            return self._with_workspaces()
        key = (raw or "").split("*", 1)[0].strip()
        if key and hmac.compare_digest(key.encode(), self.api_key.encode()):
            return self._with_workspaces()
        return None

    def key_ok(self, raw: Optional[str]) -> bool:
        return self.user_for_key(raw) is not None

    def _with_workspaces(self) -> User:
        self.user.workspaces = list(self.catalog()["workspaces"])
        return self.user

    def can_access(self, user: User, workspace: str) -> bool:
        return user is self.user

    # ----- lookups (the State interface) -----------------------------------------------

    def find_project(self, workspace: str, name: str) -> Optional[dict]:
        for p in self.catalog()["projects"].values():
            if p["workspaceName"] == workspace and p["projectName"].lower() == name.lower():
                return p
        return None

    def experiment(self, key: Optional[str], user: Optional[User] = None) -> dict:
        exp = self.data["experiments"].get(key or "")
        if exp is None:
            raise ApiError(400, f"experiment {key!r} not found", 90210)
        return exp

    def project_of(self, exp: dict) -> dict:
        return self.catalog()["projects"][exp["projectId"]]

    def close(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def start_saver(self) -> None:
        pass            # nothing is written

    def read_in_background(self) -> None:
        """Read the catalog on a thread (DuckDB's import, the index caught up, the headers) so
        the first request finds it read.  Start-up does not wait for it; a request that comes
        first waits on the lock, and an error here is raised again by that request."""
        def read() -> None:
            try:
                self.catalog()
            except Exception:       # noqa: BLE001 - the first request reports it
                pass
        threading.Thread(target=read, name="mirror-catalog", daemon=True).start()

    # ----- reading the index -----------------------------------------------------------

    def connect(self):
        from ..index.db import open_read
        return open_read(self._index)

    def catalog(self) -> dict:
        """Workspaces, projects and experiment headers; read again when the index changed."""
        with self.lock:
            try:
                st = os.stat(self._index)
                seen = (st.st_size, st.st_mtime_ns)
            except FileNotFoundError:
                seen = None
            if self._catalog is None or seen != self._seen:
                if self._catalog is None and self._tmp is None:
                    from ..sync.browse import catch_up
                    catch_up(self.mirror)       # what ls does: the index up to the refs
                self._catalog = self._read_catalog()
                self._things = None
                self._heavy.clear()
                self._seen = seen
            return self._catalog

    def _read_catalog(self) -> dict:
        with self.connect() as con:
            project_rows = con.execute(
                "SELECT source, workspace, project, description, notes, public, created_at, extra "
                "FROM projects ORDER BY workspace, project").fetchall()
            exp_rows = con.execute(
                "SELECT exp_id, source, workspace, project, experiment_key, name, created_at, started_at, "
                "ended_at, updated_at, state, archived, extra FROM experiments "
                "ORDER BY created_at NULLS LAST, experiment_key").fetchall()
            # Others are few and listings read them (an experiment's name is its "Name" other).
            workspace_rows = con.execute("SELECT DISTINCT workspace FROM workspaces ORDER BY workspace").fetchall()
            other_rows = con.execute("SELECT exp_id, name, value, timestamp FROM others "
                                     "ORDER BY exp_id, name").fetchall()
        workspaces: dict[str, dict] = {}
        projects: dict[str, dict] = {}

        def project(ws: str, name: str, created=None, description="", notes="", public=False) -> dict:
            if ws not in workspaces:
                workspaces[ws] = {"name": ws, "workspaceId": stable_id("ws", ws), "createdAt": created}
            pid = stable_id("project", ws, name)
            if pid not in projects:
                projects[pid] = {"projectId": pid, "projectName": name, "workspaceName": ws,
                                 "ownerUserName": READER, "projectDescription": description or "",
                                 "public": bool(public), "notes": notes or "", "createdAt": created,
                                 "lastUpdated": created}
            return projects[pid]

        for source, ws, name, description, notes, public, created, extra in project_rows:
            project(ws, name, ms(created), description, notes, public)
        for (ws,) in workspace_rows:        # a workspace may hold only artifacts, models or panels
            workspaces.setdefault(ws, {"name": ws, "workspaceId": stable_id("ws", ws), "createdAt": None})
        keys = [r[4] for r in exp_rows]
        counts: dict[str, int] = {}
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
        others: dict[str, dict] = {}
        for i, (exp_id, name, value, ts) in enumerate(other_rows):
            others.setdefault(exp_id, {})[name] = [{"value": value, "timestamp": ms(ts), "seq": i}]
        experiments: dict[str, ExperimentRecord] = {}
        by_exp_id: dict[str, ExperimentRecord] = {}
        for exp_id, source, ws, proj, key, name, created, started, ended, updated, state, archived, extra in exp_rows:
            p = project(ws, proj, ms(created))
            extra = json.loads(extra) if extra else {}
            # A key two sources share is served by the mirror's own exp_id instead.
            served_key = key if key and counts[key] == 1 else exp_id
            start = ms(started or created)
            header = {
                "experimentKey": served_key, "workspaceName": ws, "projectId": p["projectId"],
                "name": name, "runId": exp_id, "ownerUserName": extra.get("userName") or READER,
                "createdAt": ms(created) or start or 0, "startTimeMillis": start, "endTimeMillis": ms(ended),
                "archived": bool(archived), "running": state == "running", "hasCrashed": state == "crashed",
                "throttle": False, "error": None, "filePath": extra.get("filePath"),
                "fileName": extra.get("fileName"), "optimizationId": extra.get("optimizationId"),
                "offline": False, "others": others.get(exp_id, {}), "_exp_id": exp_id, "_source": source,
                "_key": key, "_state": state,
            }
            p["lastUpdated"] = max(filter(None, [p["lastUpdated"], ms(updated or ended or created)]), default=None)
            record = ExperimentRecord(header, self._load_heavy)
            experiments[served_key] = record
            by_exp_id[exp_id] = record
        return {"workspaces": workspaces, "projects": projects, "experiments": experiments,
                "by_exp_id": by_exp_id}

    def workspace_things(self) -> dict:
        """Artifacts, registry models and panels (server/mirror_workspace.py), read once per index."""
        from .mirror_workspace import read_workspace_things, zip_member_text
        with self.lock:
            catalog = self.catalog()
            if self._things is None:
                by_source_key = {(e["_source"], e["_key"]): e for e in catalog["experiments"].values()}

                def served_key(source, key):
                    e = by_source_key.get((source, key))
                    return e["experimentKey"] if e else None

                def exp_id_of(source, key):
                    e = by_source_key.get((source, key))
                    return e["_exp_id"] if e else None

                def blob_text(object_id, member):
                    return zip_member_text(self.blobs.get(object_id), member)
                with self.connect() as con:
                    self._things = read_workspace_things(con, served_key, exp_id_of, blob_text)
            return self._things

    def _load_heavy(self, record: ExperimentRecord) -> dict:
        exp_id = record["_exp_id"]
        with self.lock:
            parts = read_experiment(self, exp_id, record["experimentKey"])
            # Keep only a few heavy records: drop the heavy keys of the oldest.
            self._heavy[exp_id] = record
            self._heavy.move_to_end(exp_id)
            while len(self._heavy) > HEAVY_KEEP:
                _, old = self._heavy.popitem(last=False)
                for k in HEAVY_KEYS:
                    dict.pop(old, k, None)
            return parts

    # ----- a past snapshot -------------------------------------------------------------

    def _snapshot_index(self, snapshot: str) -> str:
        """An index of one snapshot's manifests, built in a private temporary folder."""
        from ..sync import indexer
        from ..store.objects import ObjectError
        try:
            matches = [sid for sid in {e.get("new") for e in self.mirror.refs.log_entries()}
                       if sid and sid.startswith(snapshot)]
        except OSError:
            matches = []
        if len(matches) != 1:
            raise SnapshotNotFound(f"--snapshot {snapshot}: " + (
                "no such snapshot (see `cometx-mirror log`)" if not matches
                else f"names {len(matches)} snapshots; give more of its id"))
        try:
            snap = self.mirror.snapshot(matches[0])
        except ObjectError as e:
            raise SnapshotNotFound(f"--snapshot {snapshot}: {e}") from None
        self._tmp = tempfile.mkdtemp(prefix="cometx-mirror-snapshot-")
        view = _SnapshotView(self.mirror, self._tmp, snap)
        indexer.refresh(view)
        return str(view.index_path)


class _SnapshotView(Mirror):
    """The mirror as one snapshot saw it, indexed into a private folder (nothing is
    written into the mirror itself)."""

    def __init__(self, mirror: Mirror, folder: str, snap) -> None:
        # the same backend (a bucket mirror's objects are not under its local cache folder)
        super().__init__(mirror.location, mirror.backend, getattr(mirror, "config", None))
        self.config = getattr(mirror, "config", {})
        self.root = type(mirror.root)(folder)          # the index and its stamp go here
        self.index_path = self.root / "index.duckdb"
        self._manifests = {f"{snap.source}:{label}": mid for label, mid in snap.manifests.items()}

    def current_manifests(self) -> dict[str, str]:
        return dict(self._manifests)


# ----- one experiment's heavy parts, in the State's record shapes -------------------------

def read_experiment(state: MirrorState, exp_id: str, key: str) -> dict:
    import duckdb   # the package's relational API, for an Arrow table (the index opens only its core)
    with state.connect() as con:
        rows = lambda sql: con.execute(sql, [exp_id]).fetchall()  # noqa: E731
        params = rows("SELECT name, value, origin FROM params WHERE exp_id = ? ORDER BY name")
        tags = [r[0] for r in rows("SELECT tag FROM tags WHERE exp_id = ? ORDER BY tag")]
        system = rows("SELECT name, value FROM system_details WHERE exp_id = ? ORDER BY name")
        texts = rows("SELECT kind, name, object_id, content FROM texts WHERE exp_id = ? ORDER BY kind, name")
        metrics = duckdb.sql("""SELECT name, value, text, epoch_ms(timestamp) AS ts, step, epoch, context
                                FROM metrics WHERE exp_id = ?
                                ORDER BY timestamp NULLS FIRST, step NULLS FIRST, name""",
                             params=[exp_id], connection=con).to_arrow_table().to_pylist()
        assets = rows("""SELECT asset_id, file_name, type, step, epoch, context, metadata, object_id, size,
                                remote, link, created_at, extra FROM assets WHERE exp_id = ?
                         ORDER BY created_at NULLS FIRST, asset_id""")
    out: dict[str, Any] = {
        "params": {n: [{"value": v, "step": None, "timestamp": None, "source": origin, "context": None,
                        "seq": i}] for i, (n, v, origin) in enumerate(params)},
        "tags": tags, "html": "", "code": "", "graph": "", "output": [], "git": None, "gitPatch": None,
        "dependencies": [], "cloudDetails": [], "models": {},
    }
    details = json.loads(json.dumps(SYSTEM_DETAIL_KEYS))
    for name, value in system:
        details[name] = json.loads(value) if value is not None else None
    details["experimentKey"] = key
    out["system"] = details
    for kind, name, object_id, content in texts:
        if kind == "git_patch":
            out["gitPatch"] = object_id
            continue
        if kind not in ("html", "code", "graph", "output", "git_metadata"):
            continue
        text = content if content is not None else _text(state, object_id)
        if kind == "output":
            out["output"].append({"output": text, "stderr": False, "localTimestamp": None,
                                  "offset": len(out["output"]), "runContext": None, "seq": 0})
        elif kind == "git_metadata":
            try:
                out["git"] = json.loads(text) if text else None
            except ValueError:
                out["git"] = None
        else:
            out[kind] = text
    out["metrics"] = [{"metricName": m["name"],
                       "metricValue": m["text"] if m["text"] is not None
                       else (None if m["value"] is None else model.double_text(m["value"])),
                       "step": m["step"], "epoch": m["epoch"], "timestamp": m["ts"],
                       "runContext": m["context"], "offset": i} for i, m in enumerate(metrics)]
    out["assets"] = {}
    for i, (asset_id, file_name, kind, step, epoch, context, metadata, object_id, size, remote, link,
            created, extra) in enumerate(assets):
        extra = json.loads(extra) if extra else {}
        out["assets"][asset_id] = {
            "assetId": asset_id, "fileName": file_name, "fileSize": size, "type": kind or "asset",
            "step": step, "epoch": epoch, "runContext": context, "metadata": metadata,
            "createdAt": ms(created), "dir": extra.get("dir") or kind or "asset", "remote": bool(remote),
            "link": link, "tags": extra.get("tags") or [], "experimentKey": key, "etag": None,
            "groupingName": extra.get("groupingName"), "extension": file_name.rpartition(".")[2] or None,
            "seq": i, "blob": object_id}
        grouping = out["assets"][asset_id]["groupingName"]
        if kind == "model-element" and grouping and grouping not in out["models"]:
            from .mirror_workspace import experiment_model_id
            out["models"][grouping] = experiment_model_id(exp_id, grouping)
    return out


def _text(state: MirrorState, object_id: Optional[str]) -> str:
    if not object_id:
        return ""
    return state.blobs.get(object_id).decode("utf-8", "replace")

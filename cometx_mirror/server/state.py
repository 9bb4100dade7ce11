"""The server's data: users and keys, workspaces, projects, experiments, artifacts,
registry models and panels.

Everything lives in plain dicts guarded by one re-entrant lock: requests arrive
concurrently and out of order (the SDK flushes on thread pools), and a single lock
keeps every read-modify-write atomic without lock-ordering puzzles.  Handlers hold
`state.lock` while they touch `state.data`.

With a data folder the dicts are saved as one JSON file (at most every few seconds
while dirty, and on stop) and uploaded bytes go to a content-addressed blob folder.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from .blobs import BlobStore

STATE_FILE = "state.json"
SAVE_INTERVAL_S = 2.0

# Every key the SDK's single-field system-details getters read (they raise KeyError otherwise).
SYSTEM_DETAIL_KEYS = {
    "user": None, "pythonVersion": None, "pythonVersionVerbose": None, "pid": None,
    "osType": None, "os": None, "osRelease": None, "machine": None, "processor": None,
    "ip": None, "hostname": None, "env": None, "gpuStaticInfoList": [],
    "logAdditionalSystemInfoList": [], "systemMetricNames": [], "maxTotalMemory": None,
    "networkInterfaceIps": None, "command": None, "executable": None, "osPackages": [],
    "installedPackages": [], "totalRam": None,
}


class ApiError(Exception):
    """An error answered to the client: HTTP status, message and optional sdk_error_code."""

    def __init__(self, status: int, msg: str, code: Optional[int] = None) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.code = code

    def body(self) -> dict:
        out: dict[str, Any] = {"msg": self.msg, "code": self.status}
        if self.code is not None:
            out["sdk_error_code"] = self.code
        return out


@dataclass
class User:
    name: str
    api_key: str
    workspaces: list[str] = field(default_factory=list)

    @property
    def default_workspace(self) -> str:
        return self.workspaces[0] if self.workspaces else self.name


@dataclass
class Settings:
    """How far the server behaves like a real Comet (docs/server.md, "Comet as it really is").

    sampling: metric reads answer at most 15,000 values per metric (Comet's default).
    total_fidelity: the organization setting "Store metrics without sampling": every
        metric is also listed among the experiment's assets as CSV zips.
    strict: Comet's other habits (unsorted points, 64-bit offsets, Java-style numbers,
        asset redirects, documented asset fields only).
    """
    sampling: bool = True
    total_fidelity: bool = False
    strict: bool = False
    full_metric_part_rows: int = 100_000     # rows per total-fidelity CSV part

    def update(self, changes: dict) -> None:
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise ApiError(400, f"unknown setting {name!r}")
            kind = type(getattr(self, name))
            if kind is bool and not isinstance(value, bool):
                raise ApiError(400, f"setting {name!r} takes true or false")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ApiError(400, f"setting {name!r} takes a positive whole number")
            setattr(self, name, value)

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


DEFAULT_USERS = (
    User("alice", "alice-api-key-0000000000000001", ["alice", "shared-team"]),
    User("bob", "bob-api-key-00000000000000002", ["bob", "shared-team"]),
)


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return uuid.uuid4().hex


def empty_data() -> dict:
    return {
        "workspaces": {},    # name -> {name, workspaceId, createdAt}
        "projects": {},      # projectId -> project record
        "experiments": {},   # experimentKey -> experiment record
        "artifacts": {},     # artifactId -> artifact record (versions inside)
        "registry": {},      # registryModelId -> registry model record (versions inside)
        "panels": {},        # templateId -> panel record
        "seq": 0,            # a global arrival counter (metric offsets, ordering)
    }


class State:
    def __init__(self, users=DEFAULT_USERS, data_dir: Optional[str] = None,
                 settings: Optional[Settings] = None) -> None:
        self.lock = threading.RLock()
        self.settings = settings or Settings()
        self.users = [User(u.name, u.api_key, list(u.workspaces)) for u in users]
        self.data_dir = data_dir
        self.blobs = BlobStore(os.path.join(data_dir, "blobs") if data_dir else None)
        self.data = empty_data()
        self._dirty = False
        self._saver: Optional[threading.Thread] = None
        self._stop = threading.Event()
        if data_dir:
            os.makedirs(data_dir, exist_ok=True)
            self._load()
        with self.lock:
            for user in self.users:
                for ws in user.workspaces or [user.name]:
                    self.ensure_workspace(ws)

    # ----- keys and access -------------------------------------------------------------

    def user_for_key(self, raw: Optional[str]) -> Optional[User]:
        """The user owning an API key.  Smart keys (`key*base64`) are sent verbatim by the
        SDK, so only the part before `*` is compared."""
        if not raw:
            return None
        key = raw.split("*", 1)[0].strip()
        for user in self.users:
            if user.api_key == key:
                return user
        return None

    def can_access(self, user: User, workspace: str) -> bool:
        return workspace in user.workspaces

    # ----- lookups (call with the lock held) -------------------------------------------

    def next_seq(self) -> int:
        self.data["seq"] += 1
        return self.data["seq"]

    def ensure_workspace(self, name: str) -> dict:
        ws = self.data["workspaces"].get(name)
        if ws is None:
            ws = {"name": name, "workspaceId": new_id(), "createdAt": now_ms()}
            self.data["workspaces"][name] = ws
            self.touch()
        return ws

    def find_project(self, workspace: str, name: str) -> Optional[dict]:
        for p in self.data["projects"].values():
            if p["workspaceName"] == workspace and p["projectName"].lower() == name.lower():
                return p
        return None

    def ensure_project(self, workspace: str, name: str, owner: str, description: str = "",
                       public: bool = False) -> dict:
        project = self.find_project(workspace, name)
        if project is None:
            project = {
                "projectId": new_id(), "projectName": name, "workspaceName": workspace,
                "ownerUserName": owner, "projectDescription": description or "",
                "public": bool(public), "notes": "", "createdAt": now_ms(), "lastUpdated": now_ms(),
            }
            self.data["projects"][project["projectId"]] = project
            self.touch()
        return project

    def experiment(self, key: Optional[str], user: Optional[User] = None) -> dict:
        """The experiment with this key, or the 400 the SDK reads as "not found"."""
        exp = self.data["experiments"].get(key or "")
        if exp is None or (user is not None and not self.can_access(user, exp["workspaceName"])):
            raise ApiError(400, f"experiment {key!r} not found", 90210)
        return exp

    def project_of(self, exp: dict) -> dict:
        return self.data["projects"][exp["projectId"]]

    def new_experiment(self, key: str, project: dict, name: Optional[str], owner: str) -> dict:
        ts = now_ms()
        exp = {
            "experimentKey": key, "workspaceName": project["workspaceName"],
            "projectId": project["projectId"], "name": name, "runId": new_id(),
            "ownerUserName": owner, "createdAt": ts, "startTimeMillis": ts, "endTimeMillis": ts,
            "archived": False, "running": False, "hasCrashed": False, "throttle": False,
            "error": None, "filePath": None, "fileName": None, "optimizationId": None,
            "offline": False,
            "metrics": [],        # every point, unsampled: {metricName, metricValue, step, epoch, timestamp, runContext, offset}
            "params": {},         # name -> [{value, step, timestamp, source, context, seq}]
            "others": {},         # name -> [{value, timestamp, seq}]
            "tags": [], "html": "", "code": "", "graph": "",
            "output": [],         # [{output, stderr, localTimestamp, offset, runContext, seq}]
            "system": dict(SYSTEM_DETAIL_KEYS, experimentKey=key),
            "git": None, "gitPatch": None, "dependencies": [], "cloudDetails": [],
            "assets": {},         # assetId -> asset record
            "models": {},         # modelName -> experimentModelId
        }
        exp["system"] = json.loads(json.dumps(exp["system"]))  # fresh lists per experiment
        self.data["experiments"][key] = exp
        project["lastUpdated"] = ts
        self.touch()
        return exp

    # ----- persistence ------------------------------------------------------------------

    def touch(self) -> None:
        self._dirty = True

    def start_saver(self) -> None:
        if not self.data_dir or self._saver:
            return
        self._saver = threading.Thread(target=self._save_loop, name="state-saver", daemon=True)
        self._saver.start()

    def close(self) -> None:
        self._stop.set()
        if self._saver:
            self._saver.join(timeout=10)
        self.save()

    def save(self) -> None:
        if not self.data_dir:
            return
        with self.lock:
            if not self._dirty and os.path.exists(os.path.join(self.data_dir, STATE_FILE)):
                return
            text = json.dumps(self.data, separators=(",", ":"))
            self._dirty = False
        fd, tmp = tempfile.mkstemp(dir=self.data_dir, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.data_dir, STATE_FILE))

    def _save_loop(self) -> None:
        while not self._stop.wait(SAVE_INTERVAL_S):
            try:
                self.save()
            except OSError:
                pass  # a full disk must not kill the server; the next save retries

    def _load(self) -> None:
        path = os.path.join(self.data_dir, STATE_FILE)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                loaded = json.load(f)
            data = empty_data()
            data.update(loaded)
            self.data = data

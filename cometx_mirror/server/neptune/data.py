"""The Neptune server's data: projects of runs, and the writer that seeds them.

A run holds what neptune-scale logs: atomic attributes (float, int, bool, string,
datetime as epoch ms, string_set), series of (step, timestamp ms, value) for
float / string / histogram / file values, and file attributes. Uploaded bytes
live in a per-server blob table keyed by their storage path, which is what a
signed URL hands out. Every write moves sys/modification_time forward, as the
real server does, so a reader can tell an untouched run from a grown one.
"""
from __future__ import annotations

import itertools
import mimetypes
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

SERIES_TYPES = ("float_series", "string_series", "histogram_series", "file_series")


class Settings:
    """The admin-settable knobs (shared /_admin/settings endpoint)."""

    def __init__(self, signed_url_ttl_s: float = 600.0) -> None:
        self.signed_url_ttl_s = signed_url_ttl_s

    def update(self, changes: dict) -> None:
        for name, value in changes.items():
            if name != "signed_url_ttl_s":
                raise ValueError(f"unknown setting: {name}")
            self.signed_url_ttl_s = float(value)

    def as_dict(self) -> dict:
        return {"signed_url_ttl_s": self.signed_url_ttl_s}


@dataclass
class Run:
    project: "Project"
    sys_id: str
    custom_run_id: str
    attrs: dict[str, tuple[str, Any]] = field(default_factory=dict)
    series: dict[str, dict] = field(default_factory=dict)   # path -> {"type", "points": [(step, ts, value)]}
    files: dict[str, dict] = field(default_factory=dict)    # path -> {"path", "size", "mime"}
    parent: Optional["Run"] = None

    @property
    def identifier(self) -> str:
        return f"{self.project.identifier}/{self.sys_id}"

    # -- writing (each call is one logged operation) --------------------------------
    def _touch(self, ts: Optional[int] = None) -> int:
        data = self.project.data
        ts = data.now_ms() if ts is None else ts
        self.attrs["sys/modification_time"] = ("datetime", max(ts, self.modification_time() or 0))
        return ts

    def modification_time(self) -> Optional[int]:
        return self.attrs.get("sys/modification_time", (None, None))[1]

    def log_configs(self, values: dict[str, Any]) -> "Run":
        with self.project.data.lock:
            for path, value in values.items():
                self.attrs[path] = (_atomic_type(value), _atomic_value(value))
            self._touch()
        return self

    def add_tags(self, *tags: str) -> "Run":
        with self.project.data.lock:
            current = set(self.attrs.get("sys/tags", ("string_set", []))[1])
            self.attrs["sys/tags"] = ("string_set", sorted(current | set(tags)))
            self._touch()
        return self

    def _append(self, path: str, kind: str, step: float, value: Any, ts: Optional[int]) -> None:
        s = self.series.setdefault(path, {"type": kind, "points": []})
        if s["type"] != kind:
            raise ValueError(f"{path} is a {s['type']}, not a {kind}")
        if s["points"] and step <= s["points"][-1][0]:
            raise ValueError(f"{path}: step {step} is not after {s['points'][-1][0]}")
        s["points"].append((float(step), self._touch(ts), value))

    def log_metrics(self, step: float, values: dict[str, float], ts: Optional[int] = None) -> "Run":
        with self.project.data.lock:
            for path, value in values.items():
                self._append(path, "float_series", step, float(value), ts)
        return self

    def log_string(self, path: str, step: float, text: str, ts: Optional[int] = None) -> "Run":
        with self.project.data.lock:
            self._append(path, "string_series", step, text, ts)
        return self

    def log_histogram(self, path: str, step: float, edges: list[float], values: list[float],
                      type_: str = "COUNTING", ts: Optional[int] = None) -> "Run":
        with self.project.data.lock:
            self._append(path, "histogram_series", step,
                         {"type": type_, "edges": list(edges), "values": list(values)}, ts)
        return self

    def upload_file(self, path: str, data: bytes, name: str) -> "Run":
        """A file attribute; `name` is its file name in storage (its extension is kept)."""
        with self.project.data.lock:
            self.files[path] = self.project.data.put_blob(self, path, name, data)
            self._touch()
        return self

    def log_file(self, path: str, step: float, data: bytes, name: str, ts: Optional[int] = None) -> "Run":
        """One point of a file series."""
        with self.project.data.lock:
            ref = self.project.data.put_blob(self, f"{path}/{step:g}", name, data)
            self._append(path, "file_series", step, ref, ts)
        return self


@dataclass
class Project:
    data: "NeptuneData"
    workspace: str
    name: str
    key: str                                   # the prefix of sys/id, e.g. "PROJ"
    runs: dict[str, Run] = field(default_factory=dict)   # sys_id -> Run
    counter: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def identifier(self) -> str:
        return f"{self.workspace}/{self.name}"

    def by_custom_id(self, custom_run_id: str) -> Optional[Run]:
        return next((r for r in self.runs.values() if r.custom_run_id == custom_run_id), None)


class NeptuneData:
    """Every project the server holds; one lock guards all writes and reads."""

    def __init__(self, settings: Optional[Settings] = None) -> None:
        self.lock = threading.RLock()
        self.settings = settings or Settings()
        self.projects: dict[str, Project] = {}
        self.blobs: dict[str, bytes] = {}      # storage path -> bytes
        self._clock = 0

    def now_ms(self) -> int:
        """Wall-clock ms, strictly increasing so two writes never share a modification time."""
        with self.lock:
            self._clock = max(self._clock + 1, int(time.time() * 1000))
            return self._clock

    def close(self) -> None:
        pass

    def project(self, identifier: str, key: Optional[str] = None) -> Project:
        """The project WORKSPACE/NAME, created on first use."""
        with self.lock:
            if identifier not in self.projects:
                workspace, _, name = identifier.partition("/")
                if not workspace or not name or "/" in name:
                    raise ValueError(f"a project is WORKSPACE/NAME, not {identifier!r}")
                self.projects[identifier] = Project(self, workspace, name, key or name.upper()[:8])
            return self.projects[identifier]

    def run(self, project: str, custom_run_id: str, experiment: Optional[str] = None,
            fork_of: Optional[tuple[str, float]] = None, created_ms: Optional[int] = None) -> Run:
        """A new run (like neptune_scale.Run(run_id=..., experiment_name=..., fork_run_id=...,
        fork_step=...)); `fork_of` names the parent by its custom run id."""
        with self.lock:
            proj = self.project(project)
            if proj.by_custom_id(custom_run_id):
                raise ValueError(f"run {custom_run_id} already exists in {project}")
            sys_id = f"{proj.key}-{next(proj.counter)}"
            run = Run(proj, sys_id, custom_run_id)
            now = created_ms if created_ms is not None else self.now_ms()
            run.attrs.update({
                "sys/id": ("string", sys_id), "sys/custom_run_id": ("string", custom_run_id),
                "sys/creation_time": ("datetime", now), "sys/modification_time": ("datetime", now),
                "sys/name": ("string", experiment or ""), "sys/tags": ("string_set", []),
                "sys/archived": ("bool", False)})
            if experiment:
                for other in proj.runs.values():   # the newest run of an experiment is its head
                    if other.attrs.get("sys/name", (None, None))[1] == experiment:
                        other.attrs["sys/experiment/is_head"] = ("bool", False)
                run.attrs["sys/experiment/is_head"] = ("bool", True)
            if fork_of:
                parent = proj.by_custom_id(fork_of[0])
                if parent is None:
                    raise ValueError(f"fork parent {fork_of[0]} does not exist")
                run.attrs["sys/forking/parent"] = ("string", parent.custom_run_id)
                run.attrs["sys/forking/step"] = ("float", float(fork_of[1]))
                run.parent = parent
            proj.runs[sys_id] = run
            return run

    def put_blob(self, run: Run, attr_path: str, name: str, data: bytes) -> dict:
        storage_path = f"{run.project.identifier}/{run.sys_id}/{attr_path}/{name}"
        self.blobs[storage_path] = bytes(data)
        return {"path": storage_path, "size": len(data),
                "mime": mimetypes.guess_type(name)[0] or "application/octet-stream"}


def _atomic_type(value: Any) -> str:
    import datetime as dt
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, (set, frozenset, list, tuple)):
        return "string_set"
    return "string"


def _atomic_value(value: Any) -> Any:
    import datetime as dt
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return int(round(value.timestamp() * 1000))
    if isinstance(value, (set, frozenset, list, tuple)):
        return sorted(str(v) for v in value)
    return value

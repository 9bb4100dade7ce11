"""What the refs and the reflog keep alive: the walk shared by `verify` and `gc`.

Roots are every ref and every snapshot id the reflog ever named (old and new),
plus each snapshot's parent chain.  A snapshot keeps its manifests alive; a
manifest keeps alive the objects it names.

The rule for manifests (they are source-defined JSON): every JSON value, keys
included, that is a 32-hex string naming an existing object is referenced.  A
source can add fields without teaching gc about them, and a 32-hex string that
is not an object (a Comet experiment key) costs nothing.  That rule cannot tell
a *missing* object from an experiment key, so for "missing" checks we use the
declared references only: any dict holding an ``object`` or ``object_id``
(optionally with its raw ``size``), the shape sources write for a resource.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..store.mirror import Mirror
from ..store.objects import ObjectError

HEX32 = re.compile(r"^[0-9a-f]{32}$")
DECLARING_KEYS = ("object", "object_id")


def hex_strings(value: Any) -> Iterator[str]:
    """Every 32-hex string anywhere in a JSON value."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if len(v) == 32 and HEX32.match(v):
                yield v
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def declared_objects(value: Any) -> Iterator[tuple[str, int | None]]:
    """(object id, size or None) for every dict with an ``object``/``object_id`` in a JSON value."""
    for _, oid, size in declared_paths(value):
        yield oid, size


def declared_paths(value: Any) -> Iterator[tuple[str, str, int | None]]:
    """(where, object id, size or None) of each declared reference; `where` is the
    path of keys to it ("assets/abc", "resources/metrics"), to name it to the user."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, dict):
            for key in DECLARING_KEYS:
                oid = v.get(key)
                if isinstance(oid, str) and HEX32.match(oid):
                    size = v.get("size")
                    yield where or key, oid, size if isinstance(size, int) and not isinstance(size, bool) else None
            stack.extend((f"{where}/{k}" if where else str(k), x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((f"{where}/{i}", x) for i, x in enumerate(v))


@dataclass
class Problem:
    object_id: str
    what: str            # "missing", "damaged", "wrong size", "not JSON"
    referrer: str        # who names it: "ref comet/...", "snapshot <id>", "manifest <id>"
    current: bool        # reachable from a ref (True) or only from the reflog/history (False)

    def line(self) -> str:
        where = "" if self.current else " (history only)"
        return f"{self.what} object {self.object_id}, named by {self.referrer}{where}"


@dataclass
class Reachability:
    marked: set[str] = field(default_factory=set)
    snapshots: set[str] = field(default_factory=set)
    manifests: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    # declared object id -> (label of a current manifest naming it, where in that manifest)
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)

    def current_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.current]


def _size_problem(mirror: Mirror, oid: str, size: int | None) -> str | None:
    """Check an object's header (and a raw body's length) without reading the data."""
    try:
        raw = mirror.objects.raw_size(oid)
    except ObjectError as e:
        return _missing_or_damaged(mirror, oid) if "missing" in str(e) else "damaged"
    if size is not None and raw != size:
        return "wrong size"
    if not mirror.objects.body_length_ok(oid):
        return "damaged"
    return None


def walk(mirror: Mirror, check_declared: bool = True) -> Reachability:
    """Mark everything reachable; record what is referenced but missing or unreadable."""
    r = Reachability()
    # (snapshot id, referrer, current?) — current snapshots first, so a snapshot
    # reached both ways counts as current.
    todo: list[tuple[str, str, bool]] = [(sid, f"ref {name}", True) for name, sid in mirror.refs.items()]
    for entry in mirror.refs.log_entries():
        for key in ("new", "old"):
            sid = entry.get(key)
            if isinstance(sid, str) and sid:
                todo.append((sid, f"reflog of {entry.get('ref', '?')}", False))
    seen: dict[str, bool] = {}
    manifest_todo: list[tuple[str, str, bool]] = []
    labels: dict[str, str] = {}        # current manifest id -> "source:label"
    while todo:
        sid, referrer, current = todo.pop(0)
        if sid in seen and (seen[sid] or not current):
            continue
        seen[sid] = current
        if not HEX32.match(sid):
            r.problems.append(Problem(sid, "malformed", referrer, current))
            continue
        data = _load_json(mirror, sid, referrer, current, r)
        if data is None:
            continue
        r.marked.add(sid)
        r.snapshots.add(sid)
        for label, mid in sorted((data.get("manifests") or {}).items()):
            manifest_todo.append((mid, f"snapshot {sid} ({label})", current))
            if current:
                labels.setdefault(mid, f"{data.get('source', '?')}:{label}")
        parent = data.get("parent")
        if isinstance(parent, str) and parent:
            todo.append((parent, f"snapshot {sid} (parent)", False))   # older state: history

    done: dict[str, bool] = {}
    for mid, referrer, current in manifest_todo:
        if mid in done and (done[mid] or not current):
            continue
        done[mid] = current
        if not isinstance(mid, str) or not HEX32.match(mid):
            r.problems.append(Problem(str(mid), "malformed", referrer, current))
            continue
        manifest = _load_json(mirror, mid, referrer, current, r)
        if manifest is None:
            continue
        r.marked.add(mid)
        r.manifests.add(mid)
        for oid in hex_strings(manifest):
            if oid not in r.marked and mirror.objects.exists(oid):
                r.marked.add(oid)
        if check_declared:
            for where, oid, size in declared_paths(manifest):
                if mid in labels:
                    r.owners.setdefault(oid, (labels[mid], where))
                what = _size_problem(mirror, oid, size)
                if what:
                    r.problems.append(Problem(oid, what, f"manifest {mid}", current))
    return r


def _missing_or_damaged(mirror: Mirror, oid: str) -> str:
    """A read that found damage moved the object into quarantine/: it is still damage
    (gc must treat it so), not an object that was never there."""
    return "damaged" if mirror.objects.in_quarantine(oid) else "missing"


def _load_json(mirror: Mirror, oid: str, referrer: str, current: bool, r: Reachability) -> Any:
    if not mirror.objects.exists(oid):
        r.problems.append(Problem(oid, _missing_or_damaged(mirror, oid), referrer, current))
        return None
    try:
        data = mirror.get_json(oid)
    except ObjectError as e:
        what = "not JSON" if "not JSON" in str(e) else "damaged"
        r.marked.add(oid)     # keep it: it is referenced, gc must not make things worse
        r.problems.append(Problem(oid, what, referrer, current))
        return None
    if not isinstance(data, dict):
        r.marked.add(oid)
        r.problems.append(Problem(oid, "not a JSON object", referrer, current))
        return None
    return data

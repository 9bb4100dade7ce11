"""What changed between two snapshots: entities added, removed, and which parts changed."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..store.mirror import Mirror


@dataclass
class Change:
    label: str
    kind: str                      # "added" | "removed" | "changed"
    parts: list[str] = field(default_factory=list)   # for "changed": which resources differ


def _parts(old: dict, new: dict) -> list[str]:
    """Names of the manifest entries that differ, one level into nested maps
    (so a Comet manifest reports `resources.others`, `assets.<id>` ...)."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and not {"object", "size"} <= (a.keys() | b.keys()):
            out += [f"{key}.{k}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
        else:
            out.append(key)
    return out


def resolve_snapshot(mirror: Mirror, prefix: str) -> str:
    """A snapshot id from a unique prefix of it (as git accepts short ids)."""
    matches = {s.id for s in mirror.history() if s.id.startswith(prefix)}
    if len(matches) != 1:
        raise ValueError(f"{'no' if not matches else 'more than one'} snapshot matches {prefix!r}")
    return matches.pop()


def diff_snapshots(mirror: Mirror, old_id: str, new_id: str) -> list[Change]:
    old = mirror.snapshot(resolve_snapshot(mirror, old_id)).manifests
    new = mirror.snapshot(resolve_snapshot(mirror, new_id)).manifests
    changes = []
    for label in sorted(old.keys() | new.keys()):
        if label not in old:
            changes.append(Change(label, "added"))
        elif label not in new:
            changes.append(Change(label, "removed"))
        elif old[label] != new[label]:
            changes.append(Change(label, "changed",
                                  _parts(mirror.get_json(old[label]), mirror.get_json(new[label]))))
    return changes

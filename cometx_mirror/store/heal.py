"""What a fetch must download again: stored objects that are missing or damaged.

restic's `repair` idea, kept cheap: a fetch looks at the objects an unchanged
entity's manifest names with `ObjectStore.intact` (a stat and a header read, no
rehash) and downloads again every one that is gone.  A flipped byte is found by
a read (which moves the object into quarantine/, so it is gone) or by
`verify --read-data`; the fetch after that heals it.
"""
from __future__ import annotations

from typing import Any

from .objects import ObjectStore


def unsound(objects: ObjectStore, refs: dict[str, Any]) -> set[str]:
    """The names in `refs` (name -> {"object": id, ...}) whose object is missing or
    structurally damaged."""
    out = set()
    for name, ref in refs.items():
        oid = ref.get("object") if isinstance(ref, dict) else None
        if isinstance(oid, str) and not objects.intact(oid):
            out.add(name)
    return out

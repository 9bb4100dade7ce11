"""Never replace stored data with less of it (unless asked to).

A source may record in a manifest an ``extent``: counters of how much the entity
holds ({"points": 52, "log_bytes": 9120}: metric points, records, bytes of a log).
When a fetch would replace an entity's stored manifest with one whose extent is
smaller in any counter both record, the stored one is kept and the fetch says so
(a torn or truncated `.wandb` log must not replace a finished run).  One check at
the commit step serves every source; a source that records no extent is not
checked.  `fetch --allow-shrink` lets the smaller version in.
"""
from __future__ import annotations

from ..store.mirror import Mirror
from ..store.objects import ObjectError


def extent(manifest: dict) -> dict[str, int]:
    ext = manifest.get("extent") if isinstance(manifest, dict) else None
    if not isinstance(ext, dict):
        return {}
    return {k: v for k, v in ext.items() if isinstance(v, int) and not isinstance(v, bool)}


def shrinkage(old: dict[str, int], new: dict[str, int]) -> str | None:
    """'points 52 -> 0, log_bytes 9120 -> 4000' when `new` is smaller in any shared counter."""
    less = [f"{k} {old[k]} -> {new[k]}" for k in sorted(old) if k in new and new[k] < old[k]]
    return ", ".join(less) or None


def keep_stored(mirror: Mirror, stored: dict[str, str], manifests: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """`manifests` with every label that would shrink set back to its stored manifest,
    and one line per label kept."""
    out, kept = dict(manifests), []
    for label, new_id in manifests.items():
        old_id = stored.get(label)
        if not old_id or old_id == new_id:
            continue
        try:
            new = extent(mirror.get_json(new_id))
            if not new:
                continue            # the source records no extent for this entity
            old = extent(mirror.get_json(old_id))
        except ObjectError:
            continue                # an unreadable stored manifest is replaced: that heals it
        less = shrinkage(old, new)
        if less:
            out[label] = old_id
            kept.append(f"{label}: kept the stored version; the source now has less ({less}); "
                        "`fetch --allow-shrink` replaces it")
    return out, kept

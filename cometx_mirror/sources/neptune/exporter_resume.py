"""An exporter run's fold saved after its last part, so the next fetch of a run that gained parts folds only
those.

The exporter writes a run as numbered parquet parts, and the fold of a run is the fold of its parts' rows
in part order. So when a run gains parts after the ones the last fetch folded, and those are as they were
(the same chunks), the fold of the run is that fold fed the new parts' rows. The fetch saves it as one
object the manifest names (`resume`): the run as saved_run saves it, each series' kind, and how many parts
it took. The next fetch goes on from it when the old parts come first, unchanged, the new ones numbered
after them, and every file the old parts named stored as it was (their refs are in the saved run).
Anything else (a part rewritten, a histogram series or an artifact, which saved_run does not save, a
saved fold from another version) is folded whole, as before.
"""
from __future__ import annotations

from . import saved_run

VERSION = 1


def encode(run, types: dict, parts: int, objects) -> bytes | None:
    """The saved fold (`run` and its series' `types`, having folded the first `parts` parts), its texts
    stored in `objects`; None when it holds what cannot go on."""
    saved = saved_run.save(run, objects)
    if saved is None:
        return None
    return saved_run.dumps({"v": VERSION, "parts": parts, "run": saved, "types": types})


def decode(data: bytes) -> dict | None:
    """The saved state, or None when it is not one this version folds on from."""
    return saved_run.loads(data, VERSION)


def parts_grown(old: dict, new: dict) -> int | None:
    """How many of `new`'s parts (in part order) are `old`'s, unchanged, when the rest are numbered after
    them; None when the parts did not only grow."""
    was = sorted(old.get("parts") or [], key=lambda p: p["part"])
    now = sorted(new.get("parts") or [], key=lambda p: p["part"])
    key = lambda part: (part["file"], part["part"], part["chunks"])     # noqa: E731
    if not was or list(map(key, now[:len(was)])) != list(map(key, was)):
        return None
    return len(was)


def files_kept(old: dict, new: dict) -> bool:
    """Whether every file the old parts named is stored as it was, none missing then is found now, and no
    file new to `new` lies under a path the old parts named (a file set that gained a file)."""
    old_files, new_files = old.get("files") or {}, new.get("files") or {}
    if any(new_files.get(key) != entry for key, entry in old_files.items()):
        return False
    if not set(old.get("missing") or []) <= set(new.get("missing") or []):
        return False
    named = [path for part in old.get("parts") or [] for path in part.get("file_paths") or []]
    return not any(key == path or key.startswith(path + "/")
                   for key in set(new_files) - set(old_files) for path in named)


def restore(run, state: dict, objects) -> dict:
    """Make `run` (a fresh fold's) the saved one; the series' kinds."""
    saved_run.restore(run, state["run"], objects)
    return dict(state["types"])


def objects_named(state: dict) -> list[str]:
    return saved_run.objects_named(state["run"])

"""A neptune-scale queue's fold saved at its end, so the next fetch of a grown queue folds only what came after.

The client only appends operations (each under the next sequence id), and the fold of a queue is the fold
of its operations in sequence order. So once a fetch has folded every operation up to `last_seq`, the
fold of the grown queue is that fold, fed the operations after it. The fetch saves it as one object the
manifest names (`resume`): the run's attributes, files, sets, the kinds of its series, and each text or
string series as the object its text so far is stored as (a ConsoleText continues it, reading it back
only if more comes), with how many operations it took and their bytes (`ops`, `bytes`), and the errors
found in them. The next fetch counts the operations up to `last_seq` again (SQL, no operation read): the
same count and bytes, and the uploads stored as they were, and it folds on from the saved fold. Anything
else (the queue was rewritten or synced away, a histogram series, whose array is closed once stored, a
saved fold from another version) folds the queue whole, as before. The run itself is saved as
saved_run saves it.
"""
from __future__ import annotations

from . import saved_run

VERSION = 1


def encode(folder, objects, last_seq: int, ops: int, nbytes: int, errors: list[str]) -> bytes | None:
    """The saved fold of `folder` (scale._Fold, having folded every operation up to `last_seq`: `ops`
    of them, `nbytes` bytes), its texts stored in `objects`; None when it holds what cannot go on (a
    histogram series, or what the scale fold never makes)."""
    run = saved_run.save(folder.run, objects) if not folder.run.blobs else None
    if run is None:
        return None
    state = {
        "v": VERSION, "last_seq": last_seq, "ops": ops, "bytes": nbytes, "errors": errors, "run": run,
        "sets": {path: sorted(s) for path, s in folder.sets.items()}, "types": folder.types,
        "float_paths": sorted(folder.float_paths), "previews": folder.previews}
    return saved_run.dumps(state)


def decode(data: bytes) -> dict | None:
    """The saved state, or None when it is not one this version folds on from."""
    return saved_run.loads(data, VERSION)


def texts(state: dict) -> list[str]:
    """The objects the saved fold's texts go on from (saved_run.objects_named)."""
    return saved_run.objects_named(state["run"])


def restore(folder, state: dict, objects) -> None:
    """Make `folder` (a fresh scale._Fold of the same run and uploads) the saved fold."""
    saved_run.restore(folder.run, state["run"], objects)
    folder.sets = {path: set(values) for path, values in state["sets"].items()}
    folder.types = dict(state["types"])
    folder.float_paths = set(state["float_paths"])
    folder.previews = state["previews"]

"""A neptune 1.x run's fold saved at the end of its op log, so the next fetch of a grown run folds only
the lines written since.

The client only appends to its op logs (data-<N>.log, the last one growing, a new one after it when it
rolls over), and the fold of a run is the fold of their lines in order. So once a fetch has folded every
line of the logs, the fold of the grown run is that fold, fed the lines after them. The fetch saves it as
one object the manifest names (`resume`): the run as saved_run saves it, the fold's own counts (sets,
series kinds and next steps, where each float series starts, the op count), the errors found so far, and
where the last log stood (its segments' byte sizes and the last one's line count).

The next fetch goes on from it when the earlier logs are stamped as then, the last one still begins with
its stored segments' bytes (hashed against their ids, nothing parsed: sources/file_prefix) and its last segment
ended with a whole line, and every file the run uploaded is unchanged. It reads the last log again from its
last segment, which it stores again with the new lines; the segments before it are kept. Anything else
(a log rewritten, a run that names a glob, tracks an artifact, logs images or misses a file, a saved
fold from another version) is read whole, as before.
"""
from __future__ import annotations

from . import saved_run

VERSION = 1


def encode(folder, objects, log: dict, errors: list[str], file_errors: list[str]) -> bytes | None:
    """The saved fold of `folder` (offline_v1._Fold, having folded every line of the logs; `log`: where
    the last stood), its texts and inline files stored in `objects`; None when it holds what cannot go on."""
    run = saved_run.save(folder.run, objects)
    if run is None:
        return None
    state = {"v": VERSION, "log": log, "errors": errors, "file_errors": file_errors, "run": run,
             "i": folder.i, "sets": {path: sorted(s) for path, s in folder.sets.items()},
             "types": folder.types, "next_step": folder.next_step, "float_from": folder.float_from}
    return saved_run.dumps(state)


def decode(data: bytes) -> dict | None:
    """The saved state, or None when it is not one this version folds on from."""
    return saved_run.loads(data, VERSION)


def objects_named(state: dict) -> list[str]:
    """The objects the saved fold goes on from (saved_run.objects_named)."""
    return saved_run.objects_named(state["run"])


def restore(folder, state: dict, objects) -> None:
    """Make `folder` (a fresh offline_v1._Fold of the same run, metadata and files) the saved fold."""
    saved_run.restore(folder.run, state["run"], objects)
    folder.sets = {path: set(values) for path, values in state["sets"].items()}
    folder.types = dict(state["types"])
    folder.next_step = dict(state["next_step"])
    folder.float_from = dict(state["float_from"])
    folder.i = state["i"]

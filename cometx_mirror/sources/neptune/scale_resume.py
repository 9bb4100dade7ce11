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
saved fold from another version) folds the queue whole, as before.

Saved as JSON with NaN allowed: the fold's values keep their types (ints of any size, -0.0, NaN).
"""
from __future__ import annotations

import dataclasses
import json

from ..console_text import ConsoleText
from . import mapping

VERSION = 1


def encode(folder, objects, last_seq: int, ops: int, nbytes: int, errors: list[str]) -> bytes | None:
    """The saved fold of `folder` (scale._Fold, having folded every operation up to `last_seq`: `ops`
    of them, `nbytes` bytes), its texts stored in `objects`; None when it holds what cannot go on (a
    histogram series, or what the scale fold never makes)."""
    run = folder.run
    if run.blobs or run.artifacts:
        return None
    series = {}
    for path, entry in run.series.items():
        if "text" in entry:
            series[path] = {"type": entry["type"], "text": _saved(entry["text"], objects)}
        elif isinstance(entry.get("blob"), mapping.SeriesLines):
            series[path] = {"type": entry["type"], "lines": _saved(entry["blob"], objects),
                            "points": entry["blob"].points}
        else:                              # a histogram's JSON array is closed once stored; float points
            return None
    state = {
        "v": VERSION, "last_seq": last_seq, "ops": ops, "bytes": nbytes, "errors": errors,
        "run": {"created_at": run.created_at, "attrs": run.attrs, "files": {
            path: {"type": f["type"], "refs": [dataclasses.asdict(r) for r in f["refs"]]}
            for path, f in run.files.items()}, "extra": run.extra, "last_time": run.last_time, "series": series},
        "sets": {path: sorted(s) for path, s in folder.sets.items()}, "types": folder.types,
        "float_paths": sorted(folder.float_paths), "previews": folder.previews}
    return json.dumps(state, separators=(",", ":")).encode("utf-8")


def _saved(text: ConsoleText, objects) -> dict:
    """A text so far: the object it is stored as, or none when it took no value at all."""
    if not text.any_value:
        return {"object": None, "size": 0}
    return {"object": text.store(objects), "size": text.size}


def _continued(saved: dict, objects, kind=ConsoleText) -> ConsoleText:
    if saved["object"] is None:
        return kind()
    return kind((objects, saved["object"], saved["size"]))


def decode(data: bytes) -> dict | None:
    """The saved state, or None when it is not one this version folds on from."""
    try:
        state = json.loads(data)
    except ValueError:
        return None
    return state if isinstance(state, dict) and state.get("v") == VERSION else None


def texts(state: dict) -> list[str]:
    """The objects the saved fold's texts go on from (a fold resumed reads them back when more comes;
    gc keeps them as the index's, not the manifest's: the caller checks they are still there)."""
    saved = state["run"]["series"].values()
    return [entry[kind]["object"] for entry in saved for kind in ("text", "lines")
            if kind in entry and entry[kind]["object"] is not None]


def restore(folder, state: dict, objects) -> None:
    """Make `folder` (a fresh scale._Fold of the same run and uploads) the saved fold."""
    run, saved = folder.run, state["run"]
    run.created_at, run.last_time, run.extra = saved["created_at"], saved["last_time"], saved["extra"]
    run.attrs = {path: tuple(kv) for path, kv in saved["attrs"].items()}
    run.files = {path: {"type": f["type"], "refs": [mapping.FileRef(**r) for r in f["refs"]]}
                 for path, f in saved["files"].items()}
    for path, entry in saved["series"].items():
        if "text" in entry:
            run.series[path] = {"type": entry["type"], "text": _continued(entry["text"], objects)}
        else:
            lines = _continued(entry["lines"], objects, mapping.SeriesLines)
            lines.points = entry["points"]
            run.series[path] = {"type": entry["type"], "blob": lines}
    folder.sets = {path: set(values) for path, values in state["sets"].items()}
    folder.types = dict(state["types"])
    folder.float_paths = set(state["float_paths"])
    folder.previews = state["previews"]

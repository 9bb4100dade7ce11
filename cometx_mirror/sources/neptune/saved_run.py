"""A fold's RunData saved as JSON, so that the next fetch of a run that only grew folds on from it.

Shared by the readers whose queues only grow (scale_resume, v1_resume): each saves its own fold's
state beside this. A console text or string series is saved as the object its text so far is stored
as (a ConsoleText continues it, reading it back only if more comes); an inline file's bytes as their
object. What cannot go on is not saved: a histogram's JSON array, closed once stored; image points,
whose bytes sit in the fold's spool; a tracked artifact's listing, taken from the disk at fetch time.

Saved as JSON with NaN allowed: the fold's values keep their types (ints of any size, -0.0, NaN).
"""
from __future__ import annotations

import dataclasses
import json

from ..console_text import ConsoleText
from . import mapping


def save(run: mapping.RunData, objects) -> dict | None:
    """`run` as JSON values, its texts and inline files stored in `objects`; None when it holds what
    cannot go on."""
    if run.artifacts:
        return None
    series = {}
    for path, entry in run.series.items():
        if "text" in entry:
            series[path] = {"type": entry["type"], "text": _saved(entry["text"], objects)}
        elif isinstance(entry.get("blob"), mapping.SeriesLines):
            series[path] = {"type": entry["type"], "lines": _saved(entry["blob"], objects),
                            "points": entry["blob"].points}
        else:
            return None
    saved = {"created_at": run.created_at, "attrs": run.attrs, "files": {
        path: {"type": f["type"], "refs": [dataclasses.asdict(r) for r in f["refs"]]}
        for path, f in run.files.items()}, "extra": run.extra, "last_time": run.last_time, "series": series}
    if run.blobs:                     # only a 1.x run has inline files
        saved["blobs"] = [objects.put_bytes(data) for data in run.blobs.values()]
    return saved


def _saved(text: ConsoleText, objects) -> dict:
    """A text so far: the object it is stored as, or none when it took no value at all."""
    if not text.any_value:
        return {"object": None, "size": 0}
    return {"object": text.store(objects), "size": text.size}


def _continued(saved: dict, objects, kind=ConsoleText) -> ConsoleText:
    if saved["object"] is None:
        return kind()
    return kind((objects, saved["object"], saved["size"]))


def objects_named(saved: dict) -> list[str]:
    """The objects the saved run goes on from (its texts, read back when more comes, and inline files;
    gc keeps them as the index's, not the manifest's: the caller checks they are still there)."""
    texts = [entry[kind]["object"] for entry in saved["series"].values() for kind in ("text", "lines")
             if kind in entry and entry[kind]["object"] is not None]
    return texts + list(saved.get("blobs", ()))


def restore(run: mapping.RunData, saved: dict, objects) -> None:
    """Make `run` (a fresh fold's) the saved one."""
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
    run.blobs = {oid: objects.get_bytes(oid) for oid in saved.get("blobs", ())}


def dumps(state: dict) -> bytes:
    """A reader's saved fold (its `v`, this run, its own counts) as the object it is stored as."""
    return json.dumps(state, separators=(",", ":")).encode("utf-8")


def loads(data: bytes, version: int) -> dict | None:
    """A saved fold, or None when it is not one of this `version` (a reader's older or newer form)."""
    try:
        state = json.loads(data)
    except ValueError:
        return None
    return state if isinstance(state, dict) and state.get("v") == version else None

"""neptune 1.x offline/async queues: `.neptune/{offline,async}/run__<uuid>__<pid>__<rand>/data-<N>.log`.

Each line is one JSON operation `{"obj": {"type", "path", ...}, "version", "at"}`.
The logs only grow, so they are kept as segments of SEGMENT_LINES raw lines:
new operations add new segments (and rewrite at most the last one). Uploaded
files are read from the paths the op recorded (the client does not copy them);
missing ones are reported, not fatal. Offline runs have no `sys/id`: the key is
the container UUID, and the project (not recorded either) comes from
`fetch --project`, else NEPTUNE_PROJECT, else DEFAULT_PROJECT (LEGACY_PROJECT in a
mirror that already has runs there: see sources/offline_names.py).
"""
from __future__ import annotations

import base64
import binascii
import glob
import json
import math
import operator
import os
import re
from dataclasses import dataclass
from itertools import chain, compress, islice, repeat
from pathlib import Path

import numpy

from ... import metric_stream
from ...store.objects import ObjectError, hash_bytes
from .. import file_prefix
from ..blob_spool import BlobSpool
from . import acked_logs, float_lines, mapping, null_steps, queue_stamps, v1_resume
from .driver import FoldingReader, RunSource, raw_of, store_file
from .row_spill import RowSpill

ORIGIN = "offline"
NORMALIZER = "neptune-offline/1"
SEGMENT_LINES = 2000
DEFAULT_PROJECT = "neptune-offline/default"   # its own workspace: W&B offline runs are in wandb-offline
LEGACY_PROJECT = "offline/offline"            # what mirrors fetched before gave them
KEYS_UNIQUE = True                            # container UUIDs: a rename can be told (offline_names.py)
RUN_DIR_RE = re.compile(r"^(?P<type>[a-z_]+)__(?P<uuid>[0-9a-fA-F-]{36})(__.*)?$")
LOG_RE = re.compile(r"^data-(\d+)\.log$")
_FILE_OPS = frozenset({"UploadFile", "UploadFileSet", "TrackFilesToArtifact"})
_LOGS = {"LogFloats": "float_series", "LogStrings": "string_series", "LogImages": "image_series"}
_CLEARS = frozenset({"ClearFloatLog", "ClearStringLog", "ClearImageLog"})


def _is_run_dir(d: Path) -> bool:
    return d.is_dir() and RUN_DIR_RE.match(d.name) is not None and any(d.glob("data-*.log"))


def locate(path: Path) -> list[Path]:
    """Container dirs under PATH, PATH/.neptune or PATH/{offline,async} (or PATH itself)."""
    path = Path(path)
    if _is_run_dir(path):
        return [path]
    found = []
    for base in (path, path / "offline", path / "async", path / ".neptune" / "offline",
                 path / ".neptune" / "async"):
        if base.is_dir():
            found += [d for d in sorted(base.iterdir()) if _is_run_dir(d)]
    return found


def project_from_env() -> tuple[str, str]:
    ws, _, proj = (os.environ.get("NEPTUNE_PROJECT") or DEFAULT_PROJECT).partition("/")
    return ws, proj or "default"


def runs(path: Path, notes: list[str], errors: list[str]) -> list[RunSource]:
    ws, proj = project_from_env()
    out = []
    for d in locate(path):
        m = RUN_DIR_RE.match(d.name)
        if m["type"] != "run":
            notes.append(f"{d.name}: a {m['type']} container, not a run; skipped")
            continue
        reader = _RunReader(d, ws, proj, m["uuid"])
        out.append(RunSource(ws, proj, m["uuid"], reader.store, reader.fold))
    return out


# -- storing -----------------------------------------------------------------------------------
def _log_files(run_dir: Path) -> list[Path]:
    logs = [p for p in run_dir.iterdir() if LOG_RE.match(p.name)]
    return sorted(logs, key=lambda p: int(LOG_RE.match(p.name)[1]))


def _image(value, run: mapping.RunData, path: str) -> dict:
    """A LogImages point's value as the client reads one back (a dict, a bare base64 string or
    nothing), its bytes spooled (RunData.images) rather than held. Data that is not base64 is
    counted in the run's extra ("unreadable_images") and kept as no image: the rest of the run stands."""
    if isinstance(value, str):
        value = {"data": value}
    elif not isinstance(value, dict):
        value = {}
    data, image = value.get("data"), None
    if data is not None:
        try:
            image = run.images.put(base64.b64decode(data))
        except (binascii.Error, TypeError, ValueError):
            unreadable = run.extra.setdefault("unreadable_images", {})
            unreadable[path] = unreadable.get(path, 0) + 1
    return {"bytes": image, "name": value.get("name"), "description": value.get("description")}


def _parse(line: bytes):
    try:
        rec = json.loads(line)
        op = rec["obj"]
        if not isinstance(op.get("type"), str) or not isinstance(op.get("path"), list):
            raise ValueError("no type/path")
        return rec
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class _RunReader(FoldingReader):
    """One run folder: `store` reads its op log once, storing the lines and folding
    each operation as it goes, so the fetch's `fold` of the manifest it just stored
    is the one already made: the fetch decodes each line once (the index's stream of
    float points reads the stored segments again, see _float_points, but for a segment whose
    LogFloats ops hold floats alone (or null steps), an `append` or `extend` loop's, other ops
    among them or not: what the store's scan decoded waits in a RowSpill)."""

    def __init__(self, run_dir: Path, ws: str, proj: str, key: str):
        self.run_dir, self.ws, self.proj, self.key = run_dir, ws, proj, key

    def fold_stored(self, mirror, manifest: dict) -> mapping.RunData:
        return fold(mirror, manifest)

    def store(self, mirror, old: dict | None) -> dict:
        run_dir = self.run_dir
        acked = self._acked(mirror, old)           # first logs a syncing client deleted: kept as stored
        as_before = queue_stamps.previous(lambda mirror, old: self._as_before(mirror, old, acked), mirror, old)
        if as_before is not None:
            return as_before
        old_files = (old or {}).get("files", {})
        errors, file_errors, logs = [], [], []
        meta_bytes = (run_dir / "metadata.json").read_bytes() if (run_dir / "metadata.json").exists() else b""
        files, globs, tracked, missing = {}, {}, {}, []

        def new_fold() -> _Fold:
            made = _Fold(self.ws, self.proj, self.key, json.loads(meta_bytes or b"{}"), files, globs, tracked)
            made.run.images = BlobSpool(mirror.objects.tmp)
            return made
        folder = new_fold()
        # the logs as the last fetch left them, when the run only grew since: its fold goes on (v1_resume)
        resumed = queue_stamps.previous(lambda mirror, old: self._resumed(mirror, old, meta_bytes, acked),
                                        mirror, old)
        if resumed is not None:
            try:
                v1_resume.restore(folder, resumed.state, mirror.objects)
            except (KeyError, TypeError, ValueError, AttributeError, ObjectError):
                folder, resumed = new_fold(), None
        if resumed is not None:
            files.update(old["files"])            # each unchanged (_resumed), as store_file would keep it
            errors += resumed.state["errors"]
            file_errors += resumed.state["file_errors"]
        spill = folder.spill = RowSpill(mirror.objects.tmp)

        def keep(recorded: str, actual: Path, attr: str) -> None:
            stored = old_files.get(recorded)
            if actual.is_file():
                files[recorded] = store_file(mirror, actual, stored)
            elif queue_stamps.still_stored(mirror, stored):   # gone since: a syncing client deletes an
                files[recorded] = dict(stored)                  # upload once sent; the mirror keeps its copy
            elif recorded not in missing:
                missing.append(recorded)
                file_errors.append(f"missing file {recorded} (uploaded as {attr})")

        def files_of(op: dict) -> None:
            """Store what a file op names, before the fold reaches it (the fold looks them up)."""
            attr = "/".join(op["path"])
            if op["type"] == "UploadFile":
                if op.get("file_path"):
                    keep(op["file_path"], Path(op["file_path"]), attr)
                elif op.get("tmp_file_name"):
                    rec = f"upload_path/{op['tmp_file_name']}"
                    keep(rec, run_dir / "upload_path" / op["tmp_file_name"], attr)
            elif op["type"] == "UploadFileSet":
                for g in op.get("file_globs") or []:
                    matches = sorted(p for p in glob.glob(g, recursive=True) if os.path.isfile(p))
                    globs[g] = matches
                    if not matches:
                        file_errors.append(f"no file matches {g} (uploaded as {attr})")
                    for p in matches:
                        keep(p, Path(p), attr)
            elif op["type"] == "TrackFilesToArtifact":
                for entry in op.get("entries") or []:
                    tracked[entry[0]] = _listing(entry[0])

        def fold_segment(lines: list[bytes], name: str, count: int, folded: int = 0) -> int:
            """Fold a segment's lines in order (LogFloats lines in the client's shape by
            float_lines.scan, the rest decoded whole), store it; the log's line count after it
            (`count`: before it). `folded`: how many of its first lines a resumed fold took already
            (the segment the last fetch ended in, read again with the lines after them)."""
            data = b"".join(lines)
            if folded:
                if len(lines) < folded:
                    raise OSError(f"{name} is shorter than the last fetch read it")
                lines, count = lines[folded:], count + folded
            scanned = float_lines.scan_whole(b"".join(lines) if folded else data) if lines else []
            if type(scanned) is float_lines.Interleaved and folder.feed_interleaved(scanned):
                count, items = count + len(scanned), ()        # a printing loop's segment, at once
            else:
                scanned = scanned.items() if type(scanned) is float_lines.Interleaved else scanned
                items = scanned or lines
            at = 0                                 # the item's first line in `lines`
            for item in items:
                if at == len(lines):
                    break                          # the empty match after the last newline
                if type(item) is float_lines.Texts:     # a stdout capture's words, as a rule
                    at += len(item)
                    if folder.feed_texts(item):
                        count += len(item)
                        continue
                    todo = zip(item.lines, repeat(None))
                elif type(item) is float_lines.Block:
                    block, at = item, at + len(item)
                    if folder.feed_block(block):
                        count += len(block)
                        continue
                    # one op at a time by feed_float (a many-point op's next step is its last + 1
                    # then, as feed's _next_step gives); a many-point op ending unnumbered decoded whole
                    todo = zip(lines[at - len(block):at], (
                        (path, last, op_at) if last is not None or block.single() else None
                        for path, last, op_at in zip(block.paths, block.lasts, block.ats)))
                else:
                    todo, at = [(lines[at], None)], at + 1
                for line, point in todo:
                    count += 1
                    if point is not None and folder.feed_float(*point):
                        continue
                    fold_line(line, name, count)
            segments.append(mirror.objects.put_bytes(data))
            sizes.append(len(data))
            if folded:
                return count                       # its items are the new lines': the float stream reads it
            kept = float_lines.spillable(scanned) if scanned else None
            # the float stream then takes the points the scan decoded, or else cuts the segment by its
            # layout (no regex)
            if scanned and not (kept is not None and spill.put(segments[-1], *kept)):
                float_lines.remember(segments[-1], scanned)
            return count

        def fold_line(line: bytes, name: str, count: int) -> None:
            """Fold one line decoded whole (the log's line `count`)."""
            rec = _parse(line) if line.strip() else None
            if rec is None and line.strip():
                errors.append(f"{run_dir.name}/{name} line {count}: malformed operation, skipped")
            elif rec is not None:
                if rec["obj"]["type"] in _FILE_OPS:   # only these name files
                    files_of(rec["obj"])
                folder.feed(rec)

        log_end = None                             # where the last log stands, for the saved fold
        for entry in acked:
            if resumed is None:                    # folded again from the segments stored
                segments, sizes, count = [], [], 0
                for seg in entry["segments"]:
                    count = fold_segment(mirror.objects.get_bytes(seg).splitlines(keepends=True),
                                         entry["file"], count)
            logs.append(entry)                     # stamped as the last fetch read it
        for log in _log_files(run_dir):
            if resumed is not None and log.name in resumed.kept:
                logs.append(resumed.kept[log.name])     # stamped as the last fetch read it
                continue
            # a segment at a time: the log is never in memory whole
            segments, sizes, count, folded, lines = [], [], 0, 0, []
            with open(log, "rb") as f:
                log_stamp = queue_stamps.stamp(log)     # before the read: a line written during it moves it
                if resumed is not None and log.name == resumed.file:
                    segments, sizes = list(resumed.segments), list(resumed.sizes)
                    count, folded = resumed.lines_before, resumed.last_lines
                    f.seek(sum(sizes))
                # SEGMENT_LINES lines at a time, taken at C level; only the file's last line can lack
                # its newline: a torn tail (the writer is mid-line) is left for the next fetch to get whole
                while segment := list(islice(f, SEGMENT_LINES)):
                    last = segment[-1]
                    if not last.endswith(b"\n") and (_parse(last) if last.strip() else None) is None:
                        segment.pop()
                    if segment:
                        count, folded, lines = fold_segment(segment, log.name, count, folded), 0, segment
            logs.append({"file": log.name, "lines": count, "segments": segments, **log_stamp})
            log_end = {"file": log.name, "sizes": sizes, "last_lines": len(lines)}
        manifest = {"type": "experiment", "normalizer": NORMALIZER, "source": mapping.SOURCE,
                    "origin": ORIGIN, "workspace": self.ws, "project": self.proj, "key": self.key,
                    "run_dir": run_dir.name, "metadata": mirror.objects.put_bytes(meta_bytes), "logs": logs,
                    "files": files, "globs": globs, "tracked": tracked, "missing": missing,
                    "errors": errors + file_errors,
                    # what the run holds, which a later fetch must not replace with less (sync/shrink.py):
                    # the op logs' lines stored, and the well-formed operations among them
                    "extent": {"lines": sum(log["lines"] for log in logs), "operations": folder.i}}
        saved = None if globs or tracked or missing or log_end is None else \
            v1_resume.encode(folder, mirror.objects, log_end, errors, file_errors)
        if saved is not None:
            manifest["resume"] = mirror.objects.put_bytes(saved)
        self.keep(manifest, folder)
        return manifest

    def _resumed(self, mirror, old: dict, meta_bytes: bytes, acked: list[dict]) -> "_Resume | None":
        """Where to go on from the previous fetch's saved fold (v1_resume) when the run folder only grew
        since: the same run and metadata, no glob, artifact or missing file, each file it uploaded
        unchanged, the logs it read still there and first (but for those `acked`), all but the last
        stamped as then, and the last still beginning with its stored segments' bytes, the last of them
        ending with a whole line; else None (the logs are read whole)."""
        if old.get("normalizer") != NORMALIZER or not old.get("resume") or old.get("globs") \
                or old.get("tracked") or old.get("missing"):
            return None
        if (old["workspace"], old["project"], old["key"], old["run_dir"]) != \
                (self.ws, self.proj, self.key, self.run_dir.name) or hash_bytes(meta_bytes) != old["metadata"]:
            return None
        state = v1_resume.decode(mirror.objects.get_bytes(old["resume"]))
        logs, run_dir = old["logs"], self.run_dir
        if state is None or not logs or state["log"]["file"] != logs[-1]["file"]:
            return None
        there = logs[len(acked):]
        if not there or [log.name for log in _log_files(run_dir)][:len(there)] != [e["file"] for e in there]:
            return None
        *earlier, grown = logs
        if not all(queue_stamps.same(run_dir / entry["file"], entry) for entry in there[:-1]):
            return None
        segments, sizes, last_lines = grown["segments"], state["log"]["sizes"], state["log"]["last_lines"]
        if len(sizes) != len(segments) or \
                grown["lines"] - last_lines != SEGMENT_LINES * max(len(segments) - 1, 0):
            return None                            # segments not cut as a fresh read cuts them
        if not queue_stamps.files_unchanged(mirror, old["files"], self._recorded_path):
            return None
        if not queue_stamps.stored(mirror, chain([old["metadata"]], *(entry["segments"] for entry in logs),
                                                 v1_resume.objects_named(state))):
            return None
        with open(run_dir / grown["file"], "rb") as f:
            if not file_prefix.is_prefix(f, [{"object": seg, "size": n} for seg, n in zip(segments, sizes)]):
                return None
            if segments and os.pread(f.fileno(), 1, sum(sizes) - 1) != b"\n":
                return None                        # its last line may go on: read it whole again
        return _Resume(state, {entry["file"]: entry for entry in earlier}, grown["file"], segments[:-1],
                       sizes[:-1], grown["lines"] - last_lines, last_lines if segments else 0)

    def _as_before(self, mirror, old: dict, acked: list[dict]) -> dict | None:
        """The previous fetch's raw manifest when reading the run folder again would give it (see
        queue_stamps): the same logs but those `acked`, each stamped as then, the same metadata, every
        named file unchanged, none missing and no glob or artifact listing (those are taken at fetch
        time); else None."""
        if old.get("normalizer") != NORMALIZER or old.get("globs") or old.get("tracked") \
                or old.get("missing"):
            return None
        if (old.get("workspace"), old.get("project"), old.get("key"), old.get("run_dir")) != \
                (self.ws, self.proj, self.key, self.run_dir.name):
            return None
        logs, run_dir = old.get("logs") or [], self.run_dir
        there = logs[len(acked):]
        if [log.name for log in _log_files(run_dir)] != [entry["file"] for entry in there]:
            return None
        if not all(queue_stamps.same(run_dir / entry["file"], entry) for entry in there):
            return None
        meta = run_dir / "metadata.json"
        if hash_bytes(meta.read_bytes() if meta.exists() else b"") != old.get("metadata"):
            return None
        if not queue_stamps.files_unchanged(mirror, old.get("files") or {}, self._recorded_path):
            return None
        saved = [old["resume"]] if "resume" in old else []
        if not queue_stamps.stored(mirror, chain([old["metadata"]], saved, *(entry["segments"] for entry in logs))):
            return None
        return raw_of(old)

    def _acked(self, mirror, old: dict | None) -> list[dict]:
        """The previous manifest's logs that a syncing client deleted and the mirror keeps (acked_logs);
        none when that manifest is another folder's or one the check cannot read."""
        return queue_stamps.previous(
            lambda mirror, old: acked_logs.kept(mirror, old.get("logs") or [], _log_files(self.run_dir))
            if old.get("run_dir") == self.run_dir.name else [], mirror, old) or []

    def _recorded_path(self, recorded: str) -> Path:
        """Where a file the manifest names by its recorded path is (files_of's naming)."""
        return self.run_dir / recorded if recorded.startswith("upload_path/") else Path(recorded)


@dataclass
class _Resume:
    """Where a fetch goes on from the last one's saved fold: the logs it keeps as they were, and the one
    it reads again from its last segment (the segments and sizes before it kept, and its lines counted)."""
    state: dict
    kept: dict[str, dict]
    file: str
    segments: list[str]
    sizes: list[int]
    lines_before: int
    last_lines: int


def _listing(location: str) -> list[dict]:
    """What a TrackFilesToArtifact entry names: tracked (not uploaded) files, with their sizes."""
    p = Path(location)
    if p.is_file():
        return [{"path": p.name, "size": p.stat().st_size, "link": location}]
    if p.is_dir():
        return [{"path": f.relative_to(p).as_posix(), "size": f.stat().st_size, "link": str(f)}
                for f in sorted(p.rglob("*")) if f.is_file()]
    return [{"path": location.rsplit("/", 1)[-1], "size": None, "link": location}]


# -- folding -------------------------------------------------------------------------------------
def iter_ops(mirror, manifest: dict):
    for log in manifest["logs"]:
        for seg in log["segments"]:
            for line in mirror.objects.get_bytes(seg).splitlines():
                rec = _parse(line) if line.strip() else None
                if rec is not None:
                    yield rec


def _file_set_names(paths: list[str]) -> dict[str, str]:
    """Names inside a file set: paths relative to the matched files' common folder."""
    if not paths:
        return {}
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    return {p: os.path.relpath(p, root).replace(os.sep, "/") for p in paths}


def fold(mirror, manifest: dict) -> mapping.RunData:
    """The run from its stored objects (reindex; a fetch folds while it stores)."""
    meta = json.loads(mirror.objects.get_bytes(manifest["metadata"]) or b"{}")
    folder = _Fold(manifest["workspace"], manifest["project"], manifest["key"], meta,
                   manifest.get("files", {}), manifest.get("globs", {}), manifest.get("tracked", {}))
    folder.run.images = BlobSpool(mirror.objects.tmp)
    for rec in iter_ops(mirror, manifest):
        folder.feed(rec)
    return folder.finish(mirror, manifest)


class _Fold:
    """The first pass over a run's operations, one at a time, in log order.

    `files`, `globs` and `tracked` are the manifest's (the store fills them as it
    meets the ops that name them, before feeding those ops here).
    """

    def __init__(self, ws: str, proj: str, key: str, meta: dict, files: dict, globs: dict, tracked: dict):
        self.run = run = mapping.RunData(workspace=ws, project=proj, key=key,
                                         created_at=mapping.to_ms(meta.get("createdAt")))
        run.extra["neptune_offline"] = {k: meta.get(k) for k in ("mode", "containerType",
                                                                "neptuneClientVersion", "structureVersion")}
        self.files, self.globs, self.tracked = files, globs, tracked
        self.sets: dict[str, set] = {}
        self.next_step: dict[str, float] = {}
        self.types: dict[str, str] = {}          # path -> the kind of its series since its last clear
        self.float_from: dict[str, int] = {}     # float series path -> the op its points start at
        self.i = 0                               # the op's number among the well-formed ones
        self.spill: RowSpill | None = None       # the store's decoded rows, when it made this fold

    def finish(self, mirror, manifest: dict) -> mapping.RunData:
        if self.float_from:
            self.run.float_points = _FloatPoints(mirror, manifest, self.float_from, self.spill)
        return self.run

    def feed_float(self, path: str, step, at) -> bool:
        """feed() of a LogFloats op from its path, last step and op time (float_lines.scan): exact for
        one point, and for many when the last is numbered (the next step is then the last + 1); False,
        having changed nothing, when the path holds a series of another kind (feed it whole)."""
        kind = self.types.get(path)
        if kind is None:             # a series takes the kind of its first point
            self.types[path] = "float_series"
            self.float_from[path] = self.i
        elif kind != "float_series":
            return False
        self.i += 1
        self.run.seen(mapping.to_ms(at))
        self.next_step[path] = (self.next_step.get(path, 0) if step is None else step) + 1
        return True

    def feed_block(self, block: float_lines.Block) -> bool:
        """feed() of each line of a Block of float_lines.scan at once; False, having changed nothing,
        unless every path already holds a float series, every op time is a finite float, and no step
        is None, or every op holds one point, or the points are float rows (NaN for a None step): then
        the per-line feed_float (or feed) gives the same state, or fails as it would."""
        if not self._takes_block(block):
            return False
        self._fed_block(block)
        return True

    def feed_texts(self, texts: float_lines.Texts) -> bool:
        """feed() of each line of a Texts at once; False, having changed nothing, unless every path
        already holds a console text (stdout, stderr: only the values count there), every op time is a
        finite float and every step None, numbered from a whole next step (the per-line feed then gives
        the same state)."""
        if not self._takes_texts(texts):
            return False
        self._fed_texts(texts)
        return True

    def feed_interleaved(self, both: float_lines.Interleaved) -> bool:
        """feed_block of its float lines and feed_texts of its text lines, each at once: what feeding its
        runs in order gives when each is taken, for each feed changes only its own paths' state (no path
        is among both), the op count and the latest time. False, having changed nothing, unless both
        are taken (then its runs are fed one by one)."""
        if not (self._takes_block(both.block) and self._takes_texts(both.texts, whole_after=True)):
            return False
        self._fed_block(both.block)
        self._fed_texts(both.texts)
        return True

    def _takes_block(self, block: float_lines.Block) -> bool:
        types, ats = self.types, block.ats
        if not _finite_times(ats):
            return False
        if not (block.numbered or block.single() or block.array is not None):
            return False
        kinds = set(map(types.get, set(block.paths)))
        if kinds == {"float_series"}:
            return True
        # a path with no series yet becomes a float series at its first op, as feed makes it (each op has a point)
        return kinds <= {"float_series", None} and \
            (block.single() or block.ends is not None and all(map(operator.lt, [0] + block.ends, block.ends)))

    def _fed_block(self, block: float_lines.Block) -> None:
        paths, next_step, types = block.paths, self.next_step, self.types
        if not types.keys() >= set(paths):     # series that begin here (a run's first segment), at their first op
            for k, path in enumerate(paths):
                if path not in types:
                    types[path] = "float_series"
                    self.float_from[path] = self.i + k
        if block.numbered:           # each path's last step in the block + 1
            next_step.update(zip(paths, map(operator.add, block.lasts, repeat(1))))
        elif block.single():         # op by op, as feed_float numbers a null step (a loop of few steps)
            for path, step in zip(paths, block.lasts):
                next_step[path] = (next_step.get(path, 0) if step is None else step) + 1
        else:                        # ops of many points, a null step NaN in their rows: as feed numbers them
            steps, a = float_lines.nulls(block.array[:, 1].tolist()), 0
            for path, b in zip(paths, block.ends):
                next_step[path] = _next_step_of(steps[a:b], next_step.get(path, 0))
                a = b
        self.i += len(paths)
        self.run.seen(mapping.to_ms(max(block.ats)))          # to_ms keeps order: the latest of the ops'

    def _takes_texts(self, texts: float_lines.Texts, whole_after: bool = False) -> bool:
        """Whether feed_texts takes it; `whole_after`: and each path's next step after it is whole too
        (then so is every one between, where the texts of a run one by one would each ask)."""
        paths, ats, series, next_step = texts.paths, texts.ats, self.run.series, self.next_step
        if not _finite_times(ats):
            return False
        if texts.steps.count(None) != len(paths):
            return False
        for path in set(paths):
            if self.types.get(path) != "string_series" or "text" not in series.get(path, ()):
                return False
            start = next_step.get(path, 0)
            if not null_steps.whole(start) or whole_after and not null_steps.whole(start + paths.count(path)):
                return False
        return True

    def _fed_texts(self, texts: float_lines.Texts) -> None:
        paths, series, next_step = texts.paths, self.run.series, self.next_step
        own = {path: paths.count(path) for path in set(paths)}
        self.i += len(paths)
        self.run.seen(mapping.to_ms(max(texts.ats)))
        for path, n in own.items():
            next_step[path] = next_step.get(path, 0) + n
            series[path]["text"].extend(texts.values if len(own) == 1 else
                                        compress(texts.values, map(path.__eq__, paths)))

    def feed(self, rec: dict) -> None:
        i, self.i = self.i, self.i + 1
        run, files, globs = self.run, self.files, self.globs
        sets, next_step, types, float_from = self.sets, self.next_step, self.types, self.float_from
        op, t = rec["obj"], rec["obj"]["type"]
        path = "/".join(op["path"])
        run.seen(mapping.to_ms(rec.get("at")))
        if t.startswith("Assign") and t != "AssignArtifact":
            kind = t[len("Assign"):].lower()
            run.attrs[path] = (kind, op.get("value"))
        elif t in ("AddStrings", "RemoveStrings", "ClearStringSet"):
            s = sets.setdefault(path, set())
            if t == "AddStrings":
                s.update(op.get("values") or [])
            elif t == "RemoveStrings":
                s.difference_update(op.get("values") or [])
            else:
                s.clear()
            run.attrs[path] = ("string_set", sorted(s))
        elif t in _LOGS:
            values = op.get("values") or []
            if values and path not in types:     # a series takes the kind of its first point
                types[path] = _LOGS[t]
                if types[path] == "float_series":
                    float_from[path] = i
            if types.get(path) == "float_series":   # streamed by _float_points: only the numbering here
                next_step[path] = _next_step(values, next_step.get(path, 0))
                return
            for v in values:
                # no step: the server numbers points in order, last step + 1 (from 0)
                step = v.get("step")
                if step is None:
                    step = next_step.get(path, 0)
                next_step[path] = step + 1
                value = v.get("value")
                if t == "LogImages":
                    value = _image(value, run, path)
                run.add_point(path, types[path], step, mapping.to_ms(v.get("ts")), value)
        elif t in _CLEARS:
            run.series.pop(path, None)
            next_step.pop(path, None)
            types.pop(path, None)
            float_from.pop(path, None)
        elif t == "ConfigFloatSeries":
            run.extra.setdefault("series_config", {})[path] = {k: op.get(k) for k in ("min", "max", "unit")}
        elif t == "UploadFile":
            recorded = op.get("file_path") or f"upload_path/{op.get('tmp_file_name')}"
            e = files.get(recorded)
            run.files[path] = {"type": "file", "refs": [mapping.FileRef(
                "", e and e["object_id"], e and e["size"], ext=op.get("ext") or None,
                missing=None if e else recorded)]}
        elif t == "UploadFileContent":
            data = base64.b64decode(op.get("file_content") or "")
            oid = mapping.hash_bytes(data)
            run.blobs[oid] = data
            run.files[path] = {"type": "file", "refs": [mapping.FileRef("", oid, len(data),
                                                                        ext=op.get("ext") or None)]}
        elif t == "UploadFileSet":
            entry = run.files.setdefault(path, {"type": "file_set", "refs": []})
            if op.get("reset") not in (False, "False"):
                entry["refs"] = []
            matched = [p for g in op.get("file_globs") or [] for p in globs.get(g, [])]
            names = _file_set_names(matched)
            have = {r.name for r in entry["refs"]}
            for p in matched:
                if p in files and names[p] not in have:
                    entry["refs"].append(mapping.FileRef(names[p], files[p]["object_id"], files[p]["size"]))
                    have.add(names[p])
        elif t == "DeleteFiles":
            gone = set(op.get("file_paths") or [])
            if path in run.files:
                run.files[path]["refs"] = [r for r in run.files[path]["refs"] if r.name not in gone]
        elif t == "TrackFilesToArtifact":
            listing = run.artifacts.setdefault(path, [])
            for location, dest in op.get("entries") or []:
                for f in self.tracked.get(location, []):
                    name = f"{dest.rstrip('/')}/{f['path']}" if dest else f["path"]
                    listing.append({"path": name, "size": f["size"], "link": f["link"]})
        elif t == "AssignArtifact":
            run.extra.setdefault("artifact_hashes", {})[path] = op.get("hash")
        elif t == "ClearArtifact":
            run.artifacts.pop(path, None)
        elif t == "DeleteAttribute":
            for d in (run.attrs, run.series, run.files, run.artifacts, types, float_from):
                d.pop(path, None)
        else:
            unhandled = run.extra.setdefault("unhandled_ops", {})
            unhandled[t] = unhandled.get(t, 0) + 1


def _finite_times(ats: list) -> bool:
    """Whether every op time is a finite float and the latest one is a time in ms (to_ms of it is not None:
    the fold, taking the ops at once, takes the latest time of them alone)."""
    return set(map(type, ats)) == {float} and all(map(math.isfinite, ats)) and math.isfinite(max(ats) * 1000)


def _next_step(values: list, step):
    """The number the server gives the point after `values` (each unnumbered one is the last + 1)."""
    for back, v in enumerate(reversed(values)):
        if v.get("step") is not None:
            return v["step"] + back + 1
    return step + len(values)


_POINT = operator.itemgetter("step", "ts", "value")
FLUSH_POINTS = 16_384      # points gathered before their columns are converted (many ops' worth)


def _stamps_ms(stamps: list) -> list:
    """Epoch ms of the ops' point times (epoch seconds as floats), in bulk when all are floats."""
    if stamps and set(map(type, stamps)) == {float}:
        with numpy.errstate(over="ignore"):     # an overflow is not finite: the per-time path below
            ms = numpy.array(stamps, dtype=numpy.float64) * 1000
        if numpy.isfinite(ms).all():     # rint of the same double product: int(round(t * 1000)), half to even
            return numpy.rint(ms).astype(numpy.int64).tolist()
    return list(map(mapping.to_ms, stamps))     # a NaN or infinite time: None (unknown)


@dataclass
class _Start:
    """Where a grown run's float stream starts: the first line after the fold the index holds the
    points of (`log`, `segment` and `head`, the bytes of that segment before it), with that fold's
    next steps of the float series and its op count."""
    log: int
    segment: int
    head: int
    next_step: dict
    ops: int


class _FloatPoints:
    """The run's float points as the index streams them (_float_points): all of them, or a grown
    run's from a _Start on (`since`)."""

    def __init__(self, mirror, manifest: dict, float_from: dict[str, int], spill: RowSpill | None,
                 start: _Start | None = None):
        self.mirror, self.manifest, self.float_from, self.spill, self.start = \
            mirror, manifest, float_from, spill, start

    def __call__(self):
        return _float_points(self.mirror, self.manifest, self.float_from, self.spill, self.start)

    def since(self, start: _Start) -> "_FloatPoints":
        return _FloatPoints(self.mirror, self.manifest, self.float_from, self.spill, start)


def grown_since(mirror, manifest: dict, indexed: dict) -> _Start | None:
    """Where the float points the index lacks begin, when the run only grew since `indexed` (the
    manifest whose rows the index holds): the same run, the same logs with the same segments but the
    last log's last, which the new one's begins with, a saved fold at the end of both (v1_resume), and
    each float series the old fold had starting where it started (no clear or delete since: the old
    rows stand as they are), any other starting after it. None otherwise (index it whole). A float
    point depends on its op and on the numbering of its series' null steps before it, which the saved
    fold's next steps carry on."""
    same = ("normalizer", "workspace", "project", "key", "run_dir")
    if any(indexed.get(k) != manifest.get(k) for k in same) or not indexed.get("resume") \
            or not manifest.get("resume"):
        return None
    old_logs, new_logs = indexed["logs"], manifest["logs"]
    b = len(old_logs) - 1
    if b < 0 or len(new_logs) <= b or \
            [(e["file"], e["segments"]) for e in new_logs[:b]] != [(e["file"], e["segments"]) for e in old_logs[:b]]:
        return None
    old_segments, new_segments = old_logs[b]["segments"], new_logs[b]["segments"]
    k = max(len(old_segments) - 1, 0)
    if new_logs[b]["file"] != old_logs[b]["file"] or new_segments[:k] != old_segments[:k]:
        return None
    head = 0
    if old_segments:
        boundary = mirror.objects.get_bytes(old_segments[-1])
        if len(new_segments) <= k or not mirror.objects.get_bytes(new_segments[k]).startswith(boundary):
            return None
        head = len(boundary)
    was = v1_resume.decode(mirror.objects.get_bytes(indexed["resume"]))
    now = v1_resume.decode(mirror.objects.get_bytes(manifest["resume"]))
    if was is None or now is None:
        return None
    old_from, new_from, ops = was["float_from"], now["float_from"], was["i"]
    if any(new_from.get(path) != start for path, start in old_from.items()) or \
            any(start < ops for path, start in new_from.items() if path not in old_from):
        return None
    steps = was["next_step"]
    return _Start(b, k, head, {path: steps[path] for path in new_from if path in steps}, ops)


def _float_points(mirror, manifest: dict, float_from: dict[str, int], spill: RowSpill | None = None,
                  start: _Start | None = None):
    """The float series' points, read again from the op log: the second of the two passes.

    `fold` (the first) found each float series' first op after its last clear; the
    points from there on are numbered as fold numbers them and handed out in batches.
    Runs of LogFloats lines in the client's own shape come as column Blocks from
    float_lines.read (one regex and one json decode of their tokens per segment), taken
    whole when every point is simply kept; every other line is decoded whole, as the
    fold decodes it. The points gathered go on as NumPy columns (_Gathered.flush); a Block
    of float rows (float_lines.Block.array) goes so without a Python object per point.
    A segment whose rows the store's scan kept (`spill`: a fetch's first read) is not read again.
    `start`: a grown run's points from there on only.
    """
    try:
        yield from _stream(mirror, manifest, float_from, spill, start)
    finally:
        if spill is not None:
            spill.close()       # a second read (rare) reads the store


def _segments_from(manifest: dict, start: _Start | None):
    """(segment, the bytes of it to skip) of each segment to read, in log order, from `start` on."""
    for li, log in enumerate(manifest["logs"]):
        for si, seg in enumerate(log["segments"]):
            if start is None or (li, si) > (start.log, start.segment):
                yield seg, 0
            elif (li, si) == (start.log, start.segment):
                yield seg, start.head


def _stream(mirror, manifest: dict, float_from: dict[str, int], spill: RowSpill | None, start: _Start | None):
    next_step: dict[str, float] = {} if start is None else dict(start.next_step)
    got = _Gathered()
    i = -1 if start is None else start.ops - 1     # the op's number among the well-formed ones, as fold counts

    def op(path, steps, stamps, vals) -> None:
        """One LogFloats op's points (the op numbered i), kept unless before its series' start."""
        start = float_from.get(path)
        if start is None:
            return
        step = next_step.get(path, 0)
        next_step[path] = _next_step_of(steps, step)
        if i < start:                    # before the last clear or delete: numbered, not kept
            return
        if None in steps:                # unnumbered points: the last step + 1
            steps = list(steps)
            for k, given in enumerate(steps):
                steps[k] = step = step if given is None else given
                step = step + 1
        got.ops([path], [len(steps)])
        got.steps.extend(steps)
        got.stamps.extend(stamps)
        got.values.extend(vals)

    for seg, head in _segments_from(manifest, start):
        kept = spill.take(seg) if spill is not None and not head else None
        whole = _spilled_whole(kept, float_from, i + 1, next_step) if kept is not None else None
        if whole is not None:        # the segment's one-point ops as one Block kept whole
            counted, paths, rows, after = whole
            if got.rows is None and got.size:
                yield from got.flush()
            i += counted
            got.ops(paths, None)
            got.add_rows(rows)
            next_step.update(after)
            if got.size >= FLUSH_POINTS:
                yield from got.flush()
            continue
        items = (float_lines.spilled(*kept) if kept is not None else
                 float_lines.read(mirror.objects.get_bytes(seg)[head:]) if head else
                 float_lines.read_stored(mirror.objects.get_bytes(seg), seg))
        for item in items:           # not bound: a segment's items go with it
            if type(item) is float_lines.Texts:
                for path, step in zip(item.paths, item.steps):
                    i += 1                   # a text op: it numbers a float series it is sent to
                    if path in float_from:
                        next_step[path] = (next_step.get(path, 0) if step is None else step) + 1
                continue
            if type(item) is float_lines.Block:
                taken = _taken_whole(item, float_from, i + 1, next_step)
                if taken is not None:        # the whole run at once
                    rows, after = taken
                    i += len(item)
                    if (rows is None) != (got.rows is None) and got.size:
                        yield from got.flush()             # a flush holds rows or lists, not both
                    got.ops(item.paths, None if item.single() else
                            list(map(operator.sub, item.ends, [0] + item.ends)))
                    if rows is not None:
                        got.add_rows(rows)
                    else:
                        got.steps += item.steps
                        got.stamps += item.stamps
                        got.values += item.values
                    next_step.update(after)
                else:
                    if got.rows is not None:
                        yield from got.flush()
                    for path, _, steps, stamps, vals in item.ops():
                        i += 1
                        op(path, steps, stamps, vals)
            else:
                rec = _parse(item) if item.strip() else None
                if rec is None:
                    continue
                i += 1
                o = rec["obj"]
                t = o["type"]
                path = "/".join(o["path"]) if t in _LOGS or t in _CLEARS else None
                if path not in float_from:
                    pass                           # no float point: the rows gathered go on
                elif t in _CLEARS:
                    next_step.pop(path, None)
                elif t != "LogFloats":     # text or images sent to a float series: numbered, not kept
                    next_step[path] = _next_step(o.get("values") or [], next_step.get(path, 0))
                else:
                    if got.rows is not None:       # its points go as lists
                        yield from got.flush()
                    values = o.get("values") or []
                    try:      # the client writes every key of a point: take whole columns at C level
                        columns = map(list, zip(*map(_POINT, values))) if values else ([], [], [])
                    except (KeyError, TypeError):
                        columns = ([v.get(k) for v in values] for k in ("step", "ts", "value"))
                    op(path, *columns)
            if got.size >= FLUSH_POINTS:
                yield from got.flush()
    yield from got.flush()
    yield from got.rest()


def _spilled_whole(kept: tuple, float_from: dict[str, int], first: int, next_step: dict) -> tuple | None:
    """(ops counted, op paths, point rows, each path's next step after them) of a spilled segment of
    one-point ops whose every point is kept, numbered (null_steps, from `next_step`) where its step is
    null, taken as one Block: its other lines and text ops (a printed word every few ops) only count
    as ops, since none touches a float series. None for any other segment (it goes Block by Block, as
    `read` gives it). `first`: the number the segment's first op would take."""
    paths, rows, ends, _layout, lines, text_paths = kept
    if ends is not None or not paths:
        return None
    if max(map(float_from.get, set(paths), repeat(first + 1))) > first:
        return None                      # a series that starts in the segment, or is not streamed
    if not float_from.keys().isdisjoint(text_paths):
        return None
    if numpy.isnan(rows[:, 1]).any():
        numbered = null_steps.number(paths, rows[:, 1], next_step)
        if numbered is None:
            return None
        rows = rows.copy()
        rows[:, 1], after = numbered
    else:
        after = dict(zip(paths, map(operator.add, rows[:, 1].tolist(), repeat(1))))
    counted = len(text_paths)
    for line in lines:
        rec = _parse(line) if line.strip() else None
        if rec is None:
            continue                     # not an op (as the fold counts)
        counted += 1
        op = rec["obj"]
        t = op["type"]
        if (t in _LOGS or t in _CLEARS) and "/".join(op["path"]) in float_from:
            return None                  # it numbers or clears a float series between the points
    return counted + len(paths), paths, rows, after


class _Gathered:
    """The points gathered over many ops, as lists: each op's series (a code) and count of points,
    and the points' steps, times (epoch seconds) and values as json gave them. `flush` converts
    them at once: to NumPy columns (metric_stream.ArrayBatches) when every step, time and value is a
    plain number the array holds as FloatBatches would convert it, else to FloatBatches' lists; a
    batch of one kind is handed out before a point of the other is taken (the order is kept)."""

    def __init__(self):
        self.codes: dict[str, int] = {}
        self.arrays, self.lists = metric_stream.ArrayBatches(), mapping.FloatBatches()
        self._clear()

    def _clear(self) -> None:
        self.op_codes, self.op_counts, self.steps, self.stamps, self.values = [], [], [], [], []
        self.rows = None         # or the points as float64 (value, step, ts) row arrays (no lists then)
        self._rows_size = 0      # their count, kept as they come: a segment may hand on many small arrays
        self.single = True       # every op so far of one point: no counts kept

    @property
    def size(self) -> int:
        """The points gathered."""
        return len(self.steps) if self.rows is None else self._rows_size

    def add_rows(self, rows) -> None:
        """The points of the ops just given to `ops`, as a float64 array of (value, step, ts) rows
        (none gathered as lists)."""
        if self.rows is None:
            self.rows = []
        self.rows.append(rows)
        self._rows_size += len(rows)

    def ops(self, paths: list, counts: list | None) -> None:
        """Ops of these series, with these counts of points (None: one point each)."""
        codes = list(map(self.codes.get, paths))
        if None in codes:
            codes = [self.codes.setdefault(p, len(self.codes)) for p in paths]
        if counts is not None and self.single:
            self.single = False
            self.op_counts = [1] * len(self.op_codes)
        self.op_codes += codes
        if not self.single:
            self.op_counts += [1] * len(codes) if counts is None else counts

    def flush(self):
        if self.rows is not None:
            rows = numpy.concatenate(self.rows) if len(self.rows) > 1 else self.rows[0]
            columns = _row_arrays(rows)
            if columns is None:         # not all as the arrays hold them: the lists, as json gave them
                self.values, self.steps, self.stamps = (rows[:, k].tolist() for k in range(3))
        elif not self.steps:
            return
        else:
            columns = _point_arrays(self.steps, self.stamps, self.values)
        names = list(self.codes)
        if columns is not None:
            yield from self.lists.rest()
            codes = numpy.array(self.op_codes, numpy.int32)
            if not self.single:
                codes = numpy.repeat(codes, self.op_counts)
            self.arrays.add(names, codes, *columns)
            while self.arrays.full():
                yield self.arrays.take()
        else:
            yield from self.arrays.rest()
            points = self.op_codes if self.single else \
                chain.from_iterable(map(repeat, self.op_codes, self.op_counts))
            if self.lists.extend(list(map(names.__getitem__, points)), self.steps, _stamps_ms(self.stamps),
                                 self.values):
                while self.lists.full():
                    yield self.lists.take()
        self._clear()

    def rest(self):
        yield from self.arrays.rest()
        yield from self.lists.rest()


_INT64_FLOOR_BOUND = float(1 << 63)


def _point_arrays(steps: list, stamps: list, values: list):
    """(steps, times in ms, values) as NumPy columns, each as FloatBatches and _stamps_ms convert it,
    or None when some entry is not a plain number so converted (a null, an int value or time, a step
    or time not finite, a step past int64): those go as lists. An int step is the same either way:
    FloatBatches keeps one a double holds exactly, and floors the double of any other."""
    if set(map(type, values)) != {float} or set(map(type, stamps)) != {float}:
        return None
    if not set(map(type, steps)) <= {int, float}:
        return None
    try:      # every step as FloatBatches gives it: an int a double holds as it is, else math.floor(float(s))
        floats = numpy.array(steps, numpy.float64)
    except OverflowError:
        return None
    if not (numpy.isfinite(floats).all() and (numpy.abs(floats) < _INT64_FLOOR_BOUND).all()):
        return None
    step_column = numpy.floor(floats).astype(numpy.int64)
    with numpy.errstate(over="ignore"):
        ms = numpy.array(stamps, numpy.float64) * 1000
    if not numpy.isfinite(ms).all():
        return None
    return step_column, numpy.rint(ms).astype(numpy.int64), numpy.array(values, numpy.float64)


def _row_arrays(rows):
    """_point_arrays of points all floats, given as (value, step, ts) rows: the same columns, or None."""
    steps = rows[:, 1]
    if not (numpy.isfinite(steps).all() and (numpy.abs(steps) < _INT64_FLOOR_BOUND).all()):
        return None
    with numpy.errstate(over="ignore"):
        ms = rows[:, 2] * 1000
    if not numpy.isfinite(ms).all():
        return None
    return numpy.floor(steps).astype(numpy.int64), numpy.rint(ms).astype(numpy.int64), \
        numpy.ascontiguousarray(rows[:, 0])


def _taken_whole(block: float_lines.Block, float_from: dict[str, int], first: int, next_step: dict):
    """(rows, each path's next step after the Block) when every point of a Block (its first op numbered
    `first`) is kept: each path's float series starts at or before the block, and no step is None or
    every null step of its float rows is numbered (null_steps, from `next_step`: the rule numbers an
    op's points as it numbers one-point ops); rows are those (None: the Block's lists are taken). None
    for a Block to take op by op."""
    if not all(float_from.get(path, first + 1) <= first for path in set(block.paths)) and \
            not _kept_from_first_op(block.paths, float_from, first):
        return None
    if block.numbered:
        return block.array, {path: step + 1 for path, step in zip(block.paths, block.lasts)}
    if block.array is None:
        return None
    # the op-by-op rule numbers an op's points as ops of one each
    counts = None if block.single() else list(map(operator.sub, block.ends, [0] + block.ends))
    numbered = null_steps.number(block.paths, block.array[:, 1], next_step, counts)
    if numbered is None:
        return None
    rows = block.array.copy()
    rows[:, 1], after = numbered
    return rows, after


def _kept_from_first_op(paths: list, float_from: dict[str, int], first: int) -> bool:
    """Whether each op path's float series starts at or before its first op among these (numbered from
    `first`): a series that begins among them (a run's first segment) keeps every point of theirs, as
    none of them clears it."""
    met = set()
    for k, path in enumerate(paths):
        if path not in met:
            met.add(path)
            start = float_from.get(path)
            if start is None or start > first + k:
                return False
    return True


def _next_step_of(steps: list, step):
    """_next_step over an op's steps (None where a point has none)."""
    for back, given in enumerate(reversed(steps)):
        if given is not None:
            return given + back + 1
    return step + len(steps)

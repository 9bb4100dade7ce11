"""neptune-scale offline queues: `.neptune/<project>_<run_id>_<ns>/run_operations.sqlite3`.

`run_operations` rows hold protobuf `Run` (operation_type 1, CREATE_RUN) or
`UpdateRunSnapshot` (0) messages. They are kept as segments of SEGMENT_OPS
operations by sequence id ([seq, timestamp ms, type, base64 blob] rows as
canonical JSON), so new operations only add segments. Files named in
`file_upload_requests` are read from their source paths.
"""
from __future__ import annotations

import binascii
import gc
import json
import sqlite3
from bisect import bisect_right
from contextlib import closing, contextmanager
from itertools import chain, groupby, repeat
from operator import itemgetter
from pathlib import Path

from ... import metric_stream
from ...store.objects import ObjectError
from ..bare_import import import_bare
from . import mapping, queue_stamps, scale_resume
from .driver import FoldingReader, RunSource, store_file
from .scale_floats import SimpleOps

ORIGIN = "scale-offline"
NORMALIZER = "neptune-scale/1"
DB_NAME = "run_operations.sqlite3"
SEGMENT_OPS = 1000
CREATE_RUN, UPDATE_SNAPSHOT = 1, 0


def locate(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file() and path.name == DB_NAME:
        return [path]
    found = []
    for base in (path, path / ".neptune"):
        if (base / DB_NAME).is_file():
            found.append(base / DB_NAME)
        if base.is_dir():
            found += sorted(d / DB_NAME for d in base.iterdir() if (d / DB_NAME).is_file())
    return sorted(set(found))


def _connect(db: Path):
    """A read-only connection (the client may still be writing to it), closed when the `with` ends: an
    open one would keep the client's write-ahead log from being checkpointed."""
    return closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True))


def runs(path: Path, notes: list[str], errors: list[str]) -> list[RunSource]:
    out = []
    for db in locate(path):
        try:
            with _connect(db) as con:
                version, project, run_id = con.execute(
                    "SELECT version, project, run_id FROM metadata ORDER BY id LIMIT 1").fetchone()
        except (sqlite3.Error, TypeError) as e:
            errors.append(f"{db.parent.name}/{db.name}: not a readable neptune-scale queue ({e})")
            continue
        ws, _, proj = project.partition("/")
        reader = _QueueReader(db, version, project, run_id)
        out.append(RunSource(ws, proj or "default", run_id, reader.store, reader.fold))
    return out


def _proto_folder() -> dict[str, str]:
    """neptune_api.proto's `__init__` picks the folder of its generated code by protobuf's major
    version, asking importlib.metadata (about 3 % of a short run's fetch to import): the same pick,
    from protobuf's own version string."""
    from google.protobuf import __version__
    return {"proto": "proto/protobuf_v3" if __version__.startswith("3.") else "proto/protobuf_v4plus"}


_PARSERS: dict[bool, object] = {}     # is CREATE_RUN -> its class's FromString, filled on first use


def _decode(typ: int, blob: bytes):
    if not _PARSERS:      # once, when needed
        common_pb2 = import_bare("neptune_api", "proto.neptune_pb.ingest.v1.common_pb2", folders=_proto_folder())
        _PARSERS.update({True: common_pb2.Run.FromString, False: common_pb2.UpdateRunSnapshot.FromString})
    return _PARSERS[typ == CREATE_RUN](blob)


@contextmanager
def _no_collection():
    """Pause the cyclic garbage collector while one segment is read. A segment makes a thousand short-lived
    containers (SQLite's row tuples, json's lists), which free themselves by reference count, but while
    they live they count toward the collector's thresholds and set off collections that walk the whole
    heap, which the index's batches make large (about a sixth of a 10^7-point fetch's CPU). Nothing here
    makes a reference cycle; the collector's state is restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _put_rows(mirror, rows: list[list]) -> str:
    """A segment's [seq, ts, type, base64] rows as canonical JSON (the same bytes as mirror.put_json,
    without canonical's walk over every value: plain ints and ASCII text need no cleaning)."""
    try:
        data = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:       # a non-finite float timestamp: canonical's own form
        return mirror.put_json(rows)
    return mirror.objects.put_bytes(data.encode("utf-8"))


class _QueueReader(FoldingReader):
    """One queue: `store` decodes each operation once, to validate it and to fold it (the fetch's `fold`
    of the manifest it just stored is that one), so a fetch decodes an operation twice: there, and when
    the index streams the float points from the stored segments (_float_points)."""

    def __init__(self, db: Path, version: str, project: str, run_id: str):
        self.db, self.version, self.project, self.run_id = db, version, project, run_id

    def fold_stored(self, mirror, manifest: dict) -> mapping.RunData:
        return fold(mirror, manifest)

    def store(self, mirror, old: dict | None) -> dict:
        db = self.db
        old_files = (old or {}).get("files", {})
        file_errors, files, missing = [], {}, []
        ws, proj, _ = self._names()
        with _connect(db) as con:
            uploads = [list(r) for r in con.execute(
                "SELECT source_path, destination, mime_type, size_bytes, is_temporary "
                "FROM file_upload_requests ORDER BY id")]
            for source, dest, _mime, _size, _tmp in uploads:   # before the fold: it looks the files up
                if Path(source).is_file():
                    files[dest] = store_file(mirror, Path(source), old_files.get(dest))
                else:
                    missing.append(source)
                    file_errors.append(f"missing file {source} (for {dest})")
            folder = _Fold(ws, proj, self.run_id, files)
            resumed = self._resumed(mirror, old, con, folder, uploads, missing) if old else None
            # (operations folded, their bytes, the last one's sequence id), the segments stored, the
            # operations found malformed: so far, where the last fold ended
            tally, segments, errors = resumed or ([0, 0, None], [], [])
            # in sequence order, a segment of the operations whose seq // SEGMENT_OPS is one number (the
            # floor division spelled in SQL, which truncates), grouped with no Python call per row; a
            # grown queue from the segment its last fold ended in
            rows = con.execute(
                "SELECT sequence_id, timestamp, operation_type, operation, "
                f"(sequence_id - (sequence_id % {SEGMENT_OPS} + {SEGMENT_OPS}) % {SEGMENT_OPS}) / {SEGMENT_OPS} "
                "FROM run_operations WHERE sequence_id >= ? ORDER BY sequence_id",
                [_segment_start(tally[2]) if resumed else -(1 << 63)])
            for _key, segment in groupby(rows, itemgetter(4)):
                with _no_collection():
                    segments.append(self._put_segment(mirror, folder, list(segment), errors, tally))
            op_errors = [list(r) for r in con.execute(
                "SELECT timestamp, error_type, error_details, sequence_id FROM operation_errors "
                "ORDER BY error_id")]
        ops, nbytes, last_seq = tally
        saved = None if last_seq is None else \
            scale_resume.encode(folder, mirror.objects, last_seq=last_seq, ops=ops, nbytes=nbytes, errors=errors)
        manifest = {"type": "experiment", "normalizer": NORMALIZER, "source": mapping.SOURCE, "origin": ORIGIN,
                    "workspace": ws, "project": proj,
                    "key": self.run_id, "queue": f"{db.parent.name}/{db.name}", "queue_version": self.version,
                    "segments": segments,
                    "uploads": uploads, "operation_errors": op_errors, "files": files, "missing": missing,
                    "errors": errors + file_errors,
                    # what the queue holds, which a later fetch must not replace with less (sync/shrink.py):
                    # the client deletes operations once synced, or the queue may be a new one
                    "extent": {"operations": ops}}
        if saved is not None:
            manifest["resume"] = mirror.objects.put_bytes(saved)
        self.keep(manifest, folder)
        return manifest

    def _resumed(self, mirror, old: dict, con, folder: "_Fold", uploads: list, missing: list):
        """(tally, the segments kept, the errors found in them) of the previous fetch's saved fold when
        the queue only grew since (scale_resume), `folder` made that fold; else None (folded whole)."""
        try:
            if old.get("normalizer") != NORMALIZER or not old.get("resume") or \
                    (old["workspace"], old["project"], old["key"], old["queue"]) != \
                    (*self._names(), f"{self.db.parent.name}/{self.db.name}") or \
                    (old["uploads"], old["files"], old["missing"]) != (uploads, folder.files, missing):
                return None
            state = scale_resume.decode(mirror.objects.get_bytes(old["resume"]))
            kept = old["segments"][:-1]          # the last holds the last folded operation: read again
            if state is None or not old["segments"] or \
                    not queue_stamps.stored(mirror, kept + scale_resume.texts(state)):
                return None
            last = state["last_seq"]
            counted = con.execute("SELECT count(*), coalesce(sum(length(operation)), 0) FROM run_operations "
                                  "WHERE sequence_id <= ?", [last]).fetchone()
            if list(counted) != [state["ops"], state["bytes"]]:
                return None                      # rewritten, or synced away: not the queue folded
            scale_resume.restore(folder, state, mirror.objects)
            return [state["ops"], state["bytes"], last], list(kept), list(state["errors"])
        except (KeyError, TypeError, ValueError, AttributeError, ObjectError, sqlite3.Error):
            return None

    def _names(self) -> tuple[str, str, str]:
        """(workspace, project, key) of the run."""
        ws, _, proj = self.project.partition("/")
        return ws, proj or "default", self.run_id

    def _put_segment(self, mirror, folder: "_Fold", rows: list[tuple], errors: list[str], tally: list) -> str:
        """Fold a segment's operations after the last one folded (tally: the count, bytes and last
        sequence id of those folded, kept up), then store them all as [seq, ts, type, base64] rows."""
        seqs, stamps, types, blobs, _key = zip(*rows)
        first = 0 if tally[2] is None else bisect_right(seqs, tally[2])
        for i in folder.feed_segment(stamps[first:], types[first:], blobs[first:]):
            errors.append(f"{self.db.parent.name}/{self.db.name} operation {seqs[first + i]}: "
                          "malformed protobuf, skipped")
        if first < len(seqs):
            tally[0] += len(seqs) - first
            tally[1] += sum(map(len, blobs[first:]))
            tally[2] = seqs[-1]
        # one base64 text per operation, each as b2a_base64 writes it, cut from one joined text
        texts = b"".join(map(binascii.b2a_base64, blobs)).decode("ascii").split("\n")[:-1]
        if {int} == set(map(type, seqs)) | set(map(type, stamps)) | set(map(type, types)):
            # plain ints and base64 (nothing to escape): the canonical JSON text, written directly
            data = "[" + ",".join(map('[{},{},{},"{}"]'.format, seqs, stamps, types, texts)) + "]"
            return mirror.objects.put_bytes(data.encode("ascii"))
        return _put_rows(mirror, list(map(list, zip(seqs, stamps, types, texts))))


def _segment_start(seq: int) -> int:
    """The first sequence id of the segment holding `seq` (SEGMENT_OPS ids a segment)."""
    return seq // SEGMENT_OPS * SEGMENT_OPS


# -- folding ------------------------------------------------------------------------------------
def _ts_ms(ts) -> int | None:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def _value(v) -> tuple[str, object] | None:
    which = v.WhichOneof("value")
    if which == "float64":
        return "float", v.float64
    if which == "int64":
        return "int", v.int64
    if which == "bool":
        return "bool", v.bool
    if which == "string":
        return "string", v.string
    if which == "timestamp":
        return "datetime", _ts_ms(v.timestamp)
    if which == "string_set":
        return "string_set", sorted(v.string_set.values)
    if which == "file_ref":
        return "file", {"path": v.file_ref.path, "size": v.file_ref.size_bytes, "mime": v.file_ref.mime_type}
    if which == "histogram":
        h = v.histogram
        kind = h.WhichOneof("values") if h.DESCRIPTOR.oneofs else None
        values = list(h.densities.values) if kind == "densities" else list(h.counts.values)
        return "histogram", {"type": kind or "counts", "edges": list(h.bin_edges), "values": values}
    return None


def _step(step) -> int | float:
    s = step.whole + step.micro / 1_000_000
    return int(s) if step.micro == 0 else s


def _file_ref(files: dict, ref: dict, step=None, ts=None) -> mapping.FileRef:
    e = files.get(ref["path"])
    name = ref["path"].rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1] if "." in name else None
    return mapping.FileRef(name if step is not None else "", e and e["object_id"],
                           e["size"] if e else ref.get("size"), step=step, ext=ext, timestamp=ts,
                           missing=None if e else ref["path"])


_SERIES = {"float": "float_series", "int": "float_series", "string": "string_series",
           "histogram": "histogram_series"}


def _blobs(rows: list[list]) -> tuple[list[bytes], list[bool]]:
    """A stored segment's operations as bytes, and which are updates to read (not CREATE_RUN, and
    decodable: a text that is not base64 is left out, as at fetch time)."""
    try:
        blobs = list(map(binascii.a2b_base64, [r[3] for r in rows]))
        return blobs, [r[2] != CREATE_RUN for r in rows]
    except (ValueError, TypeError):
        blobs, eligible = [], []
        for r in rows:
            try:
                blobs.append(binascii.a2b_base64(r[3]))
                eligible.append(r[2] != CREATE_RUN)
            except (ValueError, TypeError):
                blobs.append(b"")
                eligible.append(None)      # not an operation at all
        return blobs, eligible


class _FloatPoints:
    """A run's float_points: the points of its float series in these stored segments, in batches, of
    the operations after sequence id `after` (None: all); `since` narrows them to a grown queue's."""

    def __init__(self, mirror, segments: list[str], floats: set[str], after: int | None = None):
        self.mirror, self.segments, self.floats, self.after = mirror, segments, floats, after

    def __call__(self):
        return _float_points(self.mirror, self.segments, self.floats, self.after)

    def since(self, start: tuple[int, int]) -> "_FloatPoints":
        """From grown_since's (first segment, last sequence id indexed) on."""
        first, after = start
        return _FloatPoints(self.mirror, self.segments[first:], self.floats, after)


def _float_points(mirror, segments: list[str], floats: set[str], after: int | None = None):
    """The float series' points, decoded again from the stored operations, a segment at a time: the
    simple operations of a segment (scale_floats.SimpleOps.read_many) come as NumPy columns, with no
    Python object per point, into batches of arrays the index inserts as they are; any other
    operation is read one at a time as before, its points as lists. Points keep their order: a
    batch of one kind is handed out before a point of the other is taken."""
    arrays, lists = metric_stream.ArrayBatches(), mapping.FloatBatches()
    simple = SimpleOps()
    for seg in segments:
        with _no_collection():      # not across a yield: the index runs between
            pieces = _segment_points(mirror, seg, simple, floats, after)
        for piece in pieces:
            if len(piece) == 5:     # names, codes, steps, times, values: arrays
                yield from lists.rest()
                arrays.add(*piece)
                while arrays.full():
                    yield arrays.take()
            else:
                yield from arrays.rest()
                lists.extend(*piece)
                while lists.full():
                    yield lists.take()
    yield from arrays.rest()
    yield from lists.rest()


def _segment_points(mirror, seg: str, simple: SimpleOps, floats: set[str], after: int | None = None) -> list[tuple]:
    """One stored segment's float points, in order: runs of simple operations as arrays (names,
    codes, steps, times, values), the other operations' points as lists (names, steps, times, values);
    of the operations after sequence id `after`, if given."""
    import numpy as np
    pieces, names, steps, stamps, values = [], [], [], [], []
    rows = mirror.get_json(seg)
    if after is not None:
        rows = [r for r in rows if r[0] > after]
    blobs, eligible = _blobs(rows)
    for first, stop, layout, op_steps, ms, op_values in simple.read_many(blobs, eligible, arrays=True):
        if layout is not None and floats.issuperset(layout.names):
            if 0 in ms:                                  # as _ts_ms(...) or row_ts
                ms = [t or r[1] for t, r in zip(ms.tolist(), rows[first:stop])]
                if None in ms:
                    names, steps, stamps, values = _flush(pieces, names, steps, stamps, values)
                    _simple_lists(layout, op_steps, ms, op_values, names, steps, stamps, values)
                    continue
                ms = np.array(ms, np.int64)
            names, steps, stamps, values = _flush(pieces, names, steps, stamps, values)
            n = len(layout.names)
            whole = op_steps if op_steps.dtype == np.int64 else np.floor(op_steps).astype(np.int64)  # int_step
            pieces.append((layout.names, np.tile(np.arange(n, dtype=np.int32), stop - first),
                           np.repeat(whole, n), np.repeat(ms, n), op_values))
            continue
        for i in range(first, stop):
            if eligible[i] is not None and rows[i][2] != CREATE_RUN:
                _op_points(simple, floats, rows[i][1], rows[i][2], blobs[i], names, steps, stamps, values)
    _flush(pieces, names, steps, stamps, values)
    return pieces


def _flush(pieces: list, names: list, steps: list, stamps: list, values: list) -> tuple[list, list, list, list]:
    """The list points gathered so far as a piece (if any); fresh lists for the next."""
    if names:
        pieces.append((names, steps, stamps, values))
        return [], [], [], []
    return names, steps, stamps, values


def _simple_lists(layout, op_steps, ms: list, op_values, names, steps, stamps, values) -> None:
    """A run of simple operations' points as lists: some have no time at all."""
    n = len(layout.names)
    names += layout.names * len(ms)
    steps += chain.from_iterable(map(repeat, op_steps.tolist(), repeat(n)))
    stamps += chain.from_iterable(map(repeat, ms, repeat(n)))
    values += op_values.tolist()


def _op_points(simple, floats, row_ts, typ, blob, names, steps, stamps, values) -> None:
    """One operation's float points, appended to the columns (the path of any operation)."""
    got = simple.read(blob)
    if got is not None and floats.issuperset(got[1]):
        msg, known, op_values = got
        n, t = len(known), msg.timestamp
        names += known
        steps += [_step(msg.step)] * n
        stamps += [t.seconds * 1000 + t.nanos // 1_000_000 or row_ts] * n    # as _ts_ms(...) or row_ts
        values += op_values
        return
    try:
        msg = _decode(typ, blob)
    except Exception:
        return
    if not msg.append or (msg.HasField("preview") and msg.preview.is_preview):
        return
    ts, step = _ts_ms(msg.timestamp) or row_ts, _step(msg.step)
    for path, v in sorted(msg.append.items()):
        if path not in floats:
            continue
        kv = _value(v)
        if kv is None or kv[0] not in _SERIES:     # a file goes to the files, as in fold
            continue
        names.append(path)
        steps.append(step)
        stamps.append(ts)
        values.append(kv[1])


def grown_since(mirror, manifest: dict, indexed: dict) -> tuple[int, int] | None:
    """(the first segment of `manifest` to read points from, the last sequence id the index holds the
    points of) when the queue only grew since `indexed` (the manifest whose rows the index holds): the
    same run and queue, the same segments but the last, which the new one's begins with, and a saved
    fold at the end of the old one; None otherwise (index it whole). A float point depends on its own
    operation alone (its step and time are in it) and on the kind of its series, which its first point
    set, so the old points' rows stay as they are."""
    same = ("normalizer", "workspace", "project", "key", "queue")
    old, new = indexed.get("segments") or [], manifest.get("segments") or []
    if any(indexed.get(k) != manifest.get(k) for k in same) or not old or len(new) < len(old) \
            or new[:len(old) - 1] != old[:-1] or not indexed.get("resume"):
        return None
    state = scale_resume.decode(mirror.objects.get_bytes(indexed["resume"]))
    boundary = mirror.get_json(old[-1])
    if state is None or mirror.get_json(new[len(old) - 1])[:len(boundary)] != boundary:
        return None
    return len(old) - 1, state["last_seq"]


def fold(mirror, manifest: dict) -> mapping.RunData:
    """The run from its stored objects (reindex; a fetch folds while it stores)."""
    folder = _Fold(manifest["workspace"], manifest["project"], manifest["key"], manifest.get("files", {}))
    for seg in manifest["segments"]:
        rows = mirror.get_json(seg)
        blobs, eligible = _blobs(rows)
        kept = [i for i, e in enumerate(eligible) if e is not None]   # not base64: reported at fetch time
        if len(kept) < len(rows):
            rows, blobs = [rows[i] for i in kept], [blobs[i] for i in kept]
        folder.feed_segment([r[1] for r in rows], [r[2] for r in rows], blobs)
    return folder.finish(mirror, manifest)


class _Fold:
    """The first pass over a queue's operations, one decoded message at a time, in sequence order."""

    def __init__(self, ws: str, proj: str, key: str, files: dict):
        self.run = mapping.RunData(workspace=ws, project=proj, key=key)
        self.files = files
        self.sets: dict[str, set] = {}
        self.types: dict[str, str] = {}     # series path -> the kind of its first point (as add_point keeps it)
        self.float_paths: set[str] = set()  # the paths in types that are float series
        self.previews = 0
        self.simple, self.known = SimpleOps(), None

    def feed_segment(self, stamps, types, blobs) -> list[int]:
        """Fold a segment's operations in order; the indexes of those that are not readable protobuf.
        A run of simple operations of float series already known (SimpleOps.read_many) leaves only
        its latest time to fold."""
        bad = []
        for first, stop, layout, _steps, ms, _values in self.simple.read_many(
                blobs, [t != CREATE_RUN for t in types], points=False):
            i = first
            if layout is not None:
                while i < stop and not self.float_paths.issuperset(layout.names):
                    self.feed_blob(stamps[i], types[i], blobs[i])    # simple, so readable
                    i += 1
                times = ms[i - first:]
                if 0 in times:                       # as _ts_ms(...) or row_ts
                    times = [t for t in (t or r for t, r in zip(times, stamps[i:stop])) if t is not None]
                if times:
                    self.run.seen(max(times))
                continue
            for j in range(first, stop):
                if not self.feed_blob(stamps[j], types[j], blobs[j]):
                    bad.append(j)
        return bad

    def feed_blob(self, row_ts, typ: int, blob: bytes) -> bool:
        """Fold one stored operation; False when it is not a readable protobuf. A simple operation
        (scale_floats) of float series already known leaves nothing to fold but its time."""
        if typ != CREATE_RUN:
            got = self.simple.read(blob)
            if got is not None and (got[1] is self.known or self.float_paths.issuperset(got[1])):
                self.known, t = got[1], got[0].timestamp
                self.run.seen(t.seconds * 1000 + t.nanos // 1_000_000 or row_ts)    # as _ts_ms(...) or row_ts
                return True
        try:
            msg = _decode(typ, blob)
        except Exception:
            return False
        self.feed(row_ts, typ, msg)
        return True

    def feed(self, row_ts, typ: int, msg) -> None:
        run, files, sets, types = self.run, self.files, self.sets, self.types
        if typ == CREATE_RUN:
            run.created_at = _ts_ms(msg.creation_time) or row_ts
            if msg.experiment_id:
                run.attrs["sys/name"] = ("string", msg.experiment_id)
            run.extra["family"] = msg.family or None
            if msg.HasField("fork_point"):
                fp = msg.fork_point
                run.extra["fork"] = {"parent_project": fp.parent_project, "parent_run_id": fp.parent_run_id,
                                     "step": _step(fp.step)}
            return
        ts = _ts_ms(msg.timestamp) or row_ts
        run.seen(ts)
        for path, v in sorted(msg.assign.items()):
            kv = _value(v)
            if kv is None:
                continue
            if kv[0] == "file":
                run.files[path] = {"type": "file", "refs": [_file_ref(files, kv[1], ts=ts)]}
            else:
                run.attrs[path] = kv
        for path, mod in sorted(msg.modify_sets.items()):
            s = sets.setdefault(path, set(run.attrs.get(path, ("", []))[1] or []))
            for value, action in sorted(mod.string.values.items()):
                if action == 1:
                    s.add(value)
                elif action == 2:
                    s.discard(value)
            run.attrs[path] = ("string_set", sorted(s))
        if msg.append and msg.HasField("preview") and msg.preview.is_preview:
            self.previews += len(msg.append)   # superseded by the final point
            return
        step = _step(msg.step)
        for path, v in sorted(msg.append.items()):
            if types.get(path) == "float_series" and v.WhichOneof("value") in ("float64", "int64"):
                continue                       # streamed by _float_points: nothing to keep here
            kv = _value(v)
            if kv is None:
                continue
            kind, value = kv
            if kind == "file":
                run.add_file(path, "file_series", _file_ref(files, value, step=step, ts=ts))
            else:
                series = _SERIES.get(kind)
                if series and types.setdefault(path, series) != "float_series":   # floats: streamed
                    run.add_point(path, series, step, ts, float(value) if series == "float_series" else value)
                elif series:
                    self.float_paths.add(path)

    def finish(self, mirror, manifest: dict) -> mapping.RunData:
        run = self.run
        floats = set(self.float_paths)
        if floats:
            run.float_points = _FloatPoints(mirror, manifest["segments"], floats)
        if self.previews:
            run.extra["preview_points_skipped"] = self.previews
        if manifest.get("operation_errors"):
            run.extra["operation_errors"] = len(manifest["operation_errors"])
        return run

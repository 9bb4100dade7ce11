"""neptune-exporter output: `<data>/<project dir>/<run>_part_<n>.parquet` + `<files>/<project dir>/...`.

A run is complete once `<run>_part_0.parquet` exists (the exporter renames
part 0 last); runs without it are skipped with a note and picked up by a later
fetch. Each part's rows are re-encoded in chunks of CHUNK_ROWS (exporter_chunks:
never the parquet bytes, pyarrow writes its version into the footer), so an
unchanged part always yields the same objects.
"""
from __future__ import annotations

import json
import re
import struct
from decimal import Decimal
from itertools import repeat
from pathlib import Path

from ... import metric_stream
from ...store.objects import ObjectError
from . import exporter_chunks, exporter_resume, mapping, queue_stamps
from .driver import FoldingReader, RunSource, rel, store_file

ORIGIN = "exporter"
NORMALIZER = "neptune-exporter/1"
CHUNK_ROWS = 50_000
PART_RE = re.compile(r"^(?P<run>.+)_part_(?P<n>\d+)\.parquet$")
FILE_TYPES = ("file", "file_series", "file_set", "artifact")


# -- layout ------------------------------------------------------------------------
def _has_parts(d: Path) -> bool:
    return d.is_dir() and any(PART_RE.match(p.name) for p in d.iterdir() if p.is_file())


def locate(path: Path) -> tuple[list[Path], Path] | None:
    """(project dirs, files root) when `path` holds exporter output, else None.

    Accepts the export root (with data/ and files/), the data root, or one project dir.
    """
    path = Path(path)
    candidates = [(path / "data", path / "files"), (path, path.parent / "files")]
    for data_root, files_root in candidates:
        if data_root.is_dir():
            projects = sorted(d for d in data_root.iterdir() if _has_parts(d))
            if projects:
                return projects, files_root
    if _has_parts(path):
        return [path], path.parent.parent / "files"
    return None


def _run_parts(project_dir: Path) -> dict[str, list[tuple[int, Path]]]:
    runs: dict[str, list[tuple[int, Path]]] = {}
    for p in project_dir.iterdir():
        m = PART_RE.match(p.name)
        if m and p.is_file():
            runs.setdefault(m["run"], []).append((int(m["n"]), p))
    return {k: sorted(v) for k, v in runs.items()}


def _identity(parts: list[tuple[int, Path]]) -> tuple[str, str]:
    """(project_id, run_id) from the first readable part."""
    import pyarrow.parquet as pq       # pyarrow (and pandas with it) only where parquet is read

    last_error = None
    for _, p in parts:
        try:
            # the first row only: a row group can hold a million rows (the exporter writes up to 1Mi)
            first = next(pq.ParquetFile(p).iter_batches(batch_size=1, columns=["project_id", "run_id"]), None)
            if first is not None and first.num_rows:
                return first.column(0)[0].as_py(), first.column(1)[0].as_py()
        except Exception as e:   # truncated or not parquet
            last_error = f"{p.parent.name}/{p.name}: unreadable parquet part ({_short(e)})"
    raise ValueError(last_error or f"{parts[0][1].parent.name}: run has no rows")


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def split_project(project_id: str) -> tuple[str, str]:
    ws, _, proj = project_id.partition("/")
    return (ws, proj) if proj else ("neptune", ws)


# -- encoding ------------------------------------------------------------------------
ENCODE = exporter_chunks.encode      # the form new chunks are stored in (tests write the older one too)


def _chunk(mirror, chunk_id: str) -> exporter_chunks.Chunk:
    data = mirror.objects.get_bytes(chunk_id)
    try:
        return exporter_chunks.Chunk(data)
    except (ValueError, KeyError, TypeError, struct.error):
        raise ObjectError(f"object {chunk_id} is not an exporter chunk") from None


def _encode_part(mirror, path: Path, summaries: dict | None = None) -> dict:
    """A part's chunks, a record batch of CHUNK_ROWS at a time (every column: the chunk is the raw copy);
    `summaries` gets each chunk of float points' _float_summary, by chunk id."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    chunks, rows, file_paths = [], 0, set()
    try:
        for batch in pf.iter_batches(batch_size=CHUNK_ROWS):
            chunks.append(mirror.objects.put_bytes(ENCODE(batch)))
            if summaries is not None:
                summary = _float_summary(pa, pc, batch)
                if summary is not None:
                    summaries[chunks[-1]] = summary
            rows += batch.num_rows
            if "file_value" in batch.schema.names:
                recorded = pc.struct_field(batch.column("file_value"), "path").drop_null().unique()
                file_paths.update(p for p in recorded.to_pylist() if p)
    finally:
        pf.close()
        # pyarrow's allocator keeps what a row group's pages took: give it back between parts
        pa.default_memory_pool().release_unused()
    return {"rows": rows, "chunks": chunks, "file_paths": sorted(file_paths)}


def _store_files(mirror, files_root: Path, project_dir: str, recorded: list[str],
                 old_files: dict) -> tuple[dict, list[str]]:
    files, missing = {}, []
    for rp in recorded:
        base = next((b for b in (files_root / project_dir / rp, files_root / rp) if b.exists()), None)
        if base is None:
            missing.append(rp)
            continue
        targets = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for f in targets:
            key = rp if f == base else f"{rp}/{rel(f, base)}"
            files[key] = store_file(mirror, f, old_files.get(key))
    return files, missing


def runs(path: Path, notes: list[str], errors: list[str]) -> list[RunSource]:
    found = locate(path)
    if not found:
        return []
    project_dirs, files_root = found
    out = []
    for project_dir in project_dirs:
        for prefix, parts in sorted(_run_parts(project_dir).items()):
            if parts[0][0] != 0:
                notes.append(f"{project_dir.name}/{prefix}: unfinished export (no part_0), skipped")
                continue
            try:
                project_id, run_id = _identity(parts)
            except ValueError as e:
                errors.append(str(e))
                continue
            ws, proj = split_project(project_id)
            reader = _PartsReader(project_dir, prefix, files_root, project_id, run_id)
            out.append(RunSource(ws, proj, run_id, reader.store, reader.fold))
    return out


def _float_summary(pa, pc, batch) -> tuple[list, int | None] | None:
    """What fold takes from a chunk of float points only (its paths, its latest time), from the arrow
    columns at C level; None for any other chunk (fold reads those rows from the stored chunk)."""
    names = batch.schema.names
    if "attribute_type" not in names or "attribute_path" not in names or \
            pc.unique(batch.column("attribute_type")).to_pylist() != ["float_series"]:
        return None
    latest = None
    if "timestamp" in names:
        ts = batch.column("timestamp")
        if pa.types.is_timestamp(ts.type):
            ts = pc.cast(ts, pa.int64())         # epoch ms, as the chunks store it
        elif not pa.types.is_integer(ts.type):
            return None
        latest = pc.max(ts).as_py()
    return pc.unique(batch.column("attribute_path")).to_pylist(), latest


class _KeptFold:
    """The fold of a manifest this fetch stored: made already (`folded`: the run and its series' kinds,
    when the store saved it), or to make with its chunks of float points already summarized."""

    def __init__(self, summaries: dict, folded: tuple | None = None):
        self.summaries, self.folded = summaries, folded
        self.run = folded[0] if folded else mapping.RunData(workspace="", project="", key="")

    def finish(self, mirror, manifest: dict) -> mapping.RunData:
        if self.folded is None:
            return fold(mirror, manifest, self.summaries)
        return _finished(mirror, manifest, *self.folded)


class _PartsReader(FoldingReader):
    """One run's parts: `store` encodes them and keeps what fold needs of each chunk of float points,
    so the fetch's fold decodes only the chunks that hold anything else."""

    def __init__(self, project_dir: Path, prefix: str, files_root: Path, project_id: str, run_id: str):
        self.store = _storer(project_dir, prefix, files_root, project_id, run_id, self.keep)

    def fold_stored(self, mirror, manifest: dict) -> mapping.RunData:
        return fold(mirror, manifest)


def _storer(project_dir: Path, prefix: str, files_root: Path, project_id: str, run_id: str, keep=None):
    def store(mirror, old: dict | None) -> dict:
        summaries: dict = {}
        manifest = _store(mirror, old, summaries)
        folded = None
        if old and all(old.get(k) == manifest[k] for k in ("normalizer", "parts", "files", "missing")):
            if old.get("resume"):          # the fold of the same parts and files: the one saved then
                manifest["resume"] = old["resume"]
        else:           # folded now, to be saved: from the last fold when the run only gained parts
            folded = _fold(mirror, manifest, summaries, _resumed(mirror, old, manifest) if old else None)
            saved = exporter_resume.encode(*folded, len(manifest["parts"]), mirror.objects)
            if saved is not None:
                manifest["resume"] = mirror.objects.put_bytes(saved)
        if keep is not None:
            keep(manifest, _KeptFold(summaries, folded))
        return manifest

    def _store(mirror, old: dict | None, summaries: dict) -> dict:
        old = old or {}
        old_parts = {p["file"]: p for p in old.get("parts", [])}
        parts, errors, recorded = [], [], set()
        for n, p in _run_parts(project_dir).get(prefix, []):
            st = p.stat()
            prev = old_parts.get(p.name)
            if prev and prev.get("size") == st.st_size and prev.get("mtime_ns") == st.st_mtime_ns \
                    and all(mirror.objects.exists(c) for c in prev.get("chunks", [])):
                entry = prev
            else:
                try:
                    entry = {"file": p.name, "part": n, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                             **_encode_part(mirror, p, summaries)}
                except Exception as e:   # truncated part: name it, keep the readable ones
                    errors.append(f"{project_dir.name}/{p.name}: unreadable parquet part ({_short(e)})")
                    continue
            parts.append(entry)
            recorded.update(entry["file_paths"])
        files, missing = _store_files(mirror, files_root, project_dir.name, sorted(recorded),
                                      old.get("files", {}))
        errors += [f"missing file {project_dir.name}/{m}" for m in missing]
        ws, proj = split_project(project_id)
        return {"type": "experiment", "normalizer": NORMALIZER, "source": mapping.SOURCE, "origin": ORIGIN,
                "workspace": ws, "project": proj, "project_id": project_id, "key": run_id,
                "project_dir": project_dir.name, "run_prefix": prefix, "parts": parts, "files": files,
                "missing": missing, "errors": errors,
                # what the run holds, which a later fetch must not replace with less (sync/shrink.py)
                "extent": {"rows": sum(part["rows"] for part in parts)}}
    return store


def _resumed(mirror, old: dict, manifest: dict) -> tuple | None:
    """(the saved state, how many parts it folded) of the previous fetch's saved fold when the run only
    gained parts since (exporter_resume), else None."""
    def check(mirror, old):
        same = ("normalizer", "workspace", "project", "project_id", "key", "project_dir", "run_prefix")
        if any(old.get(k) != manifest.get(k) for k in same) or not old.get("resume"):
            return None
        folded = exporter_resume.parts_grown(old, manifest)
        if folded is None or not exporter_resume.files_kept(old, manifest):
            return None
        state = exporter_resume.decode(mirror.objects.get_bytes(old["resume"]))
        if state is None or state["parts"] != folded or \
                not queue_stamps.stored(mirror, exporter_resume.objects_named(state)):
            return None
        return state, folded
    return queue_stamps.previous(check, mirror, old)


# -- folding ------------------------------------------------------------------------------
def _step(s: str | None):
    if s is None:
        return None
    if s.endswith(".000000"):     # the exporter's quantized whole steps: the common case, kept fast
        return int(s[:-7])
    d = Decimal(s)
    return int(d) if d == d.to_integral_value() else float(d)


def _steps(texts: list) -> list:
    """_step of each: the exporter's quantized whole steps (the common case) without a call per point."""
    try:
        if all(map(str.endswith, texts, repeat(".000000"))):
            return [int(s[:-7]) for s in texts]
    except TypeError:       # a step that is None
        pass
    return list(map(_step, texts))


def _float(v):
    return float(v) if isinstance(v, str) else v   # canonical JSON keeps NaN/inf as strings


FIELDS = ("attribute_path", "attribute_type", "step", "timestamp", "int_value", "float_value", "string_value",
          "bool_value", "datetime_value", "string_set_value", "file_value", "histogram_value")


def iter_chunks(mirror, manifest: dict):
    """Each stored chunk's columns in FIELDS order (a list of None for a column it lacks), parts in order."""
    for part in sorted(manifest["parts"], key=lambda p: p["part"]):
        for chunk in part["chunks"]:
            yield _chunk(mirror, chunk).columns(FIELDS)


def iter_rows(mirror, manifest: dict):
    """Rows as tuples in FIELDS order, parts in order."""
    for columns in iter_chunks(mirror, manifest):
        yield from zip(*columns)


def _summarized_chunk(run: mapping.RunData, types: dict, paths: list, latest) -> bool:
    """_float_chunk of a chunk of float points from its summary (its paths in order, its latest time)."""
    for path in paths:
        types.setdefault(path, "float_series")
    if any(types[p] != "float_series" for p in paths):
        return False
    if latest is not None:
        run.seen(latest)
    return True


def _float_chunk(run: mapping.RunData, types: dict, columns: list) -> bool:
    """Fold a chunk of float points only in bulk (what the row loop does to each: the latest time, the
    series kind); False when the chunk holds anything else."""
    paths, kinds, stamps = columns[0], columns[1], columns[3]
    if set(kinds) != {"float_series"}:
        return False
    for path in dict.fromkeys(paths):
        types.setdefault(path, "float_series")
    if any(types[p] != "float_series" for p in set(paths)):
        return False                 # a series that began as another kind: the row loop maps it
    known = [t for t in stamps if t is not None]
    if known:
        run.seen(max(known))
    return True


def fold(mirror, manifest: dict, summaries: dict | None = None) -> mapping.RunData:
    """The run from its stored chunks; a chunk in `summaries` (this fetch's store made it) is not read."""
    return _finished(mirror, manifest, *_fold(mirror, manifest, summaries))


def _fold(mirror, manifest: dict, summaries: dict | None = None, resumed: tuple | None = None) -> tuple:
    """(the run, its series' kinds) from the stored chunks: of every part, or of those after the ones a
    saved fold took (`resumed`: its state and how many parts)."""
    def new_run() -> mapping.RunData:
        return mapping.RunData(workspace=manifest["workspace"], project=manifest["project"], key=manifest["key"])
    run, files = new_run(), manifest.get("files", {})
    types: dict[str, str] = {}     # series path -> the kind of its first point (as add_point keeps it)
    parts = sorted(manifest["parts"], key=lambda p: p["part"])
    if resumed is not None:
        state, folded = resumed
        try:
            types, parts = exporter_resume.restore(run, state, mirror.objects), parts[folded:]
        except (KeyError, TypeError, ValueError, AttributeError, ObjectError):
            run = new_run()            # a saved fold it cannot restore: every part folded
    summaries = summaries or {}
    for part in parts:
        for chunk in part["chunks"]:
            _fold_chunk(mirror, run, files, types, chunk, summaries.get(chunk))
    return run, types


def _fold_chunk(mirror, run: mapping.RunData, files: dict, types: dict, chunk: str, summary) -> None:
    """Fold one stored chunk: from its summary when it holds float points only (not read), else its rows."""
    if summary is not None and _summarized_chunk(run, types, *summary):
        return
    columns = _chunk(mirror, chunk).columns(FIELDS)
    if not _float_chunk(run, types, columns):
        _fold_rows(mirror, run, files, types, columns)


def _finished(mirror, manifest: dict, run: mapping.RunData, types: dict) -> mapping.RunData:
    """The run, its float series to stream from the stored chunks."""
    floats = {path for path, kind in types.items() if kind == "float_series"}
    if floats:
        run.float_points = _FloatPoints(mirror, manifest, floats)
    return run


class _FloatPoints:
    """The run's float points as the index streams them (_float_points): all of them, or those of the
    parts after the first `first` (`since`: a run the index holds up to those)."""

    def __init__(self, mirror, manifest: dict, floats: set[str], first: int = 0):
        self.mirror, self.manifest, self.floats, self.first = mirror, manifest, floats, first

    def __call__(self):
        return _float_points(self.mirror, self.manifest, self.floats, self.first)

    def since(self, first: int) -> "_FloatPoints":
        return _FloatPoints(self.mirror, self.manifest, self.floats, first)


def grown_since(mirror, manifest: dict, indexed: dict) -> int | None:
    """How many parts' points the index holds, when the run only gained parts since `indexed` (the
    manifest whose rows the index holds): the same run, its parts first and unchanged, a saved fold of
    both. A float point depends on its own row and on its series' kind, which the series' first row set,
    so the old points' rows stay as they are. None otherwise (index it whole)."""
    same = ("normalizer", "workspace", "project", "project_id", "key", "project_dir", "run_prefix")
    if any(indexed.get(k) != manifest.get(k) for k in same) or not indexed.get("resume") \
            or not manifest.get("resume"):
        return None
    folded = exporter_resume.parts_grown(indexed, manifest)
    if folded is None:
        return None
    was = exporter_resume.decode(mirror.objects.get_bytes(indexed["resume"]))
    now = exporter_resume.decode(mirror.objects.get_bytes(manifest["resume"]))
    if was is None or now is None or was["parts"] != folded or \
            any(now["types"].get(path) != kind for path, kind in was["types"].items()):
        return None
    return folded


def _fold_rows(mirror, run: mapping.RunData, files: dict, types: dict, columns: list) -> None:
    for (path, kind, step, ts, int_v, float_v, string_v, bool_v, datetime_v, set_v, file_v,
         hist_v) in zip(*columns):
        run.seen(ts)
        if kind in _SERIES and types.setdefault(path, kind) == "float_series":
            continue                                # streamed by _float_points
        if kind == "float_series":
            run.add_point(path, kind, _step(step), ts, _float(float_v))
        elif kind in mapping.ATOMIC_TYPES:
            value = {"float": _float(float_v), "int": int_v, "bool": bool_v, "string": string_v,
                     "datetime": datetime_v, "string_set": sorted(set_v or [])}[kind]
            run.attrs[path] = (kind, value)
        elif kind == "string_series":
            run.add_point(path, kind, _step(step), ts, string_v)
        elif kind == "histogram_series":
            h = hist_v or {}
            run.add_point(path, kind, _step(step), ts,
                          {"type": h.get("type"), "edges": [_float(x) for x in h.get("edges") or []],
                           "values": [_float(x) for x in h.get("values") or []]})
        elif kind in FILE_TYPES:
            _fold_file(mirror, run, files, path, kind, (file_v or {}).get("path"), _step(step), ts)
        else:
            run.extra.setdefault("unmapped", []).append({"path": path, "type": kind})


_SERIES = ("float_series", "string_series", "histogram_series")


_FLOAT_FIELDS = ("attribute_path", "attribute_type", "step", "timestamp", "float_value", "string_value",
                 "histogram_value")


def _float_points(mirror, manifest: dict, floats: set[str], first: int = 0):
    """The float series' points, read again from the stored chunks, a column batch at a time: as
    arrays from a chunk of float points in the columns form, else as lists (in order: the lists
    gathered so far go out before any arrays, and the other way round). `first`: the parts before it
    are not read."""
    lists, arrays = mapping.FloatBatches(), metric_stream.ArrayBatches()
    for part in sorted(manifest["parts"], key=lambda p: p["part"])[first:]:
        for chunk_id in part["chunks"]:
            chunk = _chunk(mirror, chunk_id)
            found = chunk.float_arrays()
            if found is not None and floats.issuperset(found[0]):
                yield from lists.rest()
                paths, codes, steps, times, values = found
                arrays.add(paths, codes, steps, times, values)
                while arrays.full():
                    yield arrays.take()
                continue
            yield from arrays.rest()
            _float_lists(lists, chunk.columns(_FLOAT_FIELDS), floats)
            while lists.full():
                yield lists.take()
    yield from lists.rest()
    yield from arrays.rest()


def _float_lists(out: mapping.FloatBatches, columns: list, floats: set[str]) -> None:
    paths, kinds = columns[0], columns[1]
    if set(kinds) == {"float_series"} and floats.issuperset(paths):
        # a chunk of float points only (the common case): whole columns, mapped at C level
        # (FloatBatches converts the values: float() reads canonical JSON's "NaN" / "Infinity")
        out.extend(paths, _steps(columns[2]), columns[3], columns[4])
        return
    names, steps, stamps, values = [], [], [], []
    for path, kind, step, ts, float_v, string_v, hist_v in zip(*columns):
        if path not in floats or kind not in _SERIES:
            continue
        names.append(path)
        steps.append(_step(step))
        stamps.append(ts)
        # a series' later points of another kind go in as its first kind's (as eagerly)
        values.append(_float(float_v) if kind == "float_series" else
                      string_v if kind == "string_series" else hist_v or {})
    out.extend(names, steps, stamps, values)


def _fold_file(mirror, run: mapping.RunData, files: dict, path: str, kind: str, recorded: str | None,
               step, ts) -> None:
    if recorded is None:
        return
    if kind == "artifact":
        entry = files.get(recorded)
        listing = json.loads(mirror.objects.get_bytes(entry["object_id"])) if entry else []
        run.artifacts[path] = [_artifact_file(f) for f in listing]
        return
    if kind == "file_set":
        prefix = recorded + "/"
        for key in sorted(k for k in files if k.startswith(prefix)):
            e = files[key]
            run.add_file(path, kind, mapping.FileRef(key[len(prefix):], e["object_id"], e["size"]))
        return
    e = files.get(recorded)
    name = recorded.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1] if kind == "file" and "." in name else None
    ref = mapping.FileRef(name if kind == "file_series" else "", e and e["object_id"], e and e["size"],
                          step=step, ext=ext, timestamp=ts,
                          missing=None if e else recorded)
    run.add_file(path, kind, ref)


def _artifact_file(dto: dict) -> dict:
    """neptune 1.x ArtifactFileData DTO: filePath, fileHash, type, size, metadata."""
    meta = dto.get("metadata") or {}
    return {"path": dto.get("filePath"), "size": dto.get("size"),
            "checksum": f"neptune:{dto['fileHash']}" if dto.get("fileHash") else None,
            "link": meta.get("location"), "metadata": {"type": dto.get("type"), **meta}}

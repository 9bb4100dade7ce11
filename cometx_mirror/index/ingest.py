"""Writing model objects into the index, a column at a time.

Per-row INSERTs run at ~600 rows/s in DuckDB; an INSERT ... SELECT over whole
columns runs at millions.  The columns go to DuckDB as NumPy arrays, which it
scans directly (the same columnar path as Arrow, without pyarrow's habit of
importing pandas, ~0.3 s, on its first array).  Each entity is replaced whole:
delete its rows, insert the new ones, in one transaction the caller opens.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterable

from .. import metric_stream, model
from ..metric_stream import UNSET, unset_as_none
from ..store import faultpoint

if TYPE_CHECKING:
    import duckdb

TEXT_INLINE_LIMIT = 4 << 20   # texts up to this size are also kept inline for SQL


def load_libraries() -> None:
    """Import what ingesting needs, DuckDB and NumPy; called ahead of time on a
    background thread by a fetch that will ingest (sync/indexer.Ahead)."""
    from . import engine  # noqa: F401
    import numpy  # noqa: F401


def _json(value: Any) -> str | None:
    if value is None:
        return None
    if value is model.JSON_NULL:     # a logged null is the JSON text null, not "no value"
        return "null"
    text = json.dumps(value, sort_keys=True, default=str)
    if "\\ud" in text:               # a surrogate's escape: DuckDB's JSON refuses a lone one (see _utf8)
        try:
            json.dumps(value, default=str, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(_escaped(value), sort_keys=True, default=str)
    return text


def _metadata(asset: model.Asset) -> str | None:
    """The metadata as the source sent it, when that is JSON; else our encoding of it."""
    if asset.metadata_text is not None:
        try:
            json.loads(asset.metadata_text)
            return asset.metadata_text
        except ValueError:
            pass
    return _json(asset.metadata)


# Column types.  NumPy is imported on the first insert: an unchanged fetch never ingests.
TS, STR, I64, F64, BOOL, STRS = "timestamp", "string", "int64", "float64", "bool", "strings"
NAMES = "names"     # (distinct strings, int32 codes): a metric batch's names as its reader decoded them


def _column(np, name: str, typ: str, values) -> tuple[dict[str, Any], str, list]:
    """({array name: array}, SQL expression, its query parameters) for one column.

    Numbers go in as typed arrays.  DuckDB reads NaN in a float array as NULL, and
    a typed array has no NULL, so a mask array says which rows are NaN or None
    whenever there are any; everything else goes in as Python objects.  `values` is a
    list, or a typed NumPy array with no missing entry (metric_stream.ArrayBatch); a
    NAMES column is (distinct names, int32 codes into them).
    """
    if typ == NAMES:
        names, codes = values
        return {name: codes}, f"list_extract(?::VARCHAR[], {name} + 1)", [_utf8(list(names))]
    if isinstance(values, np.ndarray):
        unset = typ != F64 and bool((values == UNSET).any())
        if typ == TS:
            known = values[values != UNSET] if unset else values
            if len(known) and not (_TIME_RANGE_MS[0] <= known.min() and known.max() <= _TIME_RANGE_MS[1]):
                return _column(np, name, typ, unset_as_none(values))
        return _numbers(np, name, typ, values, None, unset)
    n = len(values)
    nones = values.count(None)
    if nones == n:                  # a column nobody filled in (often context or epoch)
        return {}, "NULL", []
    if typ in (I64, TS, F64):
        missing = nones > 0
        try:
            if typ == F64:
                array = np.fromiter((np.nan if v is None else v for v in values) if missing else values,
                                    dtype=np.float64, count=n)
            else:
                array = np.fromiter((0 if v is None else v for v in values) if missing else values,
                                    dtype=np.int64, count=n)
        except (OverflowError, TypeError, ValueError):
            array = None          # out of int64 range, or not a number: let DuckDB convert objects
        if typ == TS and (array is None or ((array < _TIME_RANGE_MS[0]) | (array > _TIME_RANGE_MS[1])).any()):
            known = _known_times(values)
            if known != values:
                return _column(np, name, typ, known)
        if array is not None:
            return _numbers(np, name, typ, array, values if missing else None)
    # strings, lists, booleans: object arrays (fromiter keeps a list as one element)
    array = np.fromiter(_utf8(values), dtype=object, count=n)
    return {name: array}, (f"epoch_ms({name}::BIGINT)" if typ == TS else name), []


def _numbers(np, name: str, typ: str, array, values: list | None,
             unset: bool = False) -> tuple[dict[str, Any], str, list]:
    """A typed array's column; `values`, when given, the list it came from, whose Nones are missing;
    `unset`: the int array holds metric_stream.UNSET where there is no value."""
    n = len(array)
    arrays, expr = {name: array}, (f"NULLIF({name}, {UNSET})" if unset else name)
    if typ == F64:
        nan = np.isnan(array)
        if values is not None:
            nan &= np.fromiter((v is not None for v in values), dtype=np.bool_, count=n)
        if nan.any():
            arrays[f"{name}__nan"] = nan
            expr = f"CASE WHEN {name}__nan THEN 'NaN'::DOUBLE ELSE {expr} END"
    if values is not None and typ != F64:   # a None float is NaN in the array, which reads as NULL
        arrays[f"{name}__null"] = np.fromiter((v is None for v in values), dtype=np.bool_, count=n)
        expr = f"CASE WHEN {name}__null THEN NULL ELSE {expr} END"
    return arrays, (f"epoch_ms({expr})" if typ == TS else expr), []


# 0001-01-01 to 9999-12-31 in ms: the times a Python datetime holds.  DuckDB's TIMESTAMP holds
# more, but every reader of the index (ls, query, push's plans) gets its times as datetimes.
_TIME_RANGE_MS = (-62135596800000, 253402300799999)


def _known_times(values: list) -> list:
    """The times, with each number outside _TIME_RANGE_MS (a log's `_timestamp` of 1e300, a
    NaN) made unknown, as W&B's reader already makes a NaN time: the source's own text stays
    in the mirror."""
    lo, hi = _TIME_RANGE_MS
    return [None if isinstance(v, (int, float)) and not lo <= v <= hi else v for v in values]


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, tuple[str, list]],
            constants: dict[str, Any] | None = None) -> None:
    """INSERT the columns in one statement; `constants` are the same on every row."""
    statement = _statement(table, columns, constants)
    if statement is not None:
        _execute(con, *statement)


def _statement(table: str, columns: dict[str, tuple[str, list]],
               constants: dict[str, Any] | None = None) -> tuple[str, list, dict] | None:
    """(SQL, parameters, arrays) inserting the columns, or None when there are no rows.

    A constant goes in as a query parameter, not as a column: a million references
    to one Python string cost more to convert than the whole insert.
    """
    rows_n = _length(*next(iter(columns.values()))) if columns else 0
    if not rows_n:
        return None
    import numpy as np
    arrays, exprs, params = {}, [], _utf8(list((constants or {}).values()))
    for name, (typ, values) in columns.items():
        column_arrays, expr, column_params = _column(np, name, typ, values)
        arrays.update(column_arrays)
        exprs.append(expr)
        params += column_params
    if not arrays:      # every column NULL: the scan still needs one array to count the rows
        arrays["__rows"] = np.zeros(rows_n, dtype=np.int8)
    consts = constants or {}
    names = ", ".join([*consts, *columns])
    values = ", ".join(["?"] * len(consts) + exprs)
    return f"INSERT INTO {table} ({names}) SELECT {values} FROM rows", params, arrays


def _execute(con: duckdb.DuckDBPyConnection, sql: str, params: list, arrays: dict) -> None:
    rows = arrays  # noqa: F841  (a dict of NumPy arrays, read by DuckDB's replacement scan)
    con.execute(sql, params)


def _utf8(values: list) -> list:
    """The values, a lone surrogate in a string (a neptune log's `\\udXXX` reads as one, and it has no
    UTF-8, which DuckDB takes alone) written as that escape, as the mirror's objects write it (canonical
    JSON, console texts); a list's strings too. Checked by one encode of all the strings at once."""
    texts = [v for v in values if type(v) is str]
    texts += [t for v in values if type(v) in (list, tuple) for t in v if type(t) is str]
    try:
        "".join(texts).encode("utf-8")
        return values
    except UnicodeEncodeError:
        return [_escaped(v) for v in values]


def _escaped(value):
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (list, tuple)):
        return type(value)(map(_escaped, value))
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    return value


def _length(typ: str, values) -> int:
    return len(values[1] if typ == NAMES else values)


def _rows(table_spec: dict[str, str], rows: Iterable[tuple]) -> dict[str, tuple[str, list]]:
    cols: dict[str, list] = {name: [] for name in table_spec}
    for row in rows:
        for name, value in zip(table_spec, row):
            cols[name].append(value)
    return {name: (typ, cols[name]) for name, typ in table_spec.items()}


def delete_experiment(con: duckdb.DuckDBPyConnection, exp_id: str) -> None:
    from .schema import EXPERIMENT_TABLES
    for table in EXPERIMENT_TABLES:
        con.execute(f"DELETE FROM {table} WHERE exp_id = ?", [exp_id])


def ingest_experiment(con: duckdb.DuckDBPyConnection, exp: model.Experiment, manifest_id: str,
                      texts_content: dict[str, str | None] | None = None, append_metrics: bool = False) -> None:
    """Replace every row of `exp`; `texts_content` maps object id -> decoded text to inline.

    append_metrics: `exp.metrics` are only the points logged since the rows the index holds
    (a grown run): those rows stay and these go after them; the other tables are replaced."""
    eid = exp.id
    if append_metrics:
        from .schema import EXPERIMENT_TABLES
        for table in EXPERIMENT_TABLES:
            if table != "metrics":
                con.execute(f"DELETE FROM {table} WHERE exp_id = ?", [eid])
    else:
        delete_experiment(con, eid)
    _insert_metrics(con, eid, exp.metrics)      # first: see _insert_metrics
    faultpoint.hit("index_metrics_in")          # kill tests: the transaction is half done here
    _insert(con, "experiments", _rows(
        {"exp_id": STR, "source": STR, "workspace": STR, "project": STR, "experiment_key": STR,
         "name": STR, "created_at": TS, "started_at": TS, "ended_at": TS, "updated_at": TS,
         "state": STR, "archived": BOOL, "manifest_id": STR, "extra": STR},
        [(eid, exp.source, exp.workspace, exp.project, exp.key, exp.name, exp.created_at,
          exp.started_at, exp.ended_at, exp.updated_at, exp.state, exp.archived, manifest_id,
          _json(exp.extra or None))]))
    _insert(con, "params", _rows(
        {"exp_id": STR, "name": STR, "value": STR, "raw": STR, "origin": STR},
        ((eid, p.name, p.value, _json(p.raw), p.source) for p in exp.params)))
    _insert(con, "others", _rows(
        {"exp_id": STR, "name": STR, "value": STR, "raw": STR, "timestamp": TS},
        ((eid, o.name, o.value, _json(o.raw), o.timestamp) for o in exp.others)))
    _insert(con, "tags", _rows({"exp_id": STR, "tag": STR}, ((eid, t) for t in exp.tags)))
    _insert(con, "system_details", _rows(
        {"exp_id": STR, "name": STR, "value": STR},
        ((eid, k, _json(v)) for k, v in sorted(exp.system.items()))))
    content = texts_content or {}
    _insert(con, "texts", _rows(
        {"exp_id": STR, "kind": STR, "name": STR, "object_id": STR, "size": I64, "content": STR},
        ((eid, t.kind, t.name, t.object_id, t.size, content.get(t.object_id)) for t in exp.texts)))
    _insert(con, "assets", _rows(
        {"exp_id": STR, "asset_id": STR, "file_name": STR, "type": STR, "step": I64, "epoch": I64,
         "context": STR, "metadata": STR, "object_id": STR, "size": I64, "remote": BOOL, "link": STR,
         "checksum": STR, "created_at": TS, "extra": STR},
        ((eid, a.asset_id, a.file_name, a.type, a.step, a.epoch, a.context, _metadata(a),
          a.object_id, a.size, a.remote, a.link, a.checksum, a.created_at, _json(a.extra or None))
         for a in exp.assets)))


def _row_bytes(m: model.Metrics) -> int:
    """About how many bytes a metric row of this batch takes in DuckDB: fixed columns plus
    the mean length of its strings."""
    if isinstance(m, metric_stream.ArrayBatch):       # its names by code: no list of a string per row
        import numpy as np
        lengths = np.fromiter(map(len, m.names), np.int64, len(m.names))
        texts = sum(map(len, filter(None, m.texts))) // (len(m.codes) or 1) if m.texts is not None else 0
        return 64 + texts + (int(lengths[m.codes].mean()) if len(m.codes) else 0)
    n = len(m.name) or 1
    strings = sum(sum(map(len, filter(None, column))) for column in (m.name, m.context, m.text))
    return 64 + strings // n


def _insert_metrics(con: duckdb.DuckDBPyConnection, eid: str, metrics: model.Metrics) -> None:
    """The points batch by batch (a long run streams: one batch in Python at a time), with
    DuckDB's memory bounded (db.bounded_memory), so the peak does not grow with the points.
    Before the other tables' rows: nothing else of this transaction is held yet when the
    low limit takes effect, so it has nothing big to spill.  DuckDB inserts a batch on a
    second thread (db.BackgroundStatements) while the next one is read and converted here."""
    from .db import BackgroundStatements, bounded_memory
    with bounded_memory(con) as bound, BackgroundStatements(con) as background:
        for m in metric_stream.batches(metrics):
            row_bytes = _row_bytes(m)
            if isinstance(m, metric_stream.ArrayBatch):     # context unset: NULL
                columns = {"name": (NAMES, (m.names, m.codes)), "step": (I64, m.steps), "timestamp": (TS, m.times),
                           "value": (F64, m.values)}
                if m.epochs is not None:
                    columns["epoch"] = (I64, m.epochs)
                if m.texts is not None:
                    columns["text"] = (STR, m.texts)
            else:
                columns = {"name": (STR, m.name), "step": (I64, m.step), "epoch": (I64, m.epoch),
                           "timestamp": (TS, m.timestamp), "value": (F64, m.value), "context": (STR, m.context),
                           "text": (STR, m.text)}
            statement = _statement("metrics", columns, {"exp_id": eid})
            if statement is not None:
                background.run(_fit_and_execute, bound, row_bytes, con, *statement)


def _fit_and_execute(bound, row_bytes: int, con, sql: str, params: list, arrays: dict) -> None:
    bound.fit(row_bytes)
    _execute(con, sql, params, arrays)


def delete_workspace_entity(con: duckdb.DuckDBPyConnection, kind: str, source: str,
                            workspace: str, name: str) -> None:
    if kind == "project":
        con.execute("DELETE FROM projects WHERE source=? AND workspace=? AND project=?",
                    [source, workspace, name])
    elif kind == "artifact":
        project, _, artifact = name.rpartition("/")      # see artifact_entity()
        for table, col in (("artifacts", "name"), ("artifact_versions", "artifact"),
                           ("artifact_files", "artifact")):
            con.execute(f"DELETE FROM {table} WHERE source=? AND workspace=? AND {col}=? "
                        "AND coalesce(project, '') = ?", [source, workspace, artifact, project])
    elif kind == "registry_model":
        con.execute("DELETE FROM registry_models WHERE source=? AND workspace=? AND name=?",
                    [source, workspace, name])
        con.execute("DELETE FROM registry_versions WHERE source=? AND workspace=? AND model=?",
                    [source, workspace, name])
    elif kind == "panel":
        con.execute("DELETE FROM panels WHERE source=? AND workspace=? AND panel_id=?",
                    [source, workspace, name])


def ingest_project(con, p: model.Project, manifest_id: str) -> None:
    delete_workspace_entity(con, "project", p.source, p.workspace, p.name)
    _insert(con, "projects", _rows(
        {"source": STR, "workspace": STR, "project": STR, "description": STR, "notes": STR,
         "public": BOOL, "created_at": TS, "manifest_id": STR, "extra": STR},
        [(p.source, p.workspace, p.name, p.description, p.notes, p.public, p.created_at,
          manifest_id, _json(p.extra or None))]))


def artifact_entity(a: model.Artifact) -> str:
    """How the index names an artifact for replacement: "<project>/<name>" (project may be empty)."""
    return f"{a.project or ''}/{a.name}"


def ingest_artifact(con, a: model.Artifact, manifest_id: str) -> None:
    delete_workspace_entity(con, "artifact", a.source, a.workspace, artifact_entity(a))
    _insert(con, "artifacts", _rows(
        {"source": STR, "workspace": STR, "name": STR, "type": STR, "project": STR,
         "description": STR, "tags": STRS, "metadata": STR, "manifest_id": STR, "extra": STR},
        [(a.source, a.workspace, a.name, a.type, a.project, a.description, list(a.tags),
          _json(a.metadata), manifest_id, _json(a.extra or None))]))
    _insert(con, "artifact_versions", _rows(
        {"source": STR, "workspace": STR, "project": STR, "artifact": STR, "version": STR, "aliases": STRS,
         "tags": STRS, "metadata": STR, "state": STR, "created_at": TS, "experiment_key": STR,
         "extra": STR},
        ((a.source, a.workspace, a.project, a.name, v.version, list(v.aliases), list(v.tags), _json(v.metadata),
          v.state, v.created_at, v.experiment_key, _json(v.extra or None)) for v in a.versions)))
    _insert(con, "artifact_files", _rows(
        {"source": STR, "workspace": STR, "project": STR, "artifact": STR, "version": STR, "path": STR,
         "size": I64, "object_id": STR, "remote": BOOL, "link": STR, "checksum": STR, "metadata": STR},
        ((a.source, a.workspace, a.project, a.name, v.version, f.path, f.size, f.object_id, f.remote, f.link,
          f.checksum, _json(f.metadata)) for v in a.versions for f in v.files)))


def ingest_registry_model(con, m: model.RegistryModel, manifest_id: str) -> None:
    delete_workspace_entity(con, "registry_model", m.source, m.workspace, m.name)
    _insert(con, "registry_models", _rows(
        {"source": STR, "workspace": STR, "name": STR, "description": STR, "notes": STR,
         "public": BOOL, "tags": STRS, "manifest_id": STR, "extra": STR},
        [(m.source, m.workspace, m.name, m.description, m.notes, m.public, list(m.tags),
          manifest_id, _json(m.extra or None))]))
    _insert(con, "registry_versions", _rows(
        {"source": STR, "workspace": STR, "model": STR, "version": STR, "stages": STRS,
         "status": STR, "tags": STRS, "comment": STR, "experiment_key": STR, "created_at": TS,
         "object_id": STR, "size": I64, "extra": STR},
        ((m.source, m.workspace, m.name, v.version, list(v.stages), v.status, list(v.tags),
          v.comment, v.experiment_key, v.created_at, v.object_id, v.size, _json(v.extra or None))
         for v in m.versions)))


def ingest_panel(con, p: model.Panel, manifest_id: str) -> None:
    delete_workspace_entity(con, "panel", p.source, p.workspace, p.panel_id)
    _insert(con, "panels", _rows(
        {"source": STR, "workspace": STR, "panel_id": STR, "name": STR, "kind": STR,
         "object_id": STR, "size": I64, "manifest_id": STR, "extra": STR},
        [(p.source, p.workspace, p.panel_id, p.name, p.kind, p.object_id, p.size, manifest_id,
          _json(p.extra or None))]))


def record_snapshot(con, snapshot_id: str, ref: str, parent: str | None, time_s: float,
                    source: str, origin: str, scope: str, n_manifests: int, stats: dict) -> None:
    con.execute("DELETE FROM snapshots WHERE snapshot_id = ?", [snapshot_id])
    con.execute("INSERT INTO snapshots VALUES (?, ?, ?, make_timestamp(?), ?, ?, ?, ?, ?)",
                [snapshot_id, ref, parent, int(time_s * 1_000_000), source, origin, scope, n_manifests, _json(stats)])

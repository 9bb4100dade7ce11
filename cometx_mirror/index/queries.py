"""Read-only questions to the index: user SQL, the `ls` tree, experiment lookup.

Every function takes an open (read-only) connection; opening and catching the
index up with the refs is the sync layer's job (sync/browse.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import ExpectedError
from .engine import duckdb

# Statement types a user may run: reading only.  The connection is read-only and
# sandboxed too (no file access), so this is the first of two locks, and the one
# that gives a clear message.
READ_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class QueryError(ExpectedError):
    """User SQL that is refused or fails: one line for the user."""


class NotFound(ExpectedError):
    """A path or name that names nothing in the index."""


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def _first_line(e: Exception) -> str:
    return " ".join(str(e).splitlines()[0].split()) if str(e) else type(e).__name__


BATCH_ROWS = 10_000


def _execute_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    """Execute one read-only statement; refuse anything that is not a SELECT-like statement."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(f"bad SQL: {_first_line(e)}") from None
    if len(statements) != 1:
        raise QueryError(f"give exactly one statement (got {len(statements)})")
    kind = statements[0].type
    if kind not in READ_STATEMENTS:
        article = "an" if kind.name[:1] in "AEIOU" else "a"      # an INSERT, an UPDATE, a DELETE
        raise QueryError(f"refused: query is read-only, and this is {article} {kind.name} statement")
    try:
        return con.execute(sql)
    except duckdb.Error as e:
        raise QueryError(f"query failed: {_first_line(e)}") from None


def run_sql(con: duckdb.DuckDBPyConnection, sql: str) -> Result:
    columns, rows = stream_sql(con, sql)
    return Result(columns, list(rows))


def stream_sql(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], Iterator[tuple]]:
    """(columns, rows) where the rows are read in batches as they are consumed, so a query
    over every metric point never sits whole in memory.  `con` must stay open meanwhile."""
    cur = _execute_read_only(con, sql)
    columns = [d[0] for d in cur.description or []]

    def rows() -> Iterator[tuple]:
        while True:
            try:
                batch = cur.fetchmany(BATCH_ROWS)
            except duckdb.Error as e:
                raise QueryError(f"query failed: {_first_line(e)}") from None
            if not batch:
                return
            yield from batch
    return columns, rows()


def select(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Result:
    cur = con.execute(sql, params or [])
    return Result([d[0] for d in cur.description], cur.fetchall())


# -- the ls tree ---------------------------------------------------------------

# Where each indexed entity came from: the sync layer makes `label_origin(label, origin)`
# on the connection (from the refs: a snapshot names its origin server), so one workspace name
# on two servers shows as two rows.
ORIGINS = """
    o AS (SELECT m.label, m.type, m.source, m.workspace, m.entity, coalesce(lo.origin, '') AS origin
          FROM manifests m LEFT JOIN label_origin lo USING (label)),
    e AS (SELECT o.source, o.origin, x.workspace, x.project, x.exp_id FROM o
          JOIN experiments x ON x.exp_id = o.entity WHERE o.type = 'experiment'),
    p AS (SELECT source, origin, workspace, entity AS project FROM o WHERE type = 'project'
          UNION SELECT source, origin, workspace, project FROM e)"""


def workspaces(con) -> Result:
    return select(con, f"""
        WITH {ORIGINS},
             w AS (SELECT DISTINCT source, origin, workspace FROM o)
        SELECT w.source, w.origin, w.workspace,
               (SELECT count(DISTINCT project) FROM p WHERE p.source = w.source AND p.origin = w.origin
                  AND p.workspace = w.workspace) AS projects,
               (SELECT count(*) FROM e WHERE e.source = w.source AND e.origin = w.origin
                  AND e.workspace = w.workspace) AS experiments
        FROM w ORDER BY w.workspace, w.source, w.origin""")


def projects(con, workspace: str) -> Result:
    result = select(con, f"""
        WITH {ORIGINS}
        SELECT p.source, p.origin, p.project,
               (SELECT count(*) FROM e WHERE e.source = p.source AND e.origin = p.origin
                  AND e.workspace = p.workspace AND e.project = p.project) AS experiments,
               (SELECT description FROM projects j WHERE j.source = p.source
                  AND j.workspace = p.workspace AND j.project = p.project LIMIT 1) AS description
        FROM p WHERE p.workspace = ? ORDER BY p.project, p.source, p.origin""", [workspace])
    # the origin of an artifact, model or panel: its manifest's, found by the label's last part
    origin = lambda kind: f"""(SELECT min(o.origin) FROM o WHERE o.source = t.source AND o.workspace = t.workspace
                               AND o.type = '{kind}' AND o.label LIKE '%/' || t.name)"""  # noqa: E731
    others = select(con, f"""
        WITH {ORIGINS}
        SELECT t.source, {origin('artifact')} AS origin, 'artifacts/' || t.name AS project,
               NULL::BIGINT AS experiments, t.description FROM artifacts t WHERE t.workspace = ?
        UNION ALL SELECT t.source, {origin('registry_model')}, 'model-registry/' || t.name, NULL, t.description
          FROM registry_models t WHERE t.workspace = ?
        UNION ALL SELECT t.source, {origin('panel')}, 'panels/' || t.name, NULL, NULL
          FROM panels t WHERE t.workspace = ?
        ORDER BY 3""", [workspace] * 3)
    if not result.rows and not others.rows:
        raise NotFound(f"no workspace {workspace!r} in the mirror")
    return Result(result.columns, result.rows + others.rows)


def experiments(con, workspace: str, project: str) -> Result:
    result = select(con, f"""
        WITH {ORIGINS}
        SELECT e.experiment_key AS key, e.name, e.state, e.created_at, e.ended_at, e.source,
               (SELECT min(o.origin) FROM o WHERE o.entity = e.exp_id AND o.type = 'experiment') AS origin,
               (SELECT count(*) FROM metrics m WHERE m.exp_id = e.exp_id) AS metric_points,
               (SELECT count(*) FROM assets a WHERE a.exp_id = e.exp_id) AS assets
        FROM experiments e WHERE e.workspace = ? AND e.project = ?
        ORDER BY e.created_at NULLS LAST, e.experiment_key""", [workspace, project])
    if not result.rows:
        known = con.execute("SELECT count(*) FROM projects WHERE workspace = ? AND project = ?",
                            [workspace, project]).fetchone()[0]
        if not known:
            raise NotFound(f"no project {workspace}/{project} in the mirror")
    return result


def resources(con, exp_id: str) -> Result:
    """What `cat` can print for one experiment: its text resources, then its assets."""
    return select(con, """
        SELECT 'text' AS kind, t.kind AS type, coalesce(t.name, t.kind) AS name, t.size,
               NULL::BIGINT AS step, NULL AS asset_id, t.object_id
          FROM texts t WHERE t.exp_id = ?
        UNION ALL
        SELECT 'asset', a.type, a.file_name, a.size, a.step, a.asset_id, a.object_id
          FROM assets a WHERE a.exp_id = ?
        ORDER BY 1 DESC, 2, 3, 5 NULLS FIRST, 6""", [exp_id, exp_id])


# -- finding one experiment ----------------------------------------------------

def find_experiment(con, ref: str) -> str:
    """The exp_id `ref` names: WS/PROJ/KEY_OR_NAME, an exp_id, a key, a name or a key prefix."""
    ref = ref.strip().strip("/")
    if not ref:
        raise NotFound("name an experiment: WORKSPACE/PROJECT/KEY, a key or a name")
    parts = ref.split("/")
    if len(parts) >= 3 and ":" not in parts[0]:
        ws, proj, exp = parts[0], parts[1], "/".join(parts[2:])
        rows = con.execute("""SELECT exp_id FROM experiments WHERE workspace = ? AND project = ?
                              AND (experiment_key = ? OR name = ?)
                              ORDER BY experiment_key = ? DESC""",
                           [ws, proj, exp, exp, exp]).fetchall()
        rows = _prefer_key(con, rows, exp)
    else:
        rows = con.execute("SELECT exp_id FROM experiments WHERE exp_id = ?", [ref]).fetchall()
        if not rows:
            rows = con.execute("SELECT exp_id FROM experiments WHERE experiment_key = ?", [ref]).fetchall()
        if not rows:
            rows = con.execute("SELECT exp_id FROM experiments WHERE name = ?", [ref]).fetchall()
        if not rows and len(ref) >= 6:
            rows = con.execute("SELECT exp_id FROM experiments WHERE starts_with(experiment_key, ?)",
                               [ref]).fetchall()
    if not rows:
        raise NotFound(f"no experiment {ref!r} in the mirror")
    if len(rows) > 1:
        ids = ", ".join(r[0] for r in rows[:5])
        raise NotFound(f"{ref!r} names {len(rows)} experiments ({ids}); give WORKSPACE/PROJECT/KEY")
    return rows[0][0]


def _prefer_key(con, rows: list[tuple], exp: str) -> list[tuple]:
    """A key match beats a name match: keys are unique, names are not."""
    by_key = [r for r in rows
              if con.execute("SELECT experiment_key FROM experiments WHERE exp_id = ?", [r[0]]).fetchone()[0] == exp]
    return by_key or rows


def experiment_summary(con, exp_id: str) -> dict[str, Any]:
    row = select(con, "SELECT * EXCLUDE (extra) FROM experiments WHERE exp_id = ?", [exp_id]).records()[0]
    count = lambda sql: con.execute(sql, [exp_id]).fetchone()  # noqa: E731
    row["tags"] = [r[0] for r in con.execute("SELECT tag FROM tags WHERE exp_id = ? ORDER BY tag",
                                             [exp_id]).fetchall()]
    row["params"] = count("SELECT count(*) FROM params WHERE exp_id = ?")[0]
    row["others"] = count("SELECT count(*) FROM others WHERE exp_id = ?")[0]
    names, points = count("SELECT count(DISTINCT name), count(*) FROM metrics WHERE exp_id = ?")
    row["metric_names"], row["metric_points"] = names, points
    n, size = count("SELECT count(*), coalesce(sum(size), 0) FROM assets WHERE exp_id = ?")
    row["assets"], row["asset_bytes"] = n, int(size)
    row["texts"] = [r[0] for r in con.execute("SELECT DISTINCT kind FROM texts WHERE exp_id = ? ORDER BY kind",
                                              [exp_id]).fetchall()]
    row["system_details"] = count("SELECT count(*) FROM system_details WHERE exp_id = ?")[0]
    # Comet metrics kept as a sample of 15,000 values (index/schema.py, migration 5)
    row["sampled_metrics"] = count("SELECT count(*) FROM metric_status WHERE exp_id = ? AND sampled")[0]
    row["param_values"] = dict(con.execute("SELECT name, value FROM params WHERE exp_id = ? ORDER BY name",
                                           [exp_id]).fetchall())
    row["last_metrics"] = last_metric_values(con, exp_id)
    return row


def last_metric_values(con, exp_id: str) -> dict[str, dict]:
    """Each metric's last point (by step, then time), its exact text where the index keeps one."""
    rows = con.execute("""
        SELECT name, arg_max(coalesce(text, CAST(value AS VARCHAR)),
                             (coalesce(step, -1), coalesce(epoch_ms(timestamp), -1))),
               max(step), count(*)
        FROM metrics WHERE exp_id = ? GROUP BY name ORDER BY name""", [exp_id]).fetchall()
    return {name: {"value": value, "step": step, "points": points} for name, value, step, points in rows}


def find_resource(con, exp_id: str, name: str) -> tuple[str | None, dict]:
    """(object id, row) of a text kind/name, an asset id or an asset file name."""
    texts = select(con, "SELECT * EXCLUDE (content) FROM texts WHERE exp_id = ? AND (kind = ? OR name = ?)"
                        " ORDER BY kind = ? DESC", [exp_id, name, name, name]).records()
    if texts:
        return texts[0]["object_id"], texts[0]
    assets = select(con, "SELECT * FROM assets WHERE exp_id = ? AND asset_id = ?", [exp_id, name]).records()
    if not assets:
        assets = select(con, "SELECT * FROM assets WHERE exp_id = ? AND file_name = ? ORDER BY step NULLS FIRST",
                        [exp_id, name]).records()
    if not assets:
        raise NotFound(f"experiment has no resource or asset {name!r} (see `ls WORKSPACE/PROJECT/EXP`)")
    if len(assets) > 1:
        ids = ", ".join(a["asset_id"] for a in assets[:5])
        raise NotFound(f"{len(assets)} assets are named {name!r}; give an asset id ({ids})")
    return assets[0]["object_id"], assets[0]


def index_object_ids(con) -> Result:
    """Every object id the index tables name, with the table and size it gives."""
    return select(con, """
        SELECT 'texts' AS tbl, object_id, size FROM texts WHERE object_id IS NOT NULL
        UNION ALL SELECT 'assets', object_id, size FROM assets WHERE object_id IS NOT NULL
        UNION ALL SELECT 'artifact_files', object_id, size FROM artifact_files WHERE object_id IS NOT NULL
        UNION ALL SELECT 'registry_versions', object_id, size FROM registry_versions WHERE object_id IS NOT NULL
        UNION ALL SELECT 'panels', object_id, size FROM panels WHERE object_id IS NOT NULL""")

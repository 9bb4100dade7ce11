"""Read-only questions to the index: user SQL, the `ls` tree, experiment lookup.

Every function takes an open (read-only) connection; opening and catching the
index up with the refs is the sync layer's job (sync/browse.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import duckdb

from ..errors import ExpectedError

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
        raise QueryError(f"refused: query is read-only, and this is a {kind.name} statement")
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

def workspaces(con) -> Result:
    return select(con, """
        SELECT w.source, w.workspace,
               (SELECT count(DISTINCT project) FROM (
                    SELECT source, workspace, project FROM projects
                    UNION SELECT source, workspace, project FROM experiments) p
                 WHERE p.source = w.source AND p.workspace = w.workspace) AS projects,
               (SELECT count(*) FROM experiments e
                 WHERE e.source = w.source AND e.workspace = w.workspace) AS experiments
        FROM workspaces w ORDER BY w.workspace, w.source""")


def projects(con, workspace: str) -> Result:
    result = select(con, """
        WITH p AS (SELECT source, workspace, project FROM projects WHERE workspace = ?
                   UNION SELECT source, workspace, project FROM experiments WHERE workspace = ?)
        SELECT p.source, p.project,
               (SELECT count(*) FROM experiments e WHERE e.source = p.source
                  AND e.workspace = p.workspace AND e.project = p.project) AS experiments,
               (SELECT description FROM projects j WHERE j.source = p.source
                  AND j.workspace = p.workspace AND j.project = p.project LIMIT 1) AS description
        FROM p ORDER BY p.project, p.source""", [workspace, workspace])
    others = select(con, """
        SELECT source, 'artifacts/' || name AS project, NULL::BIGINT AS experiments, description
          FROM artifacts WHERE workspace = ?
        UNION ALL SELECT source, 'model-registry/' || name, NULL, description
          FROM registry_models WHERE workspace = ?
        UNION ALL SELECT source, 'panels/' || name, NULL, NULL FROM panels WHERE workspace = ?
        ORDER BY 2""", [workspace] * 3)
    if not result.rows and not others.rows:
        raise NotFound(f"no workspace {workspace!r} in the mirror")
    return Result(result.columns, result.rows + others.rows)


def experiments(con, workspace: str, project: str) -> Result:
    result = select(con, """
        SELECT e.experiment_key AS key, e.name, e.state, e.created_at, e.ended_at, e.source,
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
    return row


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

"""Opening the DuckDB index: briefly read-write, or read-only for everything else.

One read-write DuckDB connection locks out every other process, readers
included, so writers hold it per experiment or per batch and close it; readers
retry for a while and then say clearly that a writer holds the index.
"""
from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..errors import ExpectedError
from .schema import LATEST, MIGRATIONS

if TYPE_CHECKING:
    import duckdb


class IndexUnavailable(ExpectedError):
    """The index cannot be opened: busy, damaged or too new."""


class IndexBusy(IndexUnavailable):
    """A writer holds the index (DuckDB's file lock) longer than we waited."""


class IndexDamaged(IndexUnavailable):
    """The index file is not a readable DuckDB database: rebuild it from the refs."""


def _is_lock_error(e: Exception) -> bool:
    import duckdb
    return "lock" in str(e).lower() and isinstance(e, duckdb.IOException)


def _busy_message(e: Exception) -> str:
    pid = re.search(r"PID (\d+)", str(e))
    who = f" (pid {pid.group(1)})" if pid else ""
    return f"the index is busy: another cometx-mirror process{who} is writing it; try again when it ends"


# 64 KiB blocks instead of DuckDB's 256 KiB: each table takes whole blocks, so a new
# mirror's index is ~1.8 MB instead of ~5 MB, while 10 M metric points take the same
# space and a GROUP BY over them ~20 % longer (measured; docs/store.md).  It applies
# when the file is created; an existing index keeps the block size it was made with.
BLOCK_SIZE = 64 << 10


def _connect(path: Path, read_only: bool, wait: float, **config) -> duckdb.DuckDBPyConnection:
    import duckdb   # here, not at the top: commands that never open the index skip its import
    if not path.exists():   # only then: a connection's config must match others open on the file
        config["default_block_size"] = str(BLOCK_SIZE)
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as e:
            if not _is_lock_error(e):
                raise IndexDamaged(f"cannot open the index {path.name}: {str(e).splitlines()[0]} "
                                   "(run `cometx-mirror reindex` to rebuild it)") from None
            if time.monotonic() >= deadline:
                raise IndexBusy(_busy_message(e)) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except duckdb.Error as e:
            raise IndexDamaged(f"cannot open the index {path.name}: {str(e).splitlines()[0]} "
                              "(run `cometx-mirror reindex` to rebuild it)") from None


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute("SELECT count(*) FROM information_schema.tables "
                         "WHERE table_name = 'schema_migrations'").fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration newer than the index's version; return the new version."""
    current = schema_version(con)
    if current > LATEST:
        raise IndexUnavailable(f"the index has schema {current}, newer than this version reads ({LATEST}); "
                          "upgrade cometx-mirror or run `cometx-mirror reindex`")
    if current == 0:
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                    "applied_at TIMESTAMP DEFAULT current_timestamp)")
    for version, name, sql in MIGRATIONS:
        if version > current:
            con.execute("BEGIN")
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
    return LATEST


@contextlib.contextmanager
def open_write(path: str | Path, wait: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    con = _connect(Path(path), read_only=False, wait=wait)
    try:
        migrate(con)
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def open_read(path: str | Path, wait: float = 10.0, sandboxed: bool = False
              ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; `sandboxed` also forbids touching files (for user SQL)."""
    path = Path(path)
    if not path.exists():
        with open_write(path):
            pass
    config = {"enable_external_access": False} if sandboxed else {}
    con = _connect(path, read_only=True, wait=wait, **config)
    try:
        if schema_version(con) < LATEST:
            con.close()
            with open_write(path, wait=wait):
                pass
            con = _connect(path, read_only=True, wait=wait, **config)
        yield con
    finally:
        con.close()

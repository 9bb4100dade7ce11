"""Opening the DuckDB index: briefly read-write, or read-only for everything else.

One read-write DuckDB connection locks out every other process, readers
included, so writers hold it per experiment or per batch and close it; readers
retry for a while and then say clearly that a writer holds the index.
"""
from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
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
    from .engine import duckdb
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


# DuckDB's file starts with a main header and two database headers of 4 KiB each; the
# database header with the higher iteration names how many blocks of what size follow.
# A file shorter than that was cut (a full disk, a copy cut short): DuckDB opens it
# and fails only when a query reaches a missing block, so it is checked before opening.
HEADER_BYTES = 3 * 4096
_DB_HEADER = struct.Struct("<Q7Q")   # checksum, iteration, meta block, free list, block count, block size, ...


def check_file(path: Path) -> None:
    """IndexDamaged when `path` is shorter than its own header says it is."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return
    if size == 0:
        return      # an empty file is one DuckDB was about to create
    if len(head) < HEADER_BYTES or head[8:12] != b"DUCK":
        raise IndexDamaged(f"the index {path.name} is not a DuckDB database")
    headers = [_DB_HEADER.unpack_from(head, off) for off in (4096, 8192)]
    _, _, _, _, blocks, block_size, _, _ = max(headers, key=lambda h: h[1])
    expected = HEADER_BYTES + blocks * block_size
    # Shorter than the header says is only a suspicion: DuckDB may leave free blocks at
    # the end unwritten (seen after a kill mid-write).  Reading every column decides.
    if 4096 <= block_size <= (1 << 24) and blocks < (1 << 40) and size < expected:
        problem = _read_everything(path)
        if problem:
            raise IndexDamaged(f"the index {path.name} is cut short ({size:,} of {expected:,} bytes: {problem})")


def _read_everything(path: Path) -> str | None:
    """None when every column of every table reads back; else DuckDB's complaint."""
    from .engine import duckdb
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as e:
        return str(e).splitlines()[0] if _is_damage(e) else None   # busy, or opened with other settings
    try:
        tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
                             ).fetchall()
        for (table,) in tables:
            cols = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
            if cols:
                con.execute("SELECT " + ", ".join(f'max(hash("{c}"))' for c in cols) + f' FROM "{table}"').fetchall()
        return None
    except duckdb.Error as e:
        return str(e).splitlines()[0] if _is_damage(e) else None
    finally:
        con.close()


def set_aside(path: Path) -> Path:
    """Move a damaged index (and its WAL) out of the way, keeping one copy to look at."""
    aside = path.with_name(path.name + ".damaged")
    os.replace(path, aside)
    try:
        os.replace(str(path) + ".wal", str(aside) + ".wal")
    except FileNotFoundError:
        pass
    return aside


def _is_damage(e: Exception) -> bool:
    """A DuckDB failure while reading that means the file is broken, not the query."""
    from .engine import duckdb
    text = str(e)
    return (isinstance(e, (duckdb.IOException, duckdb.InternalException, duckdb.SerializationException))
            and not _is_lock_error(e)
            and any(s in text for s in ("Could not read enough bytes", "Corrupt database file", "checksum",
                                        "INTERNAL Error", "Failed to deserialize", "truncated")))


def _connect(path: Path, read_only: bool, wait: float, **config) -> duckdb.DuckDBPyConnection:
    from .engine import duckdb   # here, not at the top: commands that never open the index skip its import
    if not path.exists():   # only then: a connection's config must match others open on the file
        config["default_block_size"] = str(BLOCK_SIZE)
    else:
        check_file(path)
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


# DuckDB keeps every block it writes loaded until its memory limit (80 % of RAM by default)
# is reached, so one experiment's metric rows held about 7 bytes a point of table blocks
# (~70 MB at 10^7 points), and the rows of the open transaction more, until commit
# (bench/bench_ingest.py).  While metric rows go in the limit is low: blocks already
# written are dropped instead of kept, and the transaction's own rows spill to the
# index's temp folder (<index>.tmp) when they can.  What cannot spill is about one row
# group being filled, so the limit is raised to twice that when the rows are wide (long
# string values): the bound follows the width of a row, never the number of rows.  Only
# for metric rows: a row of another table (a text of 4 MiB) may need more at once.
METRIC_MEMORY_LIMIT = 16 << 20
ROW_GROUP_ROWS = 122_880     # DuckDB's rows per row group
# Each metric insert scans one batch of 65,536 rows (metric_stream.BATCH_POINTS), too few to
# share out: a second thread only adds its hand-offs, about a third more CPU per row at the
# low limit (10^7 rows: 11.0 s against 8.4 s), so the inserts run on one.
METRIC_INSERT_THREADS = 1


class MemoryBound:
    """DuckDB's memory limit (and threads) for one run of metric inserts; see METRIC_MEMORY_LIMIT."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con, self.limit = con, 0
        con.execute(f"SET threads = {METRIC_INSERT_THREADS}")
        self.fit(0)

    def fit(self, row_bytes: int) -> None:
        """Make room for a row group of rows of about `row_bytes` each."""
        need = max(METRIC_MEMORY_LIMIT, 2 * row_bytes * ROW_GROUP_ROWS)
        if need > self.limit:
            self.con.execute(f"SET memory_limit = '{-(-need // 1024)}KiB'")
            self.limit = need


class BackgroundStatements:
    """Runs calls on the connection one at a time on a second thread, in order, while the caller
    prepares the next: DuckDB lets go of the GIL while it executes, so reading a batch of points
    and inserting the one before share the two cores.  At most one call waits beside the one
    running (memory stays bounded by a few batches).  The caller must not use the connection
    itself until the block ends; the block ends only once every call has run (or the first to
    fail has), and a call's error is raised in the caller, at its next `run` or at the end."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        import queue
        self._calls: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="index-insert", daemon=True)

    def __enter__(self) -> "BackgroundStatements":
        self._thread.start()
        return self

    def run(self, fn, *args) -> None:
        if self._error is not None:
            raise self._error
        self._calls.put((fn, args))

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            if self._error is None:
                try:
                    call[0](*call[1])
                except BaseException as e:      # kept for the caller; later calls are dropped
                    self._error = e

    def __exit__(self, kind, value, tb) -> None:
        self._calls.put(None)
        self._thread.join()
        if self._error is not None and kind is None:
            raise self._error


@contextlib.contextmanager
def bounded_memory(con: duckdb.DuckDBPyConnection) -> Iterator[MemoryBound]:
    """DuckDB's memory held low and one thread inside (MemoryBound), its defaults put back after."""
    try:
        yield MemoryBound(con)
    except BaseException:
        with contextlib.suppress(Exception):    # an aborted transaction refuses SET: keep the first error
            _reset(con)
        raise
    _reset(con)


def _reset(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("RESET memory_limit")
    con.execute("RESET threads")


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    # duckdb_tables(), not information_schema: binding that view costs ~12 ms on a connection's first use
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                         "AND schema_name = 'main' AND table_name = 'schema_migrations'").fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration newer than the index's version; return the new version."""
    current = schema_version(con)
    if current > LATEST:
        raise IndexUnavailable(f"the index has schema {current}, newer than this version reads ({LATEST}); "
                          "upgrade cometx-mirror or run `cometx-mirror reindex`")
    fresh = current == 0        # a new index is made in one transaction (half the time of one per migration)
    if fresh:
        con.execute("BEGIN")
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                    "applied_at TIMESTAMP DEFAULT current_timestamp)")
    for version, name, sql in MIGRATIONS:
        if version > current:
            if not fresh:
                con.execute("BEGIN")
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            if not fresh:
                con.execute("COMMIT")
    if fresh:
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
    except Exception as e:
        if not _is_damage(e):
            raise
        con.close()
        # Damage inside the file shows only when a query reaches it: move the file
        # aside now so the next read rebuilds rather than failing the same way.
        set_aside(path)
        raise IndexDamaged(f"the index {path.name} is damaged ({str(e).splitlines()[0]}); moved it aside "
                           f"to {path.name}.damaged: run the command again to rebuild it from the refs") from None
    finally:
        con.close()

"""The index's memory while one experiment's points go in does not grow with their number.

DuckDB's own count (duckdb_memory()) is sampled after every batch of a streamed
experiment, at two sizes four times apart; before the bound (index/db.bounded_memory)
the count grew with the points (41 MB at 10^6, 107 MB at 10^7: bench/bench_ingest.py).
"""
from __future__ import annotations

from cometx_mirror import model
from cometx_mirror.index import ingest
from cometx_mirror.index import db
from cometx_mirror.index.db import open_write
from cometx_mirror.metric_stream import MetricStream

BATCH = 1 << 15


def _ingest(path, points: int, text: str | None = None) -> tuple[int, list]:
    """Ingest `points` points as the indexer does (one transaction); the largest
    DuckDB memory count seen after a batch, and the rows read back."""
    peak = 0

    def produce():
        nonlocal peak
        for start in range(0, points, BATCH):
            r = range(start, min(points, start + BATCH))
            m = model.Metrics()
            m.name = ["loss" if i % 2 else "acc" for i in r]
            m.step = list(r)
            m.epoch, m.context = [None] * len(r), [None] * len(r)
            m.text = [None if text is None else f"{i}{text}" for i in r]
            m.timestamp = [1_700_000_000_000 + i for i in r]
            m.value = [None if text else 1.0 / (i + 1) for i in r]
            yield m
            # a cursor of its own: the index inserts on a second thread meanwhile (db.BackgroundStatements)
            peak = max(peak, sampler.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0])

    exp = model.Experiment(source="comet", workspace="w", project="p", key="k")
    exp.metrics = MetricStream(produce)
    with open_write(path) as con:
        sampler = con.cursor()
        default = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        con.execute("BEGIN")
        ingest.ingest_experiment(con, exp, "manifest")
        con.execute("COMMIT")
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == default
        rows = con.execute("SELECT count(*), sum(step), min(text), max(length(text)) FROM metrics").fetchone()
    return peak, rows


def test_duckdb_memory_flat_in_the_points(tmp_path):
    small, rows_small = _ingest(tmp_path / "small.duckdb", 150_000)
    large, rows_large = _ingest(tmp_path / "large.duckdb", 600_000)
    assert rows_small[:2] == (150_000, sum(range(150_000)))
    assert rows_large[:2] == (600_000, sum(range(600_000)))
    # four times the points, the same ceiling; without the bound the count at 600,000 is ~2x the limit
    assert max(small, large) <= db.METRIC_MEMORY_LIMIT + (1 << 20), (small, large)


def test_wide_rows_still_go_in(tmp_path):
    """160 MB of long string values go in whole under the low limit (they spill; a row group
    of far wider rows gets a higher limit, db.MemoryBound.fit), not as an out-of-memory error."""
    wide = "x" * 4000
    _, rows = _ingest(tmp_path / "wide.duckdb", 40_000, text=wide)
    assert rows[0] == 40_000 and rows[2] == "0" + wide and rows[3] == len("39999" + wide)

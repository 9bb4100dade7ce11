"""The DuckDB index: reindex equivalence, migrations, catching up, busy and damaged files."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import duckdb
import pytest

from core_fixtures import KEY1, KEY2, add_experiment, commit, fill, filled, mirror  # noqa: F401
from cometx_mirror.index import db, schema
from cometx_mirror.sync import browse, housekeeping, indexer

TABLES = ["experiments", "params", "metrics", "others", "tags", "system_details", "texts", "assets",
          "projects", "manifests", "snapshots", "artifacts", "artifact_versions", "artifact_files",
          "registry_models", "registry_versions", "panels", "workspaces"]


def dump(m) -> dict[str, list]:
    with db.open_read(m.index_path) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def test_reindex_gives_identical_query_results(filled):
    # a second snapshot, so history and changed entities are part of the comparison
    labels = {k.split(":", 1)[1]: v for k, v in filled.current_manifests().items()}
    labels[f"experiment/ws/proj/{KEY2}"] = add_experiment(filled, "ws", "proj", KEY2, name="renamed")
    del labels["experiment/ws/other/runthree"]
    commit(filled, "ws", labels)
    before = dump(filled)
    assert len(before["metrics"]) == 60 and len(before["snapshots"]) == 2
    assert ("runthree",) not in [(r[4],) for r in before["experiments"]]   # dropped label is gone
    assert housekeeping.reindex(filled) == len(labels)
    assert dump(filled) == before


def test_a_new_index_is_made_with_small_blocks_and_an_old_one_keeps_its_own(tmp_path):
    with db.open_write(tmp_path / "new.duckdb") as con:
        assert con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0] == db.BLOCK_SIZE
    duckdb.connect(str(tmp_path / "old.duckdb")).close()          # DuckDB's default, 256 KiB
    with db.open_write(tmp_path / "old.duckdb") as con:
        assert con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0] == 256 << 10


def test_ingest_keeps_nan_null_and_infinity_apart(tmp_path):
    import math
    from cometx_mirror import model
    from cometx_mirror.index import ingest
    exp = model.Experiment(source="t", workspace="w", project="p", key="k", started_at=1_700_000_000_000)
    for step, value in enumerate([1.5, math.nan, None, math.inf, -math.inf, 2]):
        exp.metrics.add("m", value, step=None if step == 2 else step, timestamp=1_700_000_000_000 + step)
    exp.assets.append(model.Asset(asset_id="a", file_name="f", type="asset", size=2 ** 40, object_id=None))
    exp.tags = ["x", "y"]
    with db.open_write(tmp_path / "i.duckdb") as con:
        ingest.ingest_experiment(con, exp, "m" * 32)
        rows = con.execute("SELECT step, value IS NULL, isnan(value), value, epoch, context, "
                           "epoch_ms(timestamp) FROM metrics ORDER BY timestamp").fetchall()
        assert [r[:3] for r in rows] == [(0, False, False), (1, False, True), (None, True, None),
                                         (3, False, False), (4, False, False), (5, False, False)]
        assert [r[3] for r in rows][3:] == [math.inf, -math.inf, 2.0]
        assert {r[4] for r in rows} == {None} and {r[5] for r in rows} == {None}   # columns never filled
        assert [r[6] for r in rows] == [1_700_000_000_000 + i for i in range(6)]
        assert con.execute("SELECT size, step FROM assets").fetchone() == (2 ** 40, None)
        assert con.execute("SELECT epoch_ms(started_at) FROM experiments").fetchone()[0] == 1_700_000_000_000
        assert sorted(t for (t,) in con.execute("SELECT tag FROM tags").fetchall()) == ["x", "y"]


def test_an_index_at_schema_version_1_is_migrated(mirror):
    with duckdb.connect(str(mirror.index_path)) as con:      # what version 1 of this tool left behind
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                    "applied_at TIMESTAMP DEFAULT current_timestamp)")
        version, name, sql = schema.MIGRATIONS[0]
        assert version == 1
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (1, ?)", [name])
        con.execute("INSERT INTO projects (source, workspace, project) VALUES ('coretest', 'old', 'p')")
    with db.open_read(mirror.index_path) as con:
        assert db.schema_version(con) == schema.LATEST > 1
        assert con.execute("SELECT * FROM workspaces").fetchall() == [("coretest", "old")]
        assert [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()] \
            == [v for v, _, _ in schema.MIGRATIONS]


def test_an_index_from_a_newer_version_is_refused(mirror):
    with db.open_write(mirror.index_path) as con:
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    with pytest.raises(db.IndexUnavailable, match="newer than this version"):
        with db.open_write(mirror.index_path):
            pass


def test_index_behind_the_refs_catches_up_on_read(filled):
    # A crash after the ref update, before the index ingest: the ref is ahead.
    labels = {k.split(":", 1)[1]: v for k, v in filled.current_manifests().items()}
    labels["experiment/ws/proj/late"] = add_experiment(filled, "ws", "proj", "late", name="late")
    commit(filled, "ws", labels, refresh=False)
    keys = [r["key"] for r in browse.ls(filled, "ws/proj").result.records()]
    assert "late" in keys


@pytest.mark.parametrize("damage", ["missing", "garbage", "empty"])
def test_missing_or_corrupt_index_is_rebuilt_by_a_reader(filled, damage):
    before = dump(filled)
    if damage == "missing":
        filled.index_path.unlink()
    else:
        filled.index_path.write_bytes(b"" if damage == "empty" else b"not a database" * 500)
    note = browse.catch_up(filled)
    # a missing index is simply rebuilt; a damaged one is first moved aside (kept to look at)
    assert note.startswith("rebuilt the index") if damage == "missing" else \
        note.startswith("the index was damaged: moved it aside") and "rebuilt it from the refs" in note
    assert dump(filled) == before


def test_refresh_drops_labels_no_ref_names(filled):
    commit(filled, "ws", {"project/ws/proj": filled.current_manifests()["coretest:project/ws/proj"]})
    with db.open_read(filled.index_path) as con:
        assert con.execute("SELECT count(*) FROM experiments").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] == 0


HOLD_INDEX = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(60)
""")


def test_readers_say_clearly_when_a_writer_holds_the_index(filled, monkeypatch):
    monkeypatch.setattr(browse, "READ_WAIT", 0.3)
    proc = subprocess.Popen([sys.executable, "-c", HOLD_INDEX, str(filled.index_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        with pytest.raises(db.IndexBusy, match=rf"index is busy: another cometx-mirror process \(pid {proc.pid}\)"):
            browse.ls(filled)
        with pytest.raises(db.IndexBusy):
            browse.query(filled, "SELECT 1")
    finally:
        proc.kill()
        proc.wait()
    assert browse.query(filled, "SELECT count(*) FROM experiments").rows == [(3,)]


def test_readers_read_while_a_fetch_holds_the_write_lock(filled):
    labels = {k.split(":", 1)[1]: v for k, v in filled.current_manifests().items()}
    labels["experiment/ws/proj/late"] = add_experiment(filled, "ws", "proj", "late")
    commit(filled, "ws", labels, refresh=False)
    with filled.write_lock("fetch comet"):
        # the writer will refresh the index itself; the reader sees the index as it is
        assert len(browse.ls(filled, "ws/proj").result.rows) == 2
    assert len(browse.ls(filled, "ws/proj").result.rows) == 3


def test_metrics_round_trip_through_arrow(filled):
    rows = browse.query(filled, f"""SELECT name, step, epoch, epoch_ms(timestamp), value, context
                                    FROM metrics WHERE exp_id LIKE '%{KEY1}' ORDER BY timestamp""").rows
    assert len(rows) == 40
    assert rows[0][:4] == ("loss", 0, 0, 1_700_000_000_000) and rows[0][5] is None
    assert rows[1][0] == "acc" and rows[1][5] == "train"


def test_texts_are_inlined_for_sql(filled):
    rows = browse.query(filled, "SELECT DISTINCT kind, content FROM texts ORDER BY kind").rows
    assert ("output", "line 1\nline 2\n") in rows


def test_sandboxed_reader_cannot_touch_files(filled, tmp_path):
    (tmp_path / "secret.csv").write_text("a\n1\n")
    with pytest.raises(Exception, match="disabled by configuration"):
        browse.query(filled, f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')")


def test_refresh_is_a_no_op_when_nothing_changed(filled):
    assert indexer.refresh(filled) == 0

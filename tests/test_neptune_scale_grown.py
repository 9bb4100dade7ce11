"""A neptune-scale queue that grew since the last fetch: the fetch folds only the new operations (from the
fold it saved, sources/neptune/scale_resume.py) and the index appends only their points
(scale.grown_since); the manifest is the one a fresh fetch writes, and the index a fresh fetch's and a
reindex's. A queue that did not simply grow is folded whole. Queues written by the real neptune-scale
client offline."""
from __future__ import annotations

import sqlite3

import pytest
from neptune_fixtures import _run_script, fetch_cleanly, fresh_fetch, index_rows, only_manifest, q

from cometx_mirror.sources.neptune import scale, scale_resume
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch

LOOP = """
from neptune_scale import Run
run = Run(project="ws/grow", run_id="grow-1", mode="offline", experiment_name="exp-g")
run.log_configs({"params/lr": 0.001, "params/opt": "adam"})
for i in range(2500):
    run.log_metrics({"train/loss": 1.0 / (i + 1), "train/acc": i / 2500}, step=i)
    if i % 100 == 0:
        run.log_string_series({"notes/log": f"at {i}"}, step=i)
run.add_tags(["a", "b"])
run.assign_files({"files/cfg": "cfg.yaml"})
run.close()
"""


def _grow(db, steps: range, histogram: bool = False) -> None:
    """More steps logged to the queue by neptune-scale's own repository, a new series among them."""
    from neptune_api.proto.neptune_pb.ingest.v1 import common_pb2 as pb
    from neptune_scale.sync.operations_repository import OperationsRepository
    repo = OperationsRepository(db)
    updates = []
    for i in steps:
        update = pb.UpdateRunSnapshot(step=pb.Step(whole=i, micro=0))
        update.timestamp.FromMilliseconds(1_715_000_000_000 + i)
        update.append["train/loss"].float64 = 1.0 / (i + 1)
        update.append["train/new"].float64 = -0.0 if i % 2 else 7.5
        if i % 50 == 0:
            update.append["notes/log"].string = f"later {i}"
        if histogram:
            update.append["weights/h"].histogram.bin_edges.extend([0.0, 1.0])
            update.append["weights/h"].histogram.counts.values.extend([3])
        updates.append(update)
    repo.save_update_run_snapshots(updates)
    repo.close(cleanup_files=False)


@pytest.fixture
def queue(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    (folder / "cfg.yaml").write_text("lr: 0.001\n")
    _run_script(folder, LOOP)
    return folder, next(folder.glob(f".neptune/*/{scale.DB_NAME}"))


@pytest.fixture
def fed(monkeypatch):
    """The operations the store's fold is fed, and the segments the index reads points from."""
    counts = {"ops": 0, "segments": 0}
    feed_segment, segment_points = scale._Fold.feed_segment, scale._segment_points

    def feed(self, stamps, types, blobs):
        counts["ops"] += len(stamps)
        return feed_segment(self, stamps, types, blobs)

    def points(*args):
        counts["segments"] += 1
        return segment_points(*args)
    monkeypatch.setattr(scale._Fold, "feed_segment", feed)
    monkeypatch.setattr(scale, "_segment_points", points)
    return counts


def test_a_grown_queue_folds_and_indexes_only_its_new_operations(tmp_path, queue, fed):
    folder, db = queue
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, folder)
    before = only_manifest(mirror)
    assert len(before["segments"]) == 3 and "resume" in before       # 2,500 steps and more: 3 segments

    _grow(db, range(2500, 3200))                  # into a fourth segment
    fed.update(ops=0, segments=0)
    assert fetch_cleanly(mirror, folder).changed == 1
    assert fed["ops"] == 700                       # the new operations alone were folded
    assert fed["segments"] == 2                    # the index read points from the last old segment on
    after = only_manifest(mirror)
    fresh = fresh_fetch(tmp_path, folder, "fresh")
    assert after == only_manifest(fresh)               # the manifest a fresh fetch writes, byte for byte
    assert after["segments"][:2] == before["segments"][:2]
    assert index_rows(mirror) == index_rows(fresh)
    assert q(mirror, "SELECT count(*) FROM metrics WHERE name = 'train/new'") == [(700,)]
    assert q(mirror, "SELECT count(*) FROM metrics WHERE name = 'train/loss'") == [(3200,)]
    [(notes,)] = q(mirror, "SELECT object_id FROM assets WHERE file_name = 'notes/log.jsonl'")
    assert mirror.objects.get_bytes(notes).count(b"\n") == 25 + 14  # the series went on from its saved text

    _grow(db, range(3200, 3201))                  # grown again, within the last segment
    fed.update(ops=0, segments=0)
    fetch_cleanly(mirror, folder)
    assert (fed["ops"], fed["segments"]) == (1, 1)
    indexed = index_rows(mirror)
    indexer.rebuild(mirror)                        # a reindex folds every stored operation again
    assert index_rows(mirror) == indexed == index_rows(fresh_fetch(tmp_path, folder, "fresh2"))


def test_a_queue_that_did_not_only_grow_is_folded_whole(tmp_path, queue, fed):
    folder, db = queue
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, folder)
    with sqlite3.connect(db) as con:               # an early operation gone (rewritten, or synced away)
        con.execute("DELETE FROM run_operations WHERE sequence_id = (SELECT min(sequence_id) + 5 "
                    "FROM run_operations)")
    stored, indexed = only_manifest(mirror), index_rows(mirror)
    kept = run_fetch(mirror, "neptune", str(folder), FetchOptions())     # less than stored: not taken
    assert kept.failed == 1 and "kept the stored version" in kept.errors[0] and "operations" in kept.errors[0]
    assert (only_manifest(mirror), index_rows(mirror)) == (stored, indexed)
    fed["ops"] = 0
    assert not run_fetch(mirror, "neptune", str(folder), FetchOptions(allow_shrink=True)).errors
    assert fed["ops"] > 2000 and index_rows(mirror) == index_rows(fresh_fetch(tmp_path, folder, "fresh"))

    (folder / "cfg.yaml").write_text("lr: 0.002\n")    # an uploaded file changed: its refs are remade
    _grow(db, range(2500, 2510))
    fed["ops"] = 0
    fetch_cleanly(mirror, folder)
    assert fed["ops"] > 2000 and index_rows(mirror) == index_rows(fresh_fetch(tmp_path, folder, "fresh2"))


def test_a_histogram_series_is_folded_whole_each_time(tmp_path, queue, fed):
    """A histogram series' blob is a JSON array, closed once stored: no fold is saved to go on from."""
    folder, db = queue
    _grow(db, range(2500, 2510), histogram=True)
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, folder)
    assert "resume" not in only_manifest(mirror)
    _grow(db, range(2510, 2520), histogram=True)
    fed["ops"] = 0
    fetch_cleanly(mirror, folder)
    assert fed["ops"] > 2000 and index_rows(mirror) == index_rows(fresh_fetch(tmp_path, folder, "fresh"))


def test_an_unchanged_queue_folds_nothing_and_one_written_in_wal_mode_is_seen(tmp_path, queue, fed):
    """Fetched again untouched, the queue is counted in SQL and its last segment read: nothing is
    folded or written. A client writing in WAL mode (the database file as it was, the new operation
    in its -wal file) is seen; so is a changed upload."""
    folder, db = queue
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, folder)
    before, fed["ops"] = set(mirror.objects.ids()), 0
    assert fetch_cleanly(mirror, folder).unchanged == 1 and fed["ops"] == 0 and set(mirror.objects.ids()) == before

    writer = sqlite3.connect(db)
    writer.execute("PRAGMA journal_mode=WAL")
    row = writer.execute("SELECT * FROM run_operations ORDER BY sequence_id DESC LIMIT 1").fetchone()
    writer.execute(f"INSERT INTO run_operations VALUES ({', '.join('?' * len(row))})", (row[0] + 1, *row[1:]))
    writer.commit()
    assert db.with_name(db.name + "-wal").stat().st_size > 0
    assert fetch_cleanly(mirror, folder).changed == 1 and fed["ops"] == 1
    writer.close()
    assert index_rows(mirror) == index_rows(fresh_fetch(tmp_path, folder, "fresh-wal"))
    assert fetch_cleanly(mirror, folder).unchanged == 1

    (folder / "cfg.yaml").write_text("lr: 0.002\n")    # the file assign_files named, changed
    fed["ops"] = 0
    assert fetch_cleanly(mirror, folder).changed == 1 and fed["ops"] > 2000
    [(object_id,)] = q(mirror, "SELECT object_id FROM assets WHERE file_name = 'files/cfg.yaml'")
    assert mirror.objects.get_bytes(object_id) == b"lr: 0.002\n"
    assert index_rows(mirror) == index_rows(fresh_fetch(tmp_path, folder, "fresh"))


def test_a_saved_fold_whose_text_is_gone_folds_whole(tmp_path, queue, fed):
    """The objects a saved fold's texts go on from are kept by gc as the index's: one lost (the index
    thrown away, then gc) makes the next fetch fold the queue whole, not fail."""
    folder, db = queue
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, folder)
    [notes] = scale_resume.texts(scale_resume.decode(mirror.objects.get_bytes(only_manifest(mirror)["resume"])))
    mirror.objects.remove(notes)
    _grow(db, range(2500, 2600))
    fed["ops"] = 0
    fetch_cleanly(mirror, folder)
    assert fed["ops"] > 2000
    [(grown_notes,)] = q(mirror, "SELECT object_id FROM assets WHERE file_name = 'notes/log.jsonl'")
    assert mirror.objects.get_bytes(grown_notes).count(b"\n") == 25 + 2
    assert index_rows(mirror) == index_rows(fresh_fetch(tmp_path, folder, "fresh"))

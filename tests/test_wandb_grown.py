"""A grown W&B offline run: the second fetch stores and folds only the new tail of its `.wandb` log.

One run is made by the real wandb client offline; a live run's log is the finished one cut
short (wandb only appends), so the first fetch sees a prefix and the second the whole file.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import pytest

from cometx_mirror.index import ingest
from cometx_mirror.index.db import open_read
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.sources.wandb import history_bulk, history_spill, log_parts, offline, record_shapes, records
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch
from cometx_mirror.sync.indexer import refresh

GENERATOR = r'''
import wandb
run = wandb.init(project="grow", entity="ent-g", config={"lr": 0.1}, notes="grown run")
for i in range(1500):
    wandb.log({"loss": 1.0 / (i + 1), "acc": i})
print("a console line")
run.summary["best"] = 7
run.finish()
'''

TABLES = ("experiments", "params", "others", "metrics", "texts", "system_details", "tags", "assets")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb-grown")
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(root),
               WANDB_DATA_DIR=str(root / "data"), WANDB_CACHE_DIR=str(root / "cache"),
               WANDB_CONFIG_DIR=str(root / "config"))
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT"):
        env.pop(name, None)
    (root / "gen.py").write_text(GENERATOR)
    subprocess.run([sys.executable, str(root / "gen.py")], env=env, check=True, timeout=240, cwd=str(root),
                   stdout=subprocess.DEVNULL)
    return next(p for p in (root / "wandb").iterdir() if p.name.startswith("offline-run-"))


def _mid_record(log) -> int:
    """A length a little past half the log that ends inside a record (wandb's log varies by run: a
    fixed cut can land on a record's end, and then nothing is torn)."""
    data = log.read_bytes()
    cut = len(data) // 2 + 3
    while True:
        reader = records.LogReader(io.BytesIO(data[:cut]))
        list(reader)
        if reader.complete_end < cut:
            return cut
        cut += 1


def _live_copy(run_folder, dest, size: int):
    """The run folder as a live run would leave it with `size` bytes of its log written."""
    shutil.copytree(run_folder, dest, symlinks=True)
    log = next(dest.glob("run-*.wandb"))
    with open(next(run_folder.glob("run-*.wandb")), "rb") as f:
        log.write_bytes(f.read(size))
    return log


def _grow(run_folder, log) -> None:
    log.write_bytes(next(run_folder.glob("run-*.wandb")).read_bytes())


def _rows(mirror):
    out = {}
    with open_read(mirror.index_path) as con:
        for table in TABLES:
            cols = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall() if c[0] != "manifest_id"]
            out[table] = sorted(map(repr, con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()))
    return out


def _manifest(mirror):
    (snapshot_id,) = [s for r, s in mirror.refs.items() if r.startswith("wandb/offline/")]
    (manifest_id,) = [m for label, m in mirror.snapshot(snapshot_id).manifests.items()
                      if label.startswith("experiment/")]
    return mirror.get_json(manifest_id)


@pytest.fixture
def folds(monkeypatch):
    """Every fold the fetch makes: (start, bytes read)."""
    seen = []
    real = offline.fold

    def counting(*args, **kwargs):
        log = real(*args, **kwargs)
        seen.append((kwargs.get("start", 0), log.bytes_read))
        return log
    monkeypatch.setattr(offline, "fold", counting)
    return seen


@pytest.fixture
def indexing(monkeypatch):
    """What indexing reads of the stored log (bytes out of its objects) and how each run went
    in: [bytes], [append_metrics flags]."""
    read, appends = [0], []
    real_read, real_ingest = log_parts._Concatenated._read_parts, ingest.ingest_experiment

    def counting_read(self, n=-1):
        data = real_read(self, n)
        read[0] += len(data)
        return data

    def noting_ingest(*args, append_metrics=False, **kwargs):
        appends.append(append_metrics)
        return real_ingest(*args, append_metrics=append_metrics, **kwargs)
    monkeypatch.setattr(log_parts._Concatenated, "_read_parts", counting_read)
    monkeypatch.setattr(ingest, "ingest_experiment", noting_ingest)
    return read, appends


@pytest.fixture
def shape_reads(monkeypatch):
    """How many history records were read by their byte shape (SPEED's fast path), not protobuf."""
    count = [0]
    real = record_shapes.HistoryShape.read

    def counting(self, payload):
        got = real(self, payload)
        count[0] += got is not None
        return got
    monkeypatch.setattr(record_shapes.HistoryShape, "read", counting)
    pieces = history_bulk.ChunkReader.pieces

    def counting_chunks(self, chunk):      # records the chunked path read from their bytes count too
        for kind, piece in pieces(self, chunk):
            if kind == "arrays":
                count[0] += len(piece[1]) // max(len(piece[0]), 1)
            yield kind, piece
    monkeypatch.setattr(history_bulk.ChunkReader, "pieces", counting_chunks)
    return count


def _record_boundary(log, near: int) -> int:
    """The end of the last whole record in the log's first `near` bytes."""
    with open(log, "rb") as f:
        reader = records.LogReader(log_parts.Range(f, near))
        list(reader)
    return reader.complete_end


@pytest.fixture(scope="module")
def fresh_rows(run_folder, tmp_path_factory):
    mirror = Mirror.init(tmp_path_factory.mktemp("fresh"))
    result = run_fetch(mirror, "wandb", str(run_folder), FetchOptions())
    assert result.errors == []
    return _rows(mirror), _manifest(mirror)


def test_a_grown_log_is_read_and_stored_from_its_tail(run_folder, fresh_rows, tmp_path, folds, indexing,
                                                     shape_reads):
    total = next(run_folder.glob("run-*.wandb")).stat().st_size
    cut = _record_boundary(next(run_folder.glob("run-*.wandb")), total * 6 // 10)    # wandb flushed whole records
    log = _live_copy(run_folder, tmp_path / run_folder.name, cut)
    mirror = Mirror.init(tmp_path / "mirror")
    assert run_fetch(mirror, "wandb", str(log.parent), FetchOptions()).errors == []
    first = _manifest(mirror)
    assert first["log"]["size"] == cut and "parts" not in first["log"]
    assert first["extent"]["points"] < fresh_rows[1]["extent"]["points"]
    folds.clear()
    indexing[0][0], indexing[1][:] = 0, []
    shape_reads[0] = 0

    _grow(run_folder, log)
    with pytest.MonkeyPatch.context() as mp:      # the tail read from the store (the spill's way: its own test)
        mp.setattr(history_spill, "take_spans", lambda *args: None)
        result = run_fetch(mirror, "wandb", str(log.parent), FetchOptions())
    assert result.errors == [] and result.changed == 1
    # the tail's rows went the byte-shape way, as a whole log's do (all but a few, decoded to learn them)
    tail_rows = fresh_rows[1]["extent"]["points"] - first["extent"]["points"]
    assert tail_rows * 0.9 <= shape_reads[0] <= tail_rows
    # indexing read the tail alone (the small tables come from the fold the fetch saved)
    # and appended its points to the rows of the prefix
    assert 0 < indexing[0][0] <= total - cut and indexing[1] == [True]
    # one fold, from where the first stopped, reading at most one block before the stored end
    ((start, read),) = folds
    assert 0 < start <= cut and read <= total - cut + records.BLOCK
    grown = _manifest(mirror)
    assert [p["size"] for p in grown["log"]["parts"]] == [cut, total - cut]
    assert grown["log"]["parts"][0]["object"] == first["log"]["object"]     # the prefix is not rewritten
    assert grown["extent"] == fresh_rows[1]["extent"]
    with log_parts.open_log(mirror, grown["log"]) as stream:
        assert stream.read() == log.read_bytes()
    assert _rows(mirror) == fresh_rows[0]
    mirror.index_path.unlink()                     # reindex: the same rows from the objects alone
    (mirror.root / "index.stamp").unlink(missing_ok=True)
    indexing[1][:] = []
    refresh(mirror)
    assert _rows(mirror) == fresh_rows[0] and indexing[1] == [False]
    # the saved fold gives the small tables exactly as folding the stored log does
    mirror.index_path.unlink()
    (mirror.root / "index.stamp").unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(offline, "saved_state", lambda mirror, entry: None)
        refresh(mirror)
    assert _rows(mirror) == fresh_rows[0]

    folds.clear()                                   # unchanged since: nothing folded, nothing new
    result = run_fetch(mirror, "wandb", str(log.parent), FetchOptions())
    assert folds == [] and result.unchanged == 1 and result.changed == 0


def test_a_torn_tail_is_read_again_once_whole(run_folder, fresh_rows, tmp_path, folds, indexing):
    total = next(run_folder.glob("run-*.wandb")).stat().st_size
    cut = _mid_record(next(run_folder.glob("run-*.wandb")))
    log = _live_copy(run_folder, tmp_path / run_folder.name, cut)    # mid-record
    mirror = Mirror.init(tmp_path / "mirror")
    run_fetch(mirror, "wandb", str(log.parent), FetchOptions())
    first = _manifest(mirror)
    state = mirror.get_json(first["log"]["resume"]["object"])
    assert state["complete_end"] < cut
    with open(log, "rb") as f:     # the last record stored is cut short: a torn tail
        torn = records.LogReader(f)
        list(torn)
        assert torn.complete_end == state["complete_end"]
    folds.clear()
    indexing[0][0] = 0
    _grow(run_folder, log)
    run_fetch(mirror, "wandb", str(log.parent), FetchOptions())
    assert [start for start, _ in folds] == [state["complete_end"]]
    assert _manifest(mirror)["extent"] == fresh_rows[1]["extent"]
    assert _rows(mirror) == fresh_rows[0]
    # the torn record's start came from the saved fold, not the prefix: only the tail was read
    assert indexing[1][-1] is True and indexing[0][0] <= total - cut


KILLED_FETCH = """
import sys
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.sync.fetch import run_fetch
run_fetch(Mirror(sys.argv[1]), "wandb", sys.argv[2], FetchOptions())
"""


def test_a_fetch_killed_while_appending_leaves_the_index_as_it_was(run_folder, fresh_rows, tmp_path, indexing):
    total = next(run_folder.glob("run-*.wandb")).stat().st_size
    log = _live_copy(run_folder, tmp_path / run_folder.name,
                     _record_boundary(next(run_folder.glob("run-*.wandb")), total // 3))
    mirror = Mirror.init(tmp_path / "mirror")
    run_fetch(mirror, "wandb", str(log.parent), FetchOptions())
    before = _rows(mirror)
    _grow(run_folder, log)
    env = dict(os.environ, COMETX_MIRROR_FAULT="index_metrics_in")
    killed = subprocess.run([sys.executable, "-c", KILLED_FETCH, str(mirror.root), str(log.parent)], env=env,
                            timeout=120, capture_output=True)
    assert killed.returncode == 137          # killed with the tail's points in, the rest not yet
    assert _rows(mirror) == before           # the half-done transaction is gone
    indexing[1][:] = []
    refresh(mirror)                          # the next write catches up: appending, to the same rows
    assert indexing[1] == [True] and _rows(mirror) == fresh_rows[0]


def test_a_rewritten_log_is_read_whole(run_folder, fresh_rows, tmp_path, folds, indexing):
    total = next(run_folder.glob("run-*.wandb")).stat().st_size
    cut = _mid_record(next(run_folder.glob("run-*.wandb")))
    log = _live_copy(run_folder, tmp_path / run_folder.name, cut)
    with open(log, "rb") as f:
        reader = records.LogReader(f)
        list(reader)
    assert reader.complete_end < cut
    data = bytearray(log.read_bytes())
    data[-1] ^= 0xFF     # in the torn record, so still a readable log, but no longer the real log's prefix
    log.write_bytes(bytes(data))
    mirror = Mirror.init(tmp_path / "mirror")
    run_fetch(mirror, "wandb", str(log.parent), FetchOptions())
    folds.clear()
    _grow(run_folder, log)
    run_fetch(mirror, "wandb", str(log.parent), FetchOptions())
    assert [start for start, _ in folds] == [0]
    assert folds[0][1] >= total
    manifest = _manifest(mirror)
    assert "parts" not in manifest["log"] and manifest["log"]["size"] == total
    assert _rows(mirror) == fresh_rows[0]
    assert indexing[1][-1] is False     # not a growth of what the index holds: its rows replaced whole

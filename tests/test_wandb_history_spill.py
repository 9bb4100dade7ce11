"""The W&B log is read from the file once: stored as the fold reads it (log_parts.StoringRange), and the
spans the fold frames are spilled (history_spill) for the index's stream, which then frames nothing
again. Every test compares the index's rows with those of a fetch that reads the stored log instead."""
from __future__ import annotations

import shutil
from collections import OrderedDict

import duckdb
import pytest
import xxhash

from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.sources.spill import Spill
from cometx_mirror.sources.wandb import history_spill, log_parts, records
from cometx_mirror.sources.wandb.history_spill import HistorySpill
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch

from bench.run_writers import write_wandb_run


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    # several 2 MiB spans, and a second run of odd values (texts that are not plain floats, NaN, huge steps)
    root = tmp_path_factory.mktemp("src") / "wandb"
    write_wandb_run(root, 1_500, 4, odd=True, run_id="spill2")
    return write_wandb_run(root, 24_000, 4, run_id="spill1")


def _metrics(mirror) -> list:
    con = duckdb.connect(str(mirror.index_path), read_only=True)
    try:
        cols = [c[0] for c in con.execute("DESCRIBE metrics").fetchall() if c[0] != "manifest_id"]
        return list(map(repr, con.execute(f"SELECT {', '.join(cols)} FROM metrics ORDER BY ALL").fetchall()))
    finally:
        con.close()


@pytest.fixture
def store_reads(monkeypatch):
    """Bytes the index read out of the stored log, and how many spilled reads served it."""
    read, served = [0], [0]
    real_read, real_take = log_parts._Concatenated._read_parts, history_spill.take_spans

    def counting_read(self, n=-1):
        data = real_read(self, n)
        read[0] += len(data)
        return data

    def counting_take(*args):
        spans = real_take(*args)
        served[0] += spans is not None
        return spans
    monkeypatch.setattr(log_parts._Concatenated, "_read_parts", counting_read)
    monkeypatch.setattr(history_spill, "take_spans", counting_take)
    return read, served


@pytest.fixture(scope="module")
def from_the_store(run_folder, tmp_path_factory):
    """The rows of a fetch that spills nothing: every point read from the stored log."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(HistorySpill, "put_span", lambda self, span: None)
        mirror = Mirror.init(tmp_path_factory.mktemp("store"))
        assert run_fetch(mirror, "wandb", str(run_folder.parent), FetchOptions()).errors == []
    return _metrics(mirror)


def test_a_fetch_indexes_the_spans_it_spilled_as_it_would_from_the_store(run_folder, from_the_store, tmp_path,
                                                                        store_reads, monkeypatch):
    log = next(run_folder.glob("run-*.wandb"))
    assert log.stat().st_size > 3 * records.BLOCK * 64          # several spans
    monkeypatch.setattr(Spill, "_open", OrderedDict())      # this test's spills only
    mirror = Mirror.init(tmp_path / "m")
    assert run_fetch(mirror, "wandb", str(run_folder.parent), FetchOptions()).errors == []
    assert store_reads[1] == [2] and store_reads[0] == [0]      # served by the spill: no log read again
    assert _metrics(mirror) == from_the_store
    assert len(from_the_store) >= 4 * 25_500 * 0.9
    # the log stored in the pass that folded it is the file, byte for byte
    data = log.read_bytes()
    assert mirror.objects.get_bytes(xxhash.xxh3_128(data).hexdigest()) == data
    assert not Spill._open                                      # the spill was dropped once read


def test_a_spill_closed_before_the_index_reads_it_leaves_the_store_to_read(run_folder, from_the_store, tmp_path,
                                                                         store_reads, monkeypatch):
    monkeypatch.setattr(Spill, "OPEN_AT_MOST", 0)      # each spill closed as soon as another opens
    mirror = Mirror.init(tmp_path / "m")
    assert run_fetch(mirror, "wandb", str(run_folder.parent), FetchOptions()).errors == []
    assert store_reads[1] == [0] and store_reads[0][0] > 0
    assert _metrics(mirror) == from_the_store


def test_a_grown_log_spills_its_tail_and_indexes_as_a_fresh_fetch(run_folder, from_the_store, tmp_path,
                                                                 store_reads):
    whole = next(run_folder.glob("run-*.wandb"))
    with open(whole, "rb") as f:                        # cut at a record boundary, as wandb flushes
        reader = records.LogReader(log_parts.Range(f, whole.stat().st_size * 6 // 10))
        list(reader)
    live = tmp_path / "live" / run_folder.name
    shutil.copytree(run_folder, live)
    log = next(live.glob("run-*.wandb"))
    log.write_bytes(whole.read_bytes()[:reader.complete_end])
    mirror = Mirror.init(tmp_path / "m")
    assert run_fetch(mirror, "wandb", str(live), FetchOptions()).errors == []
    log.write_bytes(whole.read_bytes())
    store_reads[0][0], store_reads[1][0] = 0, 0
    result = run_fetch(mirror, "wandb", str(live), FetchOptions())
    assert result.errors == [] and result.changed == 1
    assert store_reads[1] == [1] and store_reads[0] == [0]       # the tail's spans came from the spill
    assert _metrics(mirror) == [row for row in from_the_store if "spill1" in row]


def test_a_log_cut_short_is_stored_whole_and_read_as_before(run_folder, tmp_path):
    whole = next(run_folder.glob("run-*.wandb")).read_bytes()
    live = tmp_path / "live" / run_folder.name
    shutil.copytree(run_folder, live)
    log = next(live.glob("run-*.wandb"))
    log.write_bytes(whole[:len(whole) // 2 + 5])        # a record torn in the middle
    mirror = Mirror.init(tmp_path / "m")
    assert run_fetch(mirror, "wandb", str(live), FetchOptions()).errors == []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(HistorySpill, "put_span", lambda self, span: None)
        other = Mirror.init(tmp_path / "o")
        assert run_fetch(other, "wandb", str(live), FetchOptions()).errors == []
    assert _metrics(mirror) == _metrics(other) and _metrics(mirror)
    cut = whole[:len(whole) // 2 + 5]
    assert mirror.objects.get_bytes(xxhash.xxh3_128(cut).hexdigest()) == cut

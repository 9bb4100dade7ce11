"""W&B offline points stream into the index in batches, giving the rows the eager reader gave."""
from __future__ import annotations

import json
import math

import pytest

from cometx_mirror import metric_stream
from cometx_mirror.index.db import open_read
from cometx_mirror.model import Metrics
from cometx_mirror.sources import get_normalizer
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.sources.wandb import normalize
from cometx_mirror.sources.wandb.records import fold, is_history
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch

from bench.run_writers import write_wandb_run


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory):
    """A 900-row run with ints, bools, NaN/Infinity, strings, a nested key, an epoch; fetched."""
    src = tmp_path_factory.mktemp("odd") / "wandb"
    write_wandb_run(src, 900, 4, odd=True)
    mirror = Mirror.init(tmp_path_factory.mktemp("mirror"))
    assert run_fetch(mirror, "wandb", str(src), FetchOptions()).errors == []
    return mirror


def _eager_metrics(mirror, manifest) -> Metrics:
    """The points as the reader gave them before streaming: every row folded, then mapped."""
    log = fold(mirror.objects.get_bytes(manifest["log"]["object"]))
    state = normalize.RunState(run={}, history=log.history, system=log.system)
    return normalize._metrics(state)[0]


def _manifest(mirror):
    [(label, mid)] = [(lbl, m) for lbl, m in mirror.current_manifests().items() if "experiment/" in lbl]
    return mirror.get_json(mid)


def test_streamed_points_equal_the_eager_reading(odd_run, monkeypatch):
    monkeypatch.setattr(metric_stream, "BATCH_POINTS", 1000)   # several batches
    manifest = _manifest(odd_run)
    exp = get_normalizer(manifest["normalizer"])(odd_run, manifest)
    assert isinstance(exp.metrics, metric_stream.MetricStream)
    batches = list(metric_stream.batches(exp.metrics))
    assert len(batches) > 3 and all(len(b) <= 1000 + 8 for b in batches)
    eager = _eager_metrics(odd_run, manifest)
    streamed = exp.metrics.whole()
    for column in ("name", "step", "epoch", "timestamp", "text", "context"):
        assert getattr(streamed, column) == getattr(eager, column), column
    assert [json.dumps(v) for v in streamed.value] == [json.dumps(v) for v in eager.value]
    assert {t for t in streamed.text if t} >= {"7", "true", "123456789012345678"}
    assert "train.m1" in set(streamed.name)         # the nested key took the row path


def test_index_rows_match_eager_and_survive_reindex(odd_run):
    manifest = _manifest(odd_run)
    eager = _eager_metrics(odd_run, manifest)
    query = "SELECT name, step, epoch, epoch_ms(timestamp), value::VARCHAR, text FROM metrics ORDER BY ALL"
    with open_read(odd_run.index_path) as con:
        before = con.execute(query).fetchall()
    assert len(before) == len(eager)
    assert manifest["extent"]["points"] == 900                  # history rows counted, not kept
    indexer.rebuild(odd_run)
    with open_read(odd_run.index_path) as con:
        assert con.execute(query).fetchall() == before


def test_history_records_told_from_their_tags():
    from wandb.proto import wandb_internal_pb2 as pb
    rec = pb.Record()
    rec.num = 300
    rec.history.item.add(key="a", value_json="1")
    assert is_history(rec.SerializeToString())
    rec = pb.Record()
    rec.num = 5
    rec.summary.update.add(key="_timestamp", value_json="1")
    rec.control.connection_id = "x"
    assert not is_history(rec.SerializeToString())
    assert is_history(b"\x08")                                   # damaged: decode and report it


def test_a_summary_value_then_a_key_under_it_merge_as_before():
    from test_wandb_records import record, write_log  # noqa: F401  (framing helper)
    from wandb.proto import wandb_internal_pb2 as pb
    first, second = pb.Record(), pb.Record()
    first.summary.update.add(key="opt", value_json='{"m": 0.8}')
    second.summary.update.add(nested_key=["opt", "lr"], value_json="0.1")
    log = fold(write_log([first.SerializeToString(), second.SerializeToString()]))
    assert log.summary == {"opt": {"m": 0.8, "lr": 0.1}}


def _odd_records() -> list[bytes]:
    """History records of every shape the bulk path must hand back or read exactly."""
    from wandb.proto import wandb_internal_pb2 as pb
    out = []
    for step in range(40):
        rec = pb.Record()
        h = rec.history
        shape = step % 8
        items = [("_step", str(step)), ("_timestamp", f"{1700000000 + step}.25")]
        items += [("loss", ["0.5", "7", "-0", "NaN", "-Infinity", "1e-07", "123456789012345678", "true"][shape])]
        items += [("epoch", "2.0" if shape < 4 else "3")]
        if shape == 1:
            items.append(("note", '"a {string}"'))
        if shape == 2:
            items.append(("nothing", "null"))
        for key, value in items:
            it = h.item.add()
            if shape == 3:
                it.key = key                      # the legacy writer
            else:
                it.nested_key.append(key)
            it.value_json = value
        if shape == 4:
            it = h.item.add()
            it.nested_key.extend(["train", "acc"])   # a nested key
            it.value_json = "0.25"
        if shape == 5:
            it = h.item.add()
            it.nested_key.append("typed")
            it.integer = 11                      # a typed value, no JSON
        if shape == 6:
            it = h.item.add()
            it.nested_key.append("loss")         # the same key twice
            it.value_json = "0.75"
        if shape == 7:
            del h.item[0]                         # no _step item: the record's step
            h.step.num = step
            it = h.item.add()
            it.nested_key.append("opt")
            it.value_json = '{"lr": 0.1}'         # a dict value: nested metrics
        rec.num = step + 1
        out.append(rec.SerializeToString())
    return out


def test_bulk_path_gives_the_row_mappings_points_for_every_shape(monkeypatch):
    from test_wandb_records import write_log
    from cometx_mirror.sources.wandb.records import iter_history
    data = write_log(_odd_records())
    eager = normalize._metrics(normalize.RunState(run={}, history=fold(data).history))[0]
    for size in (5, 1 << 16):                    # a batch per record or two; one batch
        monkeypatch.setattr(metric_stream, "BATCH_POINTS", size)
        state = normalize.RunState(run={}, history_records=lambda: iter_history(data))
        streamed = normalize._metrics(state)[0].whole()
        for column in ("name", "step", "epoch", "timestamp", "text", "context"):
            assert getattr(streamed, column) == getattr(eager, column), (size, column)
        assert [json.dumps(v) for v in streamed.value] == [json.dumps(v) for v in eager.value]
    assert {"7", "0", "true", "11"} <= set(eager.text)
    assert {"train.acc", "opt.lr", "typed"} <= set(eager.name)


def test_log_reader_resumes_at_the_last_whole_record_reading_only_the_tail():
    from test_wandb_records import record, write_log
    from cometx_mirror.sources.wandb.records import BLOCK, LogReader
    import io
    first = [record(history=[("_step", str(i)), ("loss", "0.5" * 40)]) for i in range(3000)]
    grown = write_log(first + [record(history=[("_step", str(i))]) for i in range(3000, 3010)])
    old = LogReader(io.BytesIO(write_log(first)))
    assert len(list(old)) == 3000
    torn = grown[:-3]                             # the grown log, its last record torn
    tail = LogReader(io.BytesIO(torn), start=old.complete_end)
    assert len(list(tail)) == 9
    assert tail.bytes_read <= len(torn) - old.complete_end + BLOCK < len(torn) // 10
    again = LogReader(io.BytesIO(grown), start=tail.complete_end)
    assert len(list(again)) == 1 and again.complete_end == len(grown)


# -- Neptune 1.x op logs --------------------------------------------------------------------------
def _neptune_expected(steps: int) -> list[tuple]:
    """(name, step, timestamp ms, value text) of every float point the run below holds, from its recipe."""
    from bench.run_writers import START
    out = []
    for s in range(3):
        for step in range(steps):
            value = 1.0 / (step + s + 1)
            if step % 7 == 3:
                value = {0: math.nan, 1: 7.0, 2: math.inf}[s]
            out.append((f"train/s{s}", step, int(round((START + step * 0.01) * 1000)), repr(value)))
    out = [p for p in out if p[0] != "train/s2"]                    # cleared, then three new points
    out += [("train/s2", i, 5000 + i, repr(float(i))) for i in range(3)]
    out = [p for p in out if p[0] != "train/s0"]                    # deleted, then two new points,
    out += [("train/s0", steps + i, 6000 + i, repr(0.5)) for i in range(2)]   # numbered on from before
    return sorted(out)


@pytest.fixture(scope="module")
def neptune_run(tmp_path_factory):
    """A 1.x queue of 3 float series × 700 steps (NaN, Infinity, ints, an unnumbered series), then a
    cleared series and a deleted one logged again; fetched."""
    from bench.run_writers import write_neptune_v1_run
    src = write_neptune_v1_run(tmp_path_factory.mktemp("neptune"), 700, 3, odd=True)
    [log] = src.glob(".neptune/offline/*/data-1.log")
    ops = [{"type": "ClearFloatLog", "path": ["train", "s2"]},
           {"type": "LogFloats", "path": ["train", "s2"], "values": [{"value": i, "ts": 5 + i / 1000}
                                                                    for i in range(3)]},
           {"type": "DeleteAttribute", "path": ["train", "s0"]},
           {"type": "LogFloats", "path": ["train", "s0"], "values": [{"value": 0.5, "ts": 6 + i / 1000}
                                                                    for i in range(2)]},
           {"type": "LogStrings", "path": ["notes"], "values": [{"value": "x", "step": 1.0, "ts": 7.0}]}]
    with open(log, "a") as f:
        for n, op in enumerate(ops):
            f.write(json.dumps({"obj": op, "version": 10_000 + n, "at": 8.0}) + "\n")
    mirror = Mirror.init(tmp_path_factory.mktemp("mirror"))
    assert run_fetch(mirror, "neptune", str(src), FetchOptions()).errors == []
    return mirror


def test_neptune_points_stream_across_batches_as_one_batch_gives_them(neptune_run, monkeypatch):
    manifest = _manifest(neptune_run)
    normalize_v1 = get_normalizer(manifest["normalizer"])
    monkeypatch.setattr(metric_stream, "BATCH_POINTS", 1 << 30)
    whole = normalize_v1(neptune_run, manifest).metrics
    whole = whole.whole()
    monkeypatch.setattr(metric_stream, "BATCH_POINTS", 200)
    exp = normalize_v1(neptune_run, manifest)
    assert isinstance(exp.metrics, metric_stream.MetricStream)
    batches = list(metric_stream.batches(exp.metrics))
    assert [len(b) for b in batches] == [200, 200, 200, 105]
    streamed = exp.metrics.whole()
    for column in ("name", "step", "timestamp", "text", "epoch"):
        assert getattr(streamed, column) == getattr(whole, column), column
    assert list(map(repr, streamed.value)) == list(map(repr, whole.value))
    got = sorted(zip(streamed.name, streamed.step, streamed.timestamp, map(repr, streamed.value)))
    assert got == _neptune_expected(700)
    assert [a.file_name for a in exp.assets] == ["notes.jsonl"]      # the string series stays a file


def test_neptune_index_rows_are_the_points_and_survive_reindex(neptune_run):
    query = "SELECT name, step, epoch_ms(timestamp), value FROM metrics ORDER BY ALL"
    with open_read(neptune_run.index_path) as con:
        before = con.execute(query).fetchall()
    assert sorted((n, s, t, repr(v)) for n, s, t, v in before) == _neptune_expected(700)
    indexer.rebuild(neptune_run)
    with open_read(neptune_run.index_path) as con:
        assert con.execute(query).fetchall() == before


def test_neptune_exporter_points_stream_in_batches(tmp_path, monkeypatch):
    """Two parts, two float series and a fractional step: batches of 150 give the recipe's points."""
    from neptune_fixtures import T0, row, sanitize, ts, write_part
    pdir = tmp_path / "exports" / "data" / sanitize("ws/proj")
    rows = [row("RUN-1", f"m/{k}", "float_series", step=i + (0.5 if i == 7 else 0), ts=ts(i),
                float_value=[math.nan, math.inf][k] if i == 3 else i / (k + 1)) for i in range(200) for k in (0, 1)]
    write_part(pdir, "RUN-1", 0, [row("RUN-1", "sys/id", "string", string_value="RUN-1")] + rows[:250])
    write_part(pdir, "RUN-1", 1, rows[250:] + [row("RUN-1", "notes", "string_series", step=1, ts=ts(1),
                                                   string_value="x")])
    mirror = Mirror.init(tmp_path / "mirror")
    assert run_fetch(mirror, "neptune", str(tmp_path / "exports"), FetchOptions()).errors == []
    monkeypatch.setattr(metric_stream, "BATCH_POINTS", 150)
    manifest = _manifest(mirror)
    exp = get_normalizer(manifest["normalizer"])(mirror, manifest)
    assert [len(b) for b in metric_stream.batches(exp.metrics)] == [150, 150, 100]
    t0 = int(T0.timestamp() * 1000)
    expected = sorted((f"m/{k}", i, t0 + i * 1000, repr([math.nan, math.inf][k] if i == 3 else i / (k + 1)))
                      for i in range(200) for k in (0, 1))
    m = exp.metrics.whole()
    assert sorted(zip(m.name, m.step, m.timestamp, map(repr, m.value))) == expected
    assert [a.file_name for a in exp.assets] == ["notes.jsonl"]
    with open_read(mirror.index_path) as con:
        rows_in_index = con.execute("SELECT name, step, epoch_ms(timestamp), value FROM metrics").fetchall()
    assert sorted((n, s, t, repr(v)) for n, s, t, v in rows_in_index) == expected


def test_neptune_scale_points_stream_in_batches(neptune_scale_offline, tmp_path, monkeypatch):
    mirror = Mirror.init(tmp_path / "mirror")
    assert run_fetch(mirror, "neptune", str(neptune_scale_offline), FetchOptions()).errors == []
    manifest = _manifest(mirror)
    normalize_scale = get_normalizer(manifest["normalizer"])
    one = normalize_scale(mirror, manifest).metrics.whole()        # read at once: one batch of 65,536
    monkeypatch.setattr(metric_stream, "BATCH_POINTS", 3)
    exp = normalize_scale(mirror, manifest)
    assert isinstance(exp.metrics, metric_stream.MetricStream)
    assert [len(b) for b in metric_stream.batches(exp.metrics)] == [3, 3, 2]
    m = exp.metrics.whole()
    assert (m.name, m.step, m.timestamp, m.value) == (one.name, one.step, one.timestamp, one.value)
    assert sorted(zip(m.name, m.step, m.value))[4:] == [("train/loss", i, 2.0 - i * 0.5) for i in range(4)]


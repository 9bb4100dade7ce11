"""The W&B reader's byte-shape fast path gives exactly the points (and summary) protobuf gives.

History records are read by HistoryShape (a regex per key list) when their bytes fit it,
else decoded; summary records of one shape are held and only the last of a run decoded.
Each test compares the fast path with the protobuf path on the same log.
"""
from __future__ import annotations

import json
import random

import pytest

from cometx_mirror import metric_stream
from cometx_mirror.sources.wandb import history_bulk, normalize, record_shapes, records
from cometx_mirror.sources.wandb.records import fold, iter_history

from test_reader_streaming import _odd_records
from test_wandb_records import write_log


def _points(data: bytes, fast: bool):
    history = iter_history(data) if fast else (h.record for h in iter_history(data))
    state = normalize.RunState(run={}, history_records=lambda: history)
    return normalize._metrics(state)[0].whole()


def _same_points(data: bytes) -> int:
    slow = _points(data, fast=False)
    fast = _points(data, fast=True)
    for column in ("name", "step", "epoch", "timestamp", "text", "context"):
        assert getattr(fast, column) == getattr(slow, column), column
    assert [json.dumps(v) for v in fast.value] == [json.dumps(v) for v in slow.value]
    return len(slow.name)


@pytest.fixture(autouse=True)
def _row_path(monkeypatch):
    """These tests are of the per-record byte shapes: the chunked path (history_bulk, its own
    tests in test_wandb_history_bulk.py) is turned off."""
    monkeypatch.setattr(history_bulk, "ENABLED", False)


@pytest.fixture
def shape_reads(monkeypatch):
    """How many history records the shapes read (rather than protobuf)."""
    counts = {"read": 0}
    read = record_shapes.HistoryShape.read

    def counting(self, payload):
        got = read(self, payload)
        counts["read"] += got is not None
        return got
    monkeypatch.setattr(record_shapes.HistoryShape, "read", counting)
    return counts


@pytest.mark.parametrize("size", [3, 1 << 16])
def test_every_odd_shape_is_read_by_shape_or_falls_back_with_equal_points(monkeypatch, shape_reads, size):
    monkeypatch.setattr(metric_stream, "BATCH_POINTS", size)
    assert _same_points(write_log(_odd_records())) > 40
    # plain numbers (wandb-core's and the legacy writer's) go the fast way; strings, true,
    # nested keys, typed values, a key twice and dict values are decoded (40 rows, 8 shapes)
    assert 10 <= shape_reads["read"] < 40


def _value(rng: random.Random) -> str:
    return rng.choice([
        "0.5", "-0", "0", "7", "-12", str(2 ** 64 + 3), str(-2 ** 63 - 1), "NaN", "-Infinity", "Infinity",
        "1e-320", "1E+5", "2.5e-3", "-1.5E-300", "1e400", repr(rng.random()), repr(rng.uniform(-1e9, 1e9)),
        "1" * 39, "2" * 41, "9" * 150, '"' + "s" * 130 + '"', "true", "false", "null", '"NaN"', "", "01",
        "1.", ".5", "+1", "- 1", '{"a": 1}', "[1, 2]", "nan", "inf"])


def _fuzz_records(rng: random.Random, rows: int) -> list[bytes]:
    from wandb.proto import wandb_internal_pb2 as pb
    key_sets = [["_step", "_timestamp", "loss"], ["_step", "_timestamp", "k" * 130, "acc"],
                ["_timestamp", "epoch", "m" * 100, "x"], ["_step", "é€ key", "y"], ["_step", "loss", "loss"]]
    out = []
    for row in range(rows):
        rec = pb.Record()
        rec.num = rng.choice([row + 1, 127, 128, 130, 2 ** 40])
        keys = rng.choice(key_sets)
        legacy = rng.random() < 0.2
        for key in keys:
            it = rec.history.item.add()
            if legacy:
                it.key = key
            else:
                it.nested_key.append(key)
            if key == "_step":
                it.value_json = rng.choice([str(row), str(row * 1000), "1.5", "-3"])
            elif key == "_timestamp":
                it.value_json = rng.choice([f"{1700000000 + row}.25", str(1700000000 + row), "NaN"])
            else:
                it.value_json = _value(rng)
        if rng.random() < 0.1:
            it = rec.history.item.add()
            it.nested_key.extend(["train", "acc"])
            it.value_json = _value(rng)
        if rng.random() < 0.5:
            rec.history.step.num = rng.choice([0, row, 300, 2 ** 35])
        out.append(rec.SerializeToString())
        if rng.random() < 0.3:           # a summary record between rows, as wandb-core writes
            summary = pb.Record()
            it = summary.summary.update.add()
            it.nested_key.append("loss")
            it.value_json = _value(rng)
            out.append(summary.SerializeToString())
    return out


def test_fuzzed_shapes_equal_the_protobuf_path(monkeypatch, shape_reads):
    rng = random.Random(15)
    data = write_log(_fuzz_records(rng, 1500))
    for size in (7, 1 << 16):
        monkeypatch.setattr(metric_stream, "BATCH_POINTS", size)
        assert _same_points(data) > 1500
    assert shape_reads["read"] > 150       # the fast path was taken, not only the fallback


def test_a_record_whose_lengths_do_not_add_up_is_not_read_by_its_shape(shape_reads):
    from wandb.proto import wandb_internal_pb2 as pb
    rec = pb.Record()
    rec.num = 1
    for key, value in (("_step", "1"), ("loss", "0.25")):
        it = rec.history.item.add()
        it.nested_key.append(key)
        it.value_json = value
    good = rec.SerializeToString()
    shape = record_shapes.HistoryShape(("_step", "loss"), False)
    assert shape.read(good) == ([b"1", b"0.25"], None)
    assert good[3] == len(good) - 4                  # the history's length byte
    for bad in (good[:3] + bytes([good[3] - 1]) + good[4:],          # the history ends early
                good.replace(b"\x82\x01\x040.25", b"\x82\x01\x030.25"),  # a text longer than its length
                good.replace(b"0.25", b"0x25"),                       # not a number
                good + b"\x12\x02\x08\x80"):                          # a step varint that does not end
        assert shape.read(bad) is None, bad


def _summaries(rng: random.Random, count: int) -> list[bytes]:
    from wandb.proto import wandb_internal_pb2 as pb
    out, shapes = [], [["loss", "acc"], ["acc", "loss"], ["loss", "deep"], ["w" * 140], ["loss", "acc", "b"]]
    keys = shapes[0]
    for n in range(count):
        rec = pb.Record()
        rec.num = n + 1
        kind = rng.random()
        if rng.random() < 0.03:
            keys = rng.choice(shapes)       # runs of one shape, as a training loop writes them
        if kind < 0.02:
            rec.run.run_id = "r"
            it = rec.run.summary.update.add()
            it.key, it.value_json = rng.choice(["loss", "acc", "z"]), _value(rng)
        else:
            for key in keys:
                it = rec.summary.update.add()
                it.nested_key.extend(["deep", "x"] if key == "deep" else [key])
                it.value_json = '"' + "v" * 70 + '"' if rng.random() < 0.02 else _value(rng)
            if rng.random() < 0.02:
                gone = rec.summary.remove.add()
                gone.nested_key.append(rng.choice(["loss", "acc"]))
            if rng.random() < 0.5:
                h = pb.Record()
                h.num = n + 1
                for key, value in (("_step", str(n)), ("_timestamp", f"{1700000000 + n}.5")):
                    it = h.history.item.add()
                    it.nested_key.append(key)
                    it.value_json = value
                out.append(h.SerializeToString())
        out.append(rec.SerializeToString())
    return out


def _tail() -> list[bytes]:
    """Rows' summaries, then a run record and a remove: what they set must not be undone by a held record."""
    from wandb.proto import wandb_internal_pb2 as pb
    out = []
    for n in range(3):
        rec = pb.Record()
        rec.num = 10_000 + n
        for key in ("loss", "acc"):
            it = rec.summary.update.add()
            it.nested_key.append(key)
            it.value_json = str(n)
        out.append(rec.SerializeToString())
    rec = pb.Record()
    rec.num = 10_010
    it = rec.run.summary.update.add()
    it.key, it.value_json = "loss", '"from the run record"'
    out.append(rec.SerializeToString())
    for n in range(2):
        rec = pb.Record()
        rec.num = 10_020 + n
        it = rec.summary.update.add()
        it.nested_key.append("acc")
        it.value_json = str(n)
        out.append(rec.SerializeToString())
    rec = pb.Record()
    rec.num = 10_030
    rec.summary.remove.add().nested_key.append("acc")
    out.append(rec.SerializeToString())
    return out


def test_held_summary_records_fold_to_the_same_summary(monkeypatch):
    rng = random.Random(3)
    data = write_log(_summaries(rng, 800) + _tail())
    decoded = []
    real = records._decode

    def counting(pb, payload, name, offset):
        decoded.append(offset)
        return real(pb, payload, name, offset)
    monkeypatch.setattr(records, "_decode", counting)
    fast = fold(data, history=False)
    held = len(decoded)
    monkeypatch.setattr(records._LatestSummary, "hold", lambda self, payload, offset: False)
    decoded.clear()
    slow = fold(data, history=False)
    same = json.dumps(fast.summary, default=str)
    assert same == json.dumps(slow.summary, default=str)
    assert list(fast.summary) == list(slow.summary)          # key order too
    assert fast.summary["loss"] == "from the run record" and "acc" not in fast.summary
    assert fast.records == slow.records and fast.history_rows == slow.history_rows
    assert held < len(decoded) * 0.6                         # many summary records were not decoded

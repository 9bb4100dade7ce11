"""A history row whose `_step` or `_timestamp` is NaN, an infinity, a fraction or past int64.

W&B's own writer never puts such a step there, but a log from another writer may: the row's
values stay points with the step unknown, read the same by the byte-shape path and by
protobuf, and the fetch indexes them instead of failing on `int(nan)`.
"""
from __future__ import annotations

import json

import pytest

from cometx_mirror.index.db import open_read
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.sources.wandb import normalize
from cometx_mirror.sources.wandb.records import fold, iter_history
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch

from test_wandb_records import write_log

# (_step text, _timestamp text) -> the step and timestamp (ms) the point gets
ROWS = [("NaN", "1.5", None, 1500), ("Infinity", "NaN", None, None), ("-Infinity", "2", None, 2000),
        ("2.5", "3", None, 3000), ("1e300", "4", None, 4000), (str(1 << 63), "5", None, 5000),
        ("3.0", "6", 3, 6000), ("true", "7", None, 7000), ("12", "8", 12, 8000)]


def _log(step_field: bool) -> bytes:
    from wandb.proto import wandb_internal_pb2 as pb
    out = []
    for i, (step, ts, _, _) in enumerate(ROWS):
        rec = pb.Record()
        rec.num = i + 1
        for key, text in (("_step", step), ("_timestamp", ts), ("loss", str(i))):
            it = rec.history.item.add()
            it.nested_key.append(key)
            it.value_json = text
        if step_field:
            rec.history.step.num = i    # the row's own `_step` item wins over the record's step
        out.append(rec.SerializeToString())
    return write_log(out)


def _points(data: bytes, fast: bool):
    history = iter_history(data) if fast else (h.record for h in iter_history(data))
    return normalize._metrics(normalize.RunState(run={}, history_records=lambda: history))[0].whole()


@pytest.mark.parametrize("step_field", [False, True])
def test_odd_steps_are_unknown_and_the_same_on_both_paths(step_field):
    data = _log(step_field)
    fast, slow = _points(data, fast=True), _points(data, fast=False)
    for column in ("name", "step", "epoch", "timestamp", "text"):
        assert getattr(fast, column) == getattr(slow, column), column
    assert fast.value == slow.value == [float(i) for i in range(len(ROWS))]
    assert fast.step == [row[2] for row in ROWS]
    assert fast.timestamp == [row[3] for row in ROWS]
    assert fold(data, history=False).last_time_ms == 8000      # the NaN time is no time


def test_a_log_with_odd_steps_is_fetched_and_indexed(tmp_path):
    folder = tmp_path / "src" / "wandb" / "offline-run-20260101_000000-odd1"
    folder.mkdir(parents=True)
    (folder / "run-odd1.wandb").write_bytes(_log(step_field=False))
    mirror = Mirror.init(str(tmp_path / "mirror"))
    result = run_fetch(mirror, "wandb", str(tmp_path / "src"), FetchOptions())
    assert not result.errors, result.errors
    with open_read(mirror.index_path) as con:
        rows = con.execute("SELECT step, value FROM metrics WHERE name = 'loss' ORDER BY value").fetchall()
    assert rows == [(row[2], float(i)) for i, row in enumerate(ROWS)]
    assert json.dumps([r[0] for r in rows]) == "[null, null, null, null, null, null, 3, null, 12]"


def test_times_no_datetime_holds_are_unknown_in_the_index(tmp_path):
    """A `_timestamp` of 1e300 s, or one past the year 9999, has no TIMESTAMP a reader of the
    index can take: the point is indexed with its time unknown (as a NaN time is), the fetch
    does not fail, and the other times are kept."""
    from wandb.proto import wandb_internal_pb2 as pb
    texts = ["1e300", "3e11", "-1e20", "1700000000.25"]
    out = []
    for i, ts in enumerate(texts):
        rec = pb.Record()
        rec.num = i + 1
        for key, text in (("_step", str(i)), ("_timestamp", ts), ("loss", str(i))):
            it = rec.history.item.add()
            it.nested_key.append(key)
            it.value_json = text
        out.append(rec.SerializeToString())
    folder = tmp_path / "src" / "wandb" / "offline-run-20260101_000000-far1"
    folder.mkdir(parents=True)
    (folder / "run-far1.wandb").write_bytes(write_log(out))
    mirror = Mirror.init(str(tmp_path / "mirror"))
    result = run_fetch(mirror, "wandb", str(tmp_path / "src"), FetchOptions())
    assert not result.errors, result.errors
    with open_read(mirror.index_path) as con:
        rows = con.execute("SELECT step, value, epoch_ms(timestamp) FROM metrics WHERE name = 'loss' "
                           "ORDER BY step").fetchall()
        updated = con.execute("SELECT updated_at FROM experiments").fetchall()
    assert rows == [(0, 0.0, None), (1, 1.0, None), (2, 2.0, None), (3, 3.0, 1700000000250)]
    assert updated == [(None,)]      # the run's last time is the 1e300 one: unknown too

"""Metric batches held as NumPy arrays (metric_stream.ArrayBatch): cut and ordered as list
batches are, read as lists by any consumer, and inserted by the index into the same rows."""
import math

import duckdb
import numpy as np

from cometx_mirror import metric_stream, model
from cometx_mirror.index import ingest
from cometx_mirror.index.db import migrate


def _piece(names, codes, steps, times, values):
    return (names, np.array(codes, np.int32), np.array(steps, np.int64), np.array(times, np.int64),
            np.array(values, np.float64))


def test_batches_are_cut_at_the_size_in_order_with_names_across_pieces():
    built = metric_stream.ArrayBatches(size=4)
    built.add(*_piece(["b", "a"], [0, 1, 0], [1, 1, 2], [10, 10, 20], [0.5, 1.5, 2.5]))
    assert not built.full()
    built.add(*_piece(["a", "c"], [1, 0, 1], [3, 3, 4], [30, 30, 40], [3.5, 4.5, 5.5]))
    assert built.full() and len(built) == 6
    first = built.take()
    assert len(first) == 4 and len(built) == 2
    rest = list(built.rest())
    assert [len(b) for b in rest] == [2] and len(built) == 0
    names = first.name + rest[0].name
    assert names == ["b", "a", "b", "c"] + ["a", "c"]
    assert first.step + rest[0].step == [1, 1, 2, 3, 3, 4]
    assert first.timestamp == [10, 10, 20, 30] and rest[0].value == [4.5, 5.5]
    assert all(type(s) is int for s in first.step) and all(type(v) is float for v in first.value)
    assert first.epoch == first.context == first.text == [None] * 4


def test_an_array_batch_equals_the_list_batch_of_its_points():
    batch = metric_stream.ArrayBatch(["x", "y"], np.array([1, 0], np.int32), np.array([5, 5], np.int64),
                                     np.array([7, 7], np.int64), np.array([0.25, -1.0]))
    plain = model.Metrics(name=["y", "x"], step=[5, 5], epoch=[None, None], timestamp=[7, 7],
                          value=[0.25, -1.0], context=[None, None])
    assert batch == plain and plain.value == batch.value


def _fresh():
    con = duckdb.connect()
    migrate(con)
    return con


def _metric_rows(con, eid):
    return con.execute("SELECT name, step, epoch, epoch_ms(timestamp), value::VARCHAR, context, text "
                       "FROM metrics WHERE exp_id = ? ORDER BY rowid", [eid]).fetchall()


def _inserted_both_ways(arrays, lists) -> list:
    """The rows the index gives the array batch, checked equal to those it gives the list batch."""
    con = _fresh()
    con.execute("BEGIN")
    ingest._insert_metrics(con, "arrays", arrays)
    ingest._insert_metrics(con, "lists", lists)
    con.execute("COMMIT")
    got = _metric_rows(con, "arrays")
    assert got == _metric_rows(con, "lists")
    return got


def test_the_index_inserts_the_same_rows_from_arrays_as_from_lists():
    """NaN and the infinities stay what they are; a time past what a datetime holds is NULL either way."""
    values = [0.5, math.nan, math.inf, -math.inf, 1e308, -0.0]
    times = [1_700_000_000_000, 0, 1, 2, 3, 4]
    names = ["loss", "acc", "loss", "acc", "loss", "acc"]
    steps = [0, 0, 1, 1, 2 ** 53, -3]
    for times_now in (times, times[:-1] + [10 ** 17]):       # the second: one time out of range
        arrays = metric_stream.ArrayBatch(["loss", "acc"], np.array([0, 1] * 3, np.int32),
                                          np.array(steps, np.int64), np.array(times_now, np.int64),
                                          np.array(values))
        lists = model.Metrics(name=names, step=steps, epoch=[None] * 6, timestamp=list(times_now),
                              value=values, context=[None] * 6)
        got = _inserted_both_ways(arrays, lists)
        assert [r[4] for r in got] == ["0.5", "nan", "inf", "-inf", "1e+308", "-0.0"]
        assert got[-1][3] == (None if times_now[-1] == 10 ** 17 else 4)


def test_a_stream_of_array_batches_is_read_whole_as_lists():
    def produce():
        built = metric_stream.ArrayBatches(size=2)
        built.add(*_piece(["m"], [0, 0, 0], [1, 2, 3], [4, 5, 6], [7.0, 8.0, 9.0]))
        while built.full():
            yield built.take()
        yield from built.rest()
    stream = metric_stream.MetricStream(produce)
    assert [len(b) for b in stream.batches()] == [2, 1]
    assert stream.step == [1, 2, 3] and stream.value == [7.0, 8.0, 9.0] and stream.name == ["m"] * 3


def test_unset_steps_times_and_epochs_and_texts_are_null_as_from_lists():
    unset = metric_stream.UNSET
    built = metric_stream.ArrayBatches()
    built.add(*_piece(["a"], [0, 0], [1, unset], [unset, 5], [1.0, 2.0]))
    built.add(*_piece(["b"], [0], [3], [6], [3.0]), epochs=np.array([unset], np.int64), texts=["3"])
    built.add(*_piece(["a"], [0], [4], [7], [4.0]), epochs=np.array([9], np.int64))
    [arrays] = list(built.rest())
    lists = model.Metrics(name=["a", "a", "b", "a"], step=[1, None, 3, 4], epoch=[None, None, None, 9],
                          timestamp=[None, 5, 6, 7], value=[1.0, 2.0, 3.0, 4.0],
                          context=[None] * 4, text=[None, None, "3", None])
    assert arrays == lists
    got = _inserted_both_ways(arrays, lists)
    assert got == [("a", 1, None, None, "1.0", None, None), ("a", None, None, 5, "2.0", None, None),
                   ("b", 3, None, 6, "3.0", None, "3"), ("a", 4, 9, 7, "4.0", None, None)]


def test_background_statements_run_in_order_and_hand_an_error_to_the_caller():
    import threading

    import pytest

    from cometx_mirror.index.db import BackgroundStatements
    con = _fresh()
    seen = []
    with BackgroundStatements(con) as background:
        for k in range(5):
            background.run(lambda k=k: seen.append((k, threading.current_thread().name)))
    assert [k for k, _ in seen] == list(range(5)) and {name for _, name in seen} == {"index-insert"}

    def fail():
        raise ValueError("no such column")
    after = []
    with pytest.raises(ValueError, match="no such column"):
        with BackgroundStatements(con) as background:
            background.run(fail)
            background.run(after.append, 1)           # dropped: an earlier call failed
    assert after == []
    with pytest.raises(KeyError):                     # the caller's own error wins; the call still ran
        with BackgroundStatements(con) as background:
            background.run(after.append, 2)
            raise KeyError("reader")
    assert after == [2]

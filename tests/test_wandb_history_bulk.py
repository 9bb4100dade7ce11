"""The chunked history reader (sources/wandb/history_bulk.py) indexes exactly the rows the
row path indexes, in the same order, and takes no record whose bytes it cannot prove.

Each fetch test fetches the same runs twice into fresh mirrors, once with the chunked path
and once with it turned off, and compares every table (metrics in insertion order)."""
from __future__ import annotations

import pytest

from cometx_mirror import metric_stream
from cometx_mirror.index.db import open_read
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.sources.wandb import history_bulk
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch

from bench.run_writers import write_wandb_run
from test_wandb_records import write_log

TABLES = ("experiments", "params", "others", "texts", "system_details", "tags", "assets")


def _rows(mirror) -> dict:
    out = {}
    with open_read(mirror.index_path) as con:
        for table in (*TABLES, "metrics"):
            cols = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall() if c[0] != "manifest_id"]
            order = "ORDER BY rowid" if table == "metrics" else ""
            rows = list(map(repr, con.execute(f"SELECT {', '.join(cols)} FROM {table} {order}").fetchall()))
            out[table] = rows if table == "metrics" else sorted(rows)
    return out


def _fetch_both(monkeypatch, folder, tmp_path, batch: int = 1 << 16) -> tuple[dict, dict, int]:
    """(rows with the chunked path, rows without it, ArrayBatches the chunked fetch indexed)."""
    monkeypatch.setattr(metric_stream, "BATCH_POINTS", batch)
    arrays = [0]
    real = history_bulk.ChunkReader.pieces

    def counting(self, chunk):
        for kind, piece in real(self, chunk):
            arrays[0] += kind == "arrays"
            yield kind, piece
    monkeypatch.setattr(history_bulk.ChunkReader, "pieces", counting)
    got = []
    for enabled in (True, False):
        monkeypatch.setattr(history_bulk, "ENABLED", enabled)
        mirror = Mirror.init(tmp_path / f"mirror-{enabled}")
        result = run_fetch(mirror, "wandb", str(folder), FetchOptions())
        assert result.errors == []
        got.append(_rows(mirror))
    return got[0], got[1], arrays[0]


def test_the_real_clients_runs_index_the_same_rows(wandb_runs, monkeypatch, tmp_path):
    wandb_dir, _ = wandb_runs
    bulk, rows, arrays = _fetch_both(monkeypatch, wandb_dir, tmp_path)
    assert bulk == rows
    assert len(rows["metrics"]) > 10
    assert arrays > 0          # the chunked path read the plain rows


def _record(pb, num: int, items, step: int | None = None, legacy: bool = False) -> bytes:
    rec = pb.Record()
    rec.num = num
    for key, value in items:
        it = rec.history.item.add()
        if legacy:
            it.key = key
        else:
            it.nested_key.extend(key if isinstance(key, list) else [key])
        it.value_json = value
    if step is not None:
        rec.history.step.num = step
    return rec.SerializeToString()


_VALUES = ["0.5", "7", "-0", "-12", "NaN", "Infinity", "-Infinity", "1e-07", "1E+300", "-2.5e-3",
           "123456789012345678", str(2 ** 70), str(-2 ** 63 - 1), "-0.0", "1e400", "0.1", "true", '"s"', "null",
           "false", '"NaN"', "[1, 2]", "0x25", '{"x": 1}', '""', "nan", '"\u00e9t\u00e9"', "0.5 "]


def _odd_log() -> bytes:
    """Interleaved key lists, integers, non-finite texts, big and negative numbers, exponents,
    a missing _step (the record's step, or none), epochs of every form, odd times, a torn tail."""
    from wandb.proto import wandb_internal_pb2 as pb
    out = []
    rec = pb.Record()
    rec.num = 1
    rec.run.run_id, rec.run.entity, rec.run.project = "odd2", "ent", "proj"
    rec.run.start_time.seconds = 1_700_000_000
    out.append(rec.SerializeToString())
    epochs = ["3", "2.0", "2.5", "NaN", "-1", "1e3", "-Infinity", "-0"]
    times = ["1700000000.25", "1.7e9", "NaN", "1700000001", "-5.5", "1e300"]
    steps = ["{}", "-3", "1.5", "99999999999999999999"]
    for row in range(600):
        num, kind = row + 2, row % 6
        value = _VALUES[row % len(_VALUES)]
        step = steps[0].format(row) if row % 7 else steps[row // 7 % 4]
        ts = times[0] if row % 5 else times[row // 5 % len(times)]
        if kind in (0, 1):
            items = [("_step", step), ("_timestamp", ts), ("loss", value), ("acc", _VALUES[row % 5])]
        elif kind == 2:
            items = [("_timestamp", ts), ("epoch", epochs[row % len(epochs)]), ("loss", value)]
            out.append(_record(pb, num, items, step=row if row % 4 else None))
            continue
        elif kind == 3:
            items = [("_step", step), ("_timestamp", ts), ("val/loss", value), ("epoch", epochs[row % 8])]
        elif kind == 4:            # nested keys: grouped by dict as the row is, a prefix, media, a name twice
            items = [[("_step", step), (["train", "x"], value), ("loss", "0.25")],
                     [("_step", step), (["train", "x"], value), ("lr", "0.1"), (["train", "y"], "1"),
                      (["a", "b", "c"], "2"), ("_timestamp", ts)],
                     [("_step", step), ("a", "1"), (["a", "b"], value)],
                     [("_step", step), (["img", "_type"], '"image-file"'), (["img", "path"], '"media/x.png"')],
                     [("_step", step), ("a.b", "1"), (["a", "b"], value)]][row // 6 % 5]
        else:
            out.append(_record(pb, num, [("_step", step), ("_timestamp", ts), ("loss", value)], legacy=True))
            continue
        out.append(_record(pb, num, items, step=row))
    whole = write_log(out)
    return whole + write_log([_record(pb, 999, [("_step", "1"), ("loss", "0.5")])])[7:][:-3]   # torn


@pytest.fixture(scope="module")
def odd_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd-runs")
    write_wandb_run(root / "wandb", 300, 4, odd=True, run_id="odd1")       # the bench writer's odd values
    write_wandb_run(root / "wandb", 300, 6, core=True, run_id="core1")     # and its wandb-core order
    folder = root / "wandb" / "offline-run-20240101_000000-odd2"
    (folder / "files").mkdir(parents=True)
    (folder / "run-odd2.wandb").write_bytes(_odd_log())
    return root / "wandb"


@pytest.mark.parametrize("batch", [7, 1 << 16])
def test_odd_runs_index_the_same_rows_in_the_same_order(odd_runs, monkeypatch, tmp_path, batch):
    bulk, rows, arrays = _fetch_both(monkeypatch, odd_runs, tmp_path, batch)
    assert len(rows["metrics"]) > 1500
    assert bulk["metrics"] == rows["metrics"]
    assert bulk == rows
    assert arrays > 20


def test_a_chunk_with_a_grown_run_keeps_order(odd_runs, monkeypatch, tmp_path):
    """More records than a chunk, so chunks end inside runs of one key list."""
    monkeypatch.setattr(history_bulk, "CHUNK", 5)
    bulk, rows, _ = _fetch_both(monkeypatch, odd_runs, tmp_path)
    assert bulk == rows


# -- the byte-level checks ---------------------------------------------------

def _walk_ok(payloads: list[bytes]) -> list[bool]:
    import numpy as np
    from cometx_mirror.sources.wandb import history_items
    lengths = np.array(list(map(len, payloads)))
    ends = np.cumsum(lengths)
    buf = np.frombuffer(b"".join(payloads) + bytes(history_items.PAD), np.uint8)
    return history_items.walk(buf, ends - lengths, ends, history_items.KeyCodes()).ok.tolist()


def _good() -> bytes:
    from wandb.proto import wandb_internal_pb2 as pb
    return _record(pb, 300, [("_step", "12"), ("_timestamp", "1700000000.5"), ("loss", "0.25")], step=12)


def test_every_length_byte_and_literal_is_checked():
    good = _good()
    history_at = good.index(b"\x12", 3)          # after num's two bytes
    item_at = good.index(b"\x0a", history_at)
    text_len_at = good.index(b"\x82\x01\x040.25") + 2
    key_at = good.index(b"loss")
    bad = [good[:history_at + 1] + bytes([good[history_at + 1] - 1]) + good[history_at + 2:],  # history length
           good[:item_at + 1] + bytes([good[item_at + 1] + 1]) + good[item_at + 2:],           # an item length
           good[:text_len_at] + b"\x03" + good[text_len_at + 1:],                              # a text length
           good + b"\x08\x01",                                                                 # a field after
           good[:-1] + b"\x8c",                                                                # a step not ending
           good[:1] + b"\x80" * 11 + good[3:]]                                                 # num too long
    assert _walk_ok([good, *bad, good]) == [True] + [False] * len(bad) + [True]
    assert _walk_ok([good[:key_at] + b"lost" + good[key_at + 4:]]) == [True]     # another key: read as such


def test_a_metric_text_off_the_number_grammar_is_read_by_the_row_rule_where_it_lies():
    """true, false, null, a string, a token json refuses: each is given the row path's own rule
    (normalize._text_point) in the chunk, and a text no point comes of leaves only its point out;
    a text that may be a dict (the row path flattens nested metrics), one not UTF-8, or an axis
    off its plain form sends its record the row way."""
    import numpy as np
    from wandb.proto import wandb_internal_pb2 as pb
    from cometx_mirror.sources.wandb.normalize import _text_point
    from cometx_mirror.sources.wandb.records import HistoryPayload
    texts = ["0x25", "0.2 ", "true", "false", "null", '"a string"', '"NaN"', "[1, 2]", "nan", '"\\u00e9"',
             "1.e5", "+.25", "0025", "true", '"a string"', "7", "0.5"]

    def record(num, step, loss):
        return _record(pb, num, [("_step", step), ("_timestamp", "1700000000.5"), ("loss", loss), ("acc", "0.5")],
                       step=num)
    read = [record(10 + i, str(i), t) for i, t in enumerate(texts)]
    row_way = [record(50, "50", '{"a": 1}'), record(51, "51", "QQ").replace(b"QQ", b"\xff\xfe"),
               record(52, "1.5", "0.5"), record(53, "53", "0.5").replace(b"1700000000.5", b"1700000000x5")]
    last = record(60, "60", "0.75")
    reader = history_bulk.ChunkReader(_text_point)
    chunk = [HistoryPayload(p, i, "t") for i, p in enumerate([*read, *row_way, last])]
    pieces = list(reader.pieces(chunk))
    assert [kind for kind, _ in pieces] == ["arrays", "records", "arrays"]
    assert [r.payload for r in pieces[1][1]] == row_way
    names, codes, steps, times, values, epochs, exact = pieces[0][1]
    expected = []                      # (name, step, value, exact text) as the row path gives them
    for i, text in enumerate(texts):
        point = _text_point(text)
        if point is not None:
            expected.append(("loss", i, *point))
        expected.append(("acc", i, 0.5, None))
    got = list(zip([names[c] for c in codes.tolist()], steps.tolist(), values.tolist(), exact))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g[:2] == e[:2] and g[3] == e[3] and (g[2] == e[2] or np.isnan(g[2]) and np.isnan(e[2]))
    assert ("loss", 2, 1.0, "true") in got and ("loss", 13, 1.0, "true") in got    # read once, used twice
    assert not [g for g in got if g[0] == "loss" and g[1] in (4, 5, 6, 7, 14)]   # null, strings, a list
    assert set(times.tolist()) == {1700000000500} and epochs is None
    assert pieces[2][1][4].tolist() == [0.75, 0.5]


def test_row_way_records_among_bulk_ones_still_give_full_batches(monkeypatch, tmp_path):
    """The points of a record the row path takes (here every 5th: a dict value, nested metrics)
    join the arrays in order (ArrayBatches.add_points), so such a run is inserted in full batches,
    not in a short one at every turn between the two ways (before: an insert per 12 points)."""
    from wandb.proto import wandb_internal_pb2 as pb
    from cometx_mirror.index import ingest
    inserts = []
    real = ingest._execute

    def counting(con, sql, params, arrays):
        if sql.startswith("INSERT INTO metrics"):
            inserts.append(len(next(iter(arrays.values()))))
        real(con, sql, params, arrays)
    monkeypatch.setattr(ingest, "_execute", counting)
    monkeypatch.setattr(metric_stream, "BATCH_POINTS", 256)
    rows = [_record(pb, 2 + i, [("_step", str(i)), ("_timestamp", f"{1_700_000_000 + i}.5"), ("loss", f"{i}.25"),
                                ("acc", '{"top1": 0.5}' if i % 5 == 4 else "0.5")], step=i) for i in range(600)]
    folder = tmp_path / "wandb" / "offline-run-20240101_000000-mixed"
    (folder / "files").mkdir(parents=True)
    (folder / "run-mixed.wandb").write_bytes(write_log(rows))
    bulk, row_way, arrays = _fetch_both(monkeypatch, tmp_path / "wandb", tmp_path, 256)
    assert bulk == row_way and arrays > 0
    assert len(bulk["metrics"]) == 1200 and "'acc.top1'" in bulk["metrics"][9]
    with_bulk = inserts[:len(inserts) - 5]        # the second fetch (row path only) inserted 5 batches
    assert sum(inserts) == 2400 and len(with_bulk) == 5, inserts


def test_a_chunk_without_a_number_text_still_reads_its_axes_as_the_row_path():
    """Every text a string or a word (no text the number automaton reads): the records go the
    row way, or in bulk with no points, as the row path has them; nothing fails."""
    from wandb.proto import wandb_internal_pb2 as pb
    from cometx_mirror.sources.wandb.normalize import _text_point
    from cometx_mirror.sources.wandb.records import HistoryPayload
    payloads = [_record(pb, 2 + i, [("_step", '"s"' if i % 2 else "true"), ("phase", '"warm"')], step=i)
                for i in range(6)]
    pieces = list(history_bulk.ChunkReader(_text_point).pieces([HistoryPayload(p, i, "t")
                                                                 for i, p in enumerate(payloads)]))
    assert [kind for kind, _ in pieces] == ["records"]
    assert [r.payload for r in pieces[0][1]] == payloads

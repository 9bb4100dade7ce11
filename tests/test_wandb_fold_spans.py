"""The store-time fold with a span's history records counted and timed in bulk (fold_spans.py)
folds exactly what the record-by-record fold folds: the same RunLog, the same error at the
same offset for a damaged log, the same end for a torn one, the same fold resumed."""
from __future__ import annotations

import random

import pytest

from cometx_mirror.sources.wandb import fold_spans, records

from bench.run_writers import write_wandb_run
from test_wandb_history_bulk import _odd_log, _record
from test_wandb_records import write_log


def _one_by_one(span, step, log, latest):
    for offset, payload in span.records():
        step(offset, payload)


def _fold(data: bytes, bulk: bool, monkeypatch, **kw):
    with monkeypatch.context() as m:
        if not bulk:
            m.setattr(records, "_fold_span", _one_by_one)
        try:
            log = records.fold(data, "t.wandb", history=False, **kw)
        except records.CorruptLog as e:
            return ("error", str(e))
        return vars(log)


def _both(data: bytes, monkeypatch, **kw):
    bulk, slow = _fold(data, True, monkeypatch, **kw), _fold(data, False, monkeypatch, **kw)
    assert bulk == slow
    return bulk


def _times_log(times: list[str], media_every: int = 0) -> bytes:
    """A wandb-core-like log: summary then history per row; odd `_timestamp` texts; media rows."""
    from wandb.proto import wandb_internal_pb2 as pb
    out = []
    rec = pb.Record()
    rec.num = 1
    rec.run.run_id = "t1"
    rec.run.start_time.seconds = 1_700_000_000
    out.append(rec.SerializeToString())
    for row, ts in enumerate(times):
        loss = '{"_type": "image-file", "path": "a.png"}' if media_every and row % media_every == 3 else repr(1 / (row + 1))
        items = [("_step", str(row)), ("_timestamp", ts), ("loss", loss)]
        s = pb.Record()
        s.num = 2 * row + 2
        for key, value in items + ([("extra", "1")] if row % 97 == 50 else []):     # a new summary shape now and then
            it = s.summary.update.add()
            it.nested_key.append(key)
            it.value_json = value
        if row % 301 == 200:
            s.summary.remove.add().nested_key.append("extra")
        out.append(s.SerializeToString())
        out.append(_record(pb, 2 * row + 3, items, step=row))
    return write_log(out)


_ODD_TIMES = ["1700000000.25", "1.7e9", "NaN", "Infinity", "-Infinity", "1700000001", "-5.5", "1e300", "-0.0",
              "0.000001", "1E+9", "17000000002.123456789012345678", '"text"', "true", "", "2e18"]


@pytest.fixture(scope="module")
def bench_logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fold-spans")
    return [next(write_wandb_run(root / name, 3000, 3, odd=odd, run_id=name, stdout_every=every, core=core)
                 .glob("run-*.wandb")).read_bytes()
            for name, odd, every, core in (("plain", False, 0, False), ("odd", True, 0, False),
                                           ("plain-out", False, 1, False), ("odd-out", True, 3, False),
                                           ("core", False, 0, True), ("core-out", False, 2, True))]


def test_the_bench_writers_runs_fold_the_same(bench_logs, monkeypatch):
    for data in bench_logs:
        got = _both(data, monkeypatch)
        assert got["history_rows"] == 3000 and got["last_time_ms"]
    output = _both(bench_logs[2], monkeypatch)["output"]
    output.seal()
    assert output.size > 3000 * 10 and b"".join(output.chunks()).count(b"\n") == 3000   # every printed line


def test_summaries_between_printed_lines_are_judged_many_at_once(bench_logs, monkeypatch):
    """A printed line a row leaves runs of one summary record: they are still judged in bulk, not one
    call (and one copy of the span) each."""
    calls = []
    real = fold_spans.matching
    monkeypatch.setattr(fold_spans, "matching", lambda *a, **k: calls.append(len(a[2])) or real(*a, **k))
    records.fold(bench_logs[2], "t.wandb", history=False)
    assert sum(calls) >= 2900 and len(calls) < 60, (len(calls), sum(calls))


def test_odd_times_media_rows_and_summary_shapes_fold_the_same(monkeypatch):
    plain = [f"{1_700_000_000 + i * 0.01 + 0.5!r}" for i in range(3000)]
    assert _both(_times_log(plain), monkeypatch)["history_rows"] == 3000
    rng = random.Random(5)
    odd = [rng.choice(_ODD_TIMES) if i % 40 == 7 else t for i, t in enumerate(plain)]
    _both(_times_log(odd), monkeypatch)
    got = _both(_times_log(plain, media_every=500), monkeypatch)
    assert len(got["media_rows"]) == 6
    _both(_odd_log(), monkeypatch)
    for ts in _ODD_TIMES:                    # each odd time alone in an otherwise plain log
        _both(_times_log(plain[:200] + [ts] + plain[200:400]), monkeypatch)


def test_damaged_torn_and_resumed_logs_fold_the_same(bench_logs, monkeypatch):
    data = bench_logs[0]
    rng = random.Random(11)
    errors = 0
    for _ in range(12):
        at = rng.randrange(7, len(data))
        bad = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
        errors += _both(bad, monkeypatch).__class__ is tuple
    assert errors >= 6                       # (a flipped bit in padding or a length may pass or tear)
    for cut in (len(data) - 5, len(data) // 2 + 3, 70_000):
        _both(data[:cut], monkeypatch)
    half = records.fold(data[:len(data) // 2], "t.wandb", history=False)
    resumed = [_fold(data, bulk, monkeypatch, start=half.complete_end,
                     log=records.fold(data[:len(data) // 2], "t.wandb", history=False)) for bulk in (True, False)]
    whole = _fold(data, True, monkeypatch)
    assert resumed[0] == resumed[1]
    assert {**resumed[0], "bytes_read": 0} == {**whole, "bytes_read": 0}


def test_matching_is_summary_keys_covers_on_mutated_records_in_any_order():
    """wandb-core writes a summary record's items in Go map order: matching (NumPy, a span at once)
    never covers what summary_literals (one record, in Python) does not, covers all it does with
    one-byte lengths, and on records as protobuf writes them both are the decoded key set's test."""
    import numpy as np
    from wandb.proto import wandb_internal_pb2 as pb
    from cometx_mirror.sources.wandb.log_frames import Span
    from cometx_mirror.sources.wandb.record_shapes import literal_of, summary_literals
    from cometx_mirror.sources.wandb import fold_spans
    rng = random.Random(2)
    keys = ("_step", "_timestamp", "loss", ("train", "acc"), "k" * 100)      # a long key: a two-byte item length
    payloads, decoded = [], []
    for row in range(600):
        s = pb.Record()
        s.num = row * 300 + 1
        chosen = list(keys[:4 + (row % 3 == 0)])
        rng.shuffle(chosen)
        for key in chosen:
            it = s.summary.update.add()
            it.nested_key.extend([key] if isinstance(key, str) else key)
            it.value_json = rng.choice(["1", repr(rng.random()), "x" * rng.randint(0, 70), "NaN", ""])
        if row % 11 == 5:
            s.summary.remove.add().nested_key.append("loss")
        payload = bytearray(s.SerializeToString())
        mutated = row % 2 or row % 7 == 3
        if row % 2:
            for _ in range(rng.randint(1, 2)):
                at = rng.randrange(len(payload))
                payload[at] = rng.choice([payload[at] ^ 1, payload[at] + 1 & 255, 0x0A, 0x12, 0x80, 64, 65])
        if row % 7 == 3:
            payload = payload[:rng.randrange(len(payload))] if rng.random() < .5 else payload + b"\x08\x01"
        payloads.append(bytes(payload))
        decoded.append(None if mutated else s)
    ends = np.cumsum([len(p) for p in payloads])
    span = Span(b"".join(payloads), ends - np.array([len(p) for p in payloads]), ends, np.arange(len(payloads)))
    other = frozenset([literal_of("_step")])
    for chosen, legacy in ((keys[:4], False), (keys, False), (keys[:3], True)):
        held = frozenset(literal_of(k, legacy) for k in chosen)
        got = fold_spans.matching([other, held], span, np.arange(len(payloads))) == 1
        want = np.array([summary_literals(p) == held for p in payloads])
        assert not (got & ~want).any()
        if chosen == keys[:4]:
            assert got.sum() == want.sum() > 40                   # one-byte items: all it does
        for record, covers in zip(decoded, want.tolist()):
            if record is not None:
                items = record.summary.update
                same = {tuple(it.nested_key) if len(it.nested_key) > 1 else it.nested_key[0] for it in items}
                assert covers == (not legacy and same == set(chosen) and len(items) == len(chosen)
                                  and all(it.value_json for it in items) and not record.summary.remove)

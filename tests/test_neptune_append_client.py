"""neptune 1.x as the client writes `run[path].append(value)`: no step (null, the series numbers it) and
a LogStrings op per word the script prints. The store takes such segments at once (null steps numbered
per series, printed words as Texts), and what it folds and the index reads is what reading every line
with json gives."""
import json
import random

import duckdb
import numpy
import pytest

from cometx_mirror.sources.neptune import float_lines, null_steps, offline_v1, one_point_ops
from cometx_mirror.sources.neptune.row_spill import RowSpill
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch

from test_neptune_fast_path import _store_fold, _stream

STDOUT, STDERR = ["monitoring", "7d3a", "stdout"], ["monitoring", "7d3a", "stderr"]
WORDS = ["step", " ", "12", "loss", "0.25", "\n", "ünï", "", 'say "hi"', "back\\slash", "\t", "\ud800", "a, b"]


def _op(n: int, obj: dict, at=None) -> bytes:
    return json.dumps({"obj": obj, "version": n, "at": 1.7e9 + n / 1000 if at is None else at}).encode()


def _point(typ: str, path: list, value, step=None, ts=1.7e9) -> dict:
    return {"type": typ, "path": path, "values": [{"value": value, "step": step, "ts": ts}]}


def _client_log(n: int, seed: int, odd: float, many: float = 0.0) -> list[bytes]:
    """An `append` loop as the client queues it, a printed line (a word an op) every few points; with a
    share `odd` of what makes a stretch go op by op: a given step (whole, int, a half, past 2**52), a
    word with a step, a word sent to a float series or a float to the stdout, a string series of its
    own, a number as a word, a word holding `": `, a clear, a delete, an int op time, a line json
    refuses. A share `many` of the float ops hold 2 to 30 points (`extend(values)`: no step either)."""
    rng = random.Random(seed)
    lines, k = [], 0

    def add(obj, at=None):
        nonlocal k
        k += 1
        lines.append(_op(k, obj, at))

    add({"type": "AssignString", "path": ["sys", "name"], "value": "r"})
    for i in range(n):
        path = ["train", f"s{i % 3}"]
        step = None
        if rng.random() < odd:
            step = rng.choice([float(i), i, i + 0.5, 2.0 ** 60, float(i // 3)])
        if rng.random() < many:
            points = [{"value": 1 / (i + j + 1), "step": None if rng.random() > odd else step,
                       "ts": 1.7e9 + i / 100 + j} for j in range(rng.randint(2, 30))]
            add({"type": "LogFloats", "path": path, "values": points})
        else:
            add(_point("LogFloats", path, 1 / (i + 1), step, 1.7e9 + i / 100))
        if i % 10 == 9:
            for word in rng.sample(WORDS, 4):
                add(_point("LogStrings", STDOUT if rng.random() < 0.9 else STDERR, word, None, 1.7e9 + i / 100))
        r = rng.random()
        if r >= odd:
            continue
        r /= odd
        if r < 0.1:
            add(_point("LogStrings", STDOUT, "stepped", float(i)))
        elif r < 0.2:
            add(_point("LogStrings", path, "oops"))
        elif r < 0.3:
            add(_point("LogFloats", STDOUT, 2.5))
        elif r < 0.4:
            add(_point("LogStrings", ["notes", "log"], rng.choice(WORDS)))
        elif r < 0.45:
            add(_point("LogStrings", STDOUT, 5))
        elif r < 0.5:          # `": ` in a word: the segment's words go as lines
            add(_point("LogStrings", STDOUT, '{"a": 1}'))
        elif r < 0.65 and i > n // 2:      # a clear or delete early in the log only: points stay to compare
            add(_point("LogFloats", path, 0.5))
        elif r < 0.55:
            add({"type": "ClearStringLog", "path": STDOUT})
        elif r < 0.6:
            add({"type": "ClearFloatLog", "path": path})
        elif r < 0.65:
            add({"type": "DeleteAttribute", "path": STDERR})
        elif r < 0.8:
            add(_point("LogFloats", path, 0.5), at=1700000000 + i)
        elif r < 0.9:
            add(_point("LogStrings", STDOUT, "late"), at=1700000000 + i)
        else:
            lines.append(b'{"obj": {"type": "LogStrings", "path": ["monitoring"], "valu')
    return lines


def _texts(state) -> dict:
    """Each console text's contents, by digest (a ConsoleText's repr does not show them)."""
    return {path: (entry["text"].any_value, entry["text"].digest())
            for path, entry in state[4]["series"].items() if "text" in entry}


@pytest.mark.parametrize("odd, many", [(0.0, 0.0), (0.02, 0.0), (0.3, 0.0), (0.0, 0.3), (0.02, 0.3)])
def test_the_stores_fold_of_null_steps_and_printed_words_is_the_one_json_gives(tmp_path, monkeypatch, odd, many):
    lines = _client_log(3000, seed=int(odd * 100), odd=odd, many=many)
    data = b"\n".join(lines) + b"\n"
    bulk = {"texts": 0, "nulls": 0, "many": 0}          # lines fed at once (a run's, or a segment's)
    fed_texts, fed_block = offline_v1._Fold._fed_texts, offline_v1._Fold._fed_block

    def texts(self, item):
        fed_texts(self, item)
        bulk["texts"] += len(item)

    def block(self, item):
        fed_block(self, item)
        bulk["nulls"] += not item.numbered and len(item)
        bulk["many"] += not item.numbered and not item.single() and len(item)
    monkeypatch.setattr(offline_v1._Fold, "_fed_texts", texts)
    monkeypatch.setattr(offline_v1._Fold, "_fed_block", block)
    monkeypatch.setattr(offline_v1, "SEGMENT_LINES", 500)
    fast, fast_state, mirror = _store_fold(tmp_path, data, "fast", monkeypatch, True)
    if odd < 0.1:            # most of the log went at once (at 0.3 hardly a segment is without an odd line)
        assert bulk["nulls"] > 500 and (bulk["many"] > 100 if many else bulk["texts"] > 500), bulk
    monkeypatch.setattr(offline_v1, "SEGMENT_LINES", 500)
    slow, slow_state, _ = _store_fold(tmp_path, data, "slow", monkeypatch, False)
    assert fast == {**slow, "run_dir": fast["run_dir"]} and repr(fast_state) == repr(slow_state)
    assert _texts(fast_state) == _texts(slow_state)
    assert odd > 0.1 or _texts(fast_state)["monitoring/7d3a/stdout"][0]    # (a clear, then a float: no text)
    assert len(fast["errors"]) == sum(line.endswith(b'"valu') for line in lines)
    manifest = {"logs": fast["logs"]}
    streamed = _stream(mirror, manifest, monkeypatch, True)
    assert len(streamed) > 1000 and streamed == _stream(mirror, manifest, monkeypatch, False)


def _index(root) -> dict:
    con = duckdb.connect(str(root / "index.duckdb"), read_only=True)
    try:
        return {"metrics": con.execute("SELECT name, step, timestamp, value FROM metrics ORDER BY ALL").fetchall(),
                "texts": con.execute("SELECT kind, name, object_id, size, content FROM texts ORDER BY ALL").fetchall()}
    finally:
        con.close()


@pytest.mark.parametrize("odd, many", [(0.0, 0.0), (0.02, 0.0), (0.0, 0.2)])
def test_a_fetch_of_such_a_run_indexes_what_json_reads(tmp_path, monkeypatch, odd, many):
    """Spilled rows (numbered in the stream), rows read again from the store, and every line decoded by
    json give the same index."""
    lines = _client_log(4500, seed=7, odd=odd, many=many)
    run_dir = tmp_path / "src" / ".neptune" / "offline" / "run__6b1a2c3d-0000-4000-8000-000000000009__1__t"
    run_dir.mkdir(parents=True)
    (run_dir / "data-1.log").write_bytes(b"\n".join(lines) + b"\n")
    taken = []
    take = RowSpill.take
    monkeypatch.setattr(RowSpill, "take", lambda self, s: taken.append(take(self, s)) or taken[-1])
    assert len(run_fetch(Mirror.init(tmp_path / "a"), "neptune", str(tmp_path / "src"), FetchOptions()).errors) \
        == sum(line.endswith(b'"valu') for line in lines)
    assert odd or sum(t is not None for t in taken) >= 2     # (an int step among the floats: not spilled)
    assert not many or any(t is not None and t[2] is not None for t in taken)     # ops of many points too
    spilled = _index(tmp_path / "a")
    monkeypatch.setattr(RowSpill, "put", lambda self, *a: False)        # every segment read again
    run_fetch(Mirror.init(tmp_path / "b"), "neptune", str(tmp_path / "src"), FetchOptions())
    monkeypatch.setattr(float_lines, "scan_whole", lambda segment: None)       # and every line by json
    monkeypatch.setattr(float_lines, "read", lambda segment: segment.splitlines())
    monkeypatch.setattr(float_lines, "read_stored", lambda segment, segment_id: segment.splitlines())
    run_fetch(Mirror.init(tmp_path / "c"), "neptune", str(tmp_path / "src"), FetchOptions())
    read, decoded = _index(tmp_path / "b"), _index(tmp_path / "c")
    assert len(spilled["metrics"]) > 4000 and spilled["texts"]
    assert list(map(repr, spilled["metrics"])) == list(map(repr, read["metrics"])) == \
        list(map(repr, decoded["metrics"]))
    assert spilled["texts"] == read["texts"] == decoded["texts"]
    (object_id,) = [row[2] for row in spilled["texts"] if row[0] == "output"]
    text = Mirror.open(tmp_path / "a").objects.get_bytes(object_id).decode("utf-8")
    assert "\\ud800" in text and "ünï" in text    # a lone surrogate (no UTF-8 has one) as its JSON escape


def _one_by_one(paths, steps, next_step):
    """The op-by-op rule: a null step is the one before it in its series + 1."""
    next_step, out = dict(next_step), []
    for path, step in zip(paths, steps):
        step = next_step.get(path, 0) if step is None else step
        out.append(step)
        next_step[path] = step + 1
    return out, next_step


def test_null_steps_numbered_at_once_are_the_ones_the_op_by_op_rule_gives():
    rng = random.Random(3)
    refused = 0
    for _ in range(2000):
        n = rng.randint(1, 40)
        paths = [rng.choice("abc") for _ in range(n)]
        steps = [None if rng.random() < 0.7 else float(rng.randint(-5, 50)) if rng.random() < 0.97 else
                 rng.choice([0.5, 2.0 ** 53]) for _ in range(n)]
        before = {p: rng.choice([0, 3, 7.0, 2 ** 40] * 5 + [0.25]) for p in "abc" if rng.random() < 0.6}
        got = null_steps.number(paths, numpy.array(steps, numpy.float64), before)
        want, after = _one_by_one(paths, steps, before)
        if got is None:            # a step or next step the rule could round otherwise: op by op
            refused += 1
            assert any(s is not None and not null_steps.whole(s) for s in steps) or \
                any(not null_steps.whole(before.get(p, 0)) for p in paths)
            continue
        assert got[0].tolist() == [float(x) for x in want]
        assert {p: repr(got[1][p]) for p in set(paths)} == {p: repr(after[p]) for p in set(paths)}
    assert 0 < refused < 1500


def test_null_steps_of_ops_numbered_by_their_counts_are_those_of_their_points():
    """number() given the ops' paths and each op's count of points numbers as given each point's path."""
    rng = random.Random(5)
    for _ in range(500):
        ops = [rng.choice("abc") for _ in range(rng.randint(1, 12))]
        counts = [rng.randint(1, 6) for _ in ops]
        points = [path for path, n in zip(ops, counts) for _ in range(n)]
        steps = numpy.array([numpy.nan if rng.random() < 0.8 else float(rng.randint(0, 40)) for _ in points])
        before = {p: rng.choice([0, 3, 7.0]) for p in "abc" if rng.random() < 0.6}
        by_point = null_steps.number(points, steps, before)
        by_op = null_steps.number(ops, steps, before, counts)
        assert by_point is not None and by_op is not None
        assert by_op[0].tolist() == by_point[0].tolist() and repr(by_op[1]) == repr(by_point[1])


def test_a_first_segment_of_many_point_ops_with_null_steps_is_folded_at_once(tmp_path, monkeypatch):
    """The series begin in the segment (a run's first): its Block is still taken at once, by the fold and by
    the float stream (each series a float series from its first op), as feeding it line by line gives."""
    lines = [_op(k, {"type": "LogFloats", "path": ["train", f"s{k % 3}"],
                     "values": [{"value": 1.0 / (k + j + 1), "step": None, "ts": 1.7e9 + k} for j in range(5)]})
             for k in range(300)]
    data = b"\n".join(lines) + b"\n"
    fed = {"block": 0, "stream": 0}
    fed_block, taken_whole = offline_v1._Fold._fed_block, offline_v1._taken_whole

    def block(self, item):
        fed_block(self, item)
        fed["block"] += len(item)

    def taken(item, *args):
        got = taken_whole(item, *args)
        fed["stream"] += got is not None and len(item)
        return got
    monkeypatch.setattr(offline_v1._Fold, "_fed_block", block)
    monkeypatch.setattr(offline_v1, "_taken_whole", taken)
    fast, fast_state, mirror = _store_fold(tmp_path, data, "fast", monkeypatch, True)
    assert fed["block"] == 300
    slow, slow_state, _ = _store_fold(tmp_path, data, "slow", monkeypatch, False)
    assert fast == {**slow, "run_dir": fast["run_dir"]} and repr(fast_state) == repr(slow_state)
    assert fast_state[1] == {"train/s0": 0, "train/s1": 1, "train/s2": 2}       # where each series starts
    monkeypatch.setattr(offline_v1, "_taken_whole", taken)
    manifest = {"logs": fast["logs"]}
    streamed = _stream(mirror, manifest, monkeypatch, True)
    assert fed["stream"] == 300 and len(streamed) == 1500
    assert streamed == _stream(mirror, manifest, monkeypatch, False)


def test_printed_words_are_cut_as_one_column_and_a_word_holding_the_separator_is_left_whole():
    words = [_op(k, _point("LogStrings", STDOUT, w)) for k, w in enumerate(["a", "\n", "ünï", ""])]
    floats = [_op(9, _point("LogFloats", ["m"], 0.5))]
    among = one_point_ops.cut_among(b"\n".join(floats + words) + b"\n")
    assert among.kinds == [1, 2, 2, 2, 2]
    items = float_lines.scan(b"\n".join(floats + words) + b"\n")
    assert [type(x).__name__ for x in items] == ["Block", "Texts", "bytes"]
    assert items[1].values == ["a", "\n", "ünï", ""] and items[1].lines == words
    split = [_op(5, _point("LogStrings", STDOUT, 'x": y'))]   # `": ` in the text: the split cannot tell it
    among = one_point_ops.cut_among(b"\n".join(floats + words + split) + b"\n")
    assert among.kinds == [1, 0, 0, 0, 0, 0] and among.texts is None


@pytest.mark.parametrize("odd", [0.0, 0.05])
def test_a_printing_segment_taken_whole_holds_what_its_runs_hold(odd):
    """scan_whole's Interleaved (a segment of one-point float and text lines alone): its runs are scan's
    items, its Block and Texts are theirs end to end, and what it keeps for the float stream is what
    they keep."""
    lines, found = _client_log(6000, seed=7 + int(odd * 100), odd=odd), 0
    for k in range(1, len(lines) - 200, 97):
        segment = b"\n".join(lines[k:k + 200]) + b"\n"
        whole, items = float_lines.scan_whole(segment), float_lines.scan(segment)
        if type(whole) is not float_lines.Interleaved:
            assert (whole is None and items is None) or _flat_items(whole) == _flat_items(items)
            continue
        found += 1
        assert _flat_items(whole.items()) == _flat_items(items)
        blocks = [x for x in items if type(x) is float_lines.Block]
        texts = [x for x in items if type(x) is float_lines.Texts]
        assert whole.block.paths == sum((b.paths for b in blocks), [])
        assert whole.block.ats == sum((b.ats for b in blocks), []) and len(whole) == 200
        assert whole.texts.values == sum((t.values for t in texts), [])
        assert whole.texts.lines == sum((t.lines for t in texts), [])
        kept, want = float_lines.spillable(whole), float_lines.spillable(items)
        assert (kept is None) == (want is None)
        if kept is not None:
            assert kept[0] == want[0] and kept[1].tobytes() == want[1].tobytes() and kept[2:] == want[2:]
    assert found > 5


def _flat_items(items: list) -> list:
    """Items as comparable values: each Block's and Texts' columns, each other line's bytes."""
    out = []
    for x in items:
        if type(x) is float_lines.Block:
            out.append(("block", x.paths, x.lasts, x.ats, x.one, x.numbered, None if x.array is None else
                        x.array.tobytes()))
        elif type(x) is float_lines.Texts:
            out.append(("texts", x.paths, x.values, x.steps, x.stamps, x.ats, x.lines))
        else:
            out.append(x)
    return repr(out)


CLIENT_LOOP = """
import neptune
run = neptune.init_run(mode="offline", project="ws/proj", capture_hardware_metrics=False,
                       capture_stdout=True, capture_stderr=False, source_files=[])
for i in range(3000):
    run["train/loss"].append(1.0 / (i + 1))
    run["train/acc"].append(i / 3000)
    if i % 10 == 9:
        print("step", i, "loss", 1.0 / (i + 1))
run.stop()
"""


def test_the_clients_own_append_loop_goes_at_once_and_indexes_what_json_reads(tmp_path, monkeypatch):
    """A run the real neptune client wrote: `append(value)` with no step and a printed line every ten
    steps (a LogStrings op per word). The store numbers the steps and folds the words a Block and a
    Texts at a time, the stream numbers the spilled rows, and the index is the one json gives."""
    from neptune_fixtures import _run_script
    _run_script(tmp_path, CLIENT_LOOP)
    log = next(tmp_path.glob(".neptune/offline/run__*/data-1.log")).read_bytes()
    assert b'"step": null' in log and log.count(b'"type": "LogStrings"') > 1000     # the client's shape
    bulk = {"texts": 0, "nulls": 0, "spilled": 0, "segments": 0}
    fed_texts, fed_block, take = offline_v1._Fold._fed_texts, offline_v1._Fold._fed_block, RowSpill.take
    feed_interleaved = offline_v1._Fold.feed_interleaved

    def texts(self, item):
        fed_texts(self, item)
        bulk["texts"] += len(item)

    def block(self, item):
        fed_block(self, item)
        bulk["nulls"] += not item.numbered and len(item)

    def interleaved(self, item):
        ok = feed_interleaved(self, item)
        bulk["segments"] += ok
        return ok

    def taken(self, segment):
        kept = take(self, segment)
        bulk["spilled"] += kept is not None
        return kept
    with monkeypatch.context() as m:
        m.setattr(offline_v1._Fold, "_fed_texts", texts)
        m.setattr(offline_v1._Fold, "_fed_block", block)
        m.setattr(offline_v1._Fold, "feed_interleaved", interleaved)
        m.setattr(RowSpill, "take", taken)
        assert not run_fetch(Mirror.init(tmp_path / "a"), "neptune", str(tmp_path), FetchOptions()).errors
    assert bulk["texts"] > 0.9 * log.count(b'"type": "LogStrings"') and bulk["nulls"] > 5000, bulk
    assert bulk["spilled"] >= 3 and bulk["segments"] >= 3, bulk     # a printing loop's segments at once
    monkeypatch.setattr(float_lines, "scan_whole", lambda segment: None)
    monkeypatch.setattr(float_lines, "read", lambda segment: segment.splitlines())
    monkeypatch.setattr(float_lines, "read_stored", lambda segment, segment_id: segment.splitlines())
    assert not run_fetch(Mirror.init(tmp_path / "b"), "neptune", str(tmp_path), FetchOptions()).errors
    fast, decoded = _index(tmp_path / "a"), _index(tmp_path / "b")
    assert [row[:2] for row in fast["metrics"] if row[0] == "train/acc"] == [("train/acc", k) for k in range(3000)]
    assert list(map(repr, fast["metrics"])) == list(map(repr, decoded["metrics"])) and len(fast["metrics"]) == 6000
    assert fast["texts"] == decoded["texts"] and "step 2999 loss" in fast["texts"][0][4]

"""neptune 1.x: an `append` loop's segments cut by one split (one_point_ops) read as the regex reads
them, and the float rows the store's scan keeps (row_spill) are the rows the index would read again."""
import json
import math
import random
import struct
from collections import OrderedDict

import pytest

from cometx_mirror.sources.neptune import float_lines, offline_v1, one_point_ops
from cometx_mirror.sources.neptune.row_spill import RowSpill
from cometx_mirror.sources.spill import Spill
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch
from cometx_mirror.sources.options import FetchOptions



def write_offline_run(folder, ops):
    """A neptune 1.x offline queue of these ops, as the client's DiskQueue writes them."""
    run_dir = folder / ".neptune" / "offline" / "run__6b1a2c3d-0000-4000-8000-000000000001__1__t"
    run_dir.mkdir(parents=True)
    (run_dir / "metadata.json").write_text(json.dumps({"mode": "offline", "containerType": "run",
                                                        "structureVersion": 2}))
    with open(run_dir / "data-1.log", "w") as f:
        for n, op in enumerate(ops, 1):
            f.write(json.dumps({"obj": op, "version": n, "at": 1700000000.0 + n / 1000}) + "\n")
    return folder

ODD = [2 ** 70 + 1, -(2 ** 64), math.nan, math.inf, -math.inf, -0.0, 0, 7, 1e-320, 1.5e300, None, True]
PATHS = [["train", "loss"], ["ünï", "cödé"], ['quo"te', "back\\slash"], ["a: b", "c"], ["x"]]


def _line(path, value, step, ts, n, at=None) -> bytes:
    """One `append` op as neptune 1.x's DiskQueue writes it (json.dumps, the client's key order)."""
    return json.dumps({"obj": {"type": "LogFloats", "path": path,
                               "values": [{"value": value, "step": step, "ts": ts}]},
                       "version": n, "at": 1700000000.5 + n if at is None else at}).encode()


def _segment(rng, n=300, odd=0.0, top=30) -> bytes:
    def num():
        return rng.choice(ODD) if rng.random() < odd else rng.random() * 10 ** rng.randint(-30, top)
    paths = PATHS[:2] if odd == 0 else PATHS[:3] if odd < 1 else PATHS     # "a: b" splits a line apart
    return b"\n".join(_line(rng.choice(paths), num(), float(k) if odd == 0 else
                            rng.choice([k, float(k), None, 2.5]), 1.7e9 + rng.random() if odd == 0 else num(), k)
                      for k in range(n)) + b"\n"


def _regex_only(monkeypatch, fn, segment):
    with monkeypatch.context() as m:
        m.setattr(one_point_ops, "cut", lambda segment: None)
        m.setattr(one_point_ops, "cut_among", lambda segment: None)
        return fn(segment)


def _view(items):
    """Items as comparable texts: each Block's columns (as read or scan gives them) with their types;
    a Texts as its lines (each one the regex leaves to json)."""
    out = []
    for item in items:
        if type(item) is float_lines.Texts:
            out += item.lines
        elif type(item) is float_lines.Block:
            out.append(repr([(f, getattr(item, f), [type(x) for x in getattr(item, f) or ()]
                              if isinstance(getattr(item, f), list) else None)
                             for f in float_lines.Block.FIELDS]))
        else:
            out.append(item)
    return out


@pytest.mark.parametrize("top", [30, 5])      # 10^5 and less: every value below 9e18, so float rows
@pytest.mark.parametrize("odd", [0.0, 0.2, 1.0])
def test_a_cut_segment_reads_and_scans_as_the_regex_does(monkeypatch, odd, top):
    rng = random.Random(int(odd * 10) + 3)
    for _ in range(8):
        segment = _segment(rng, odd=odd, top=top)
        if odd < 1:          # the split takes it; odd tokens are decoded json's way, a column at a time
            assert one_point_ops.cut(segment) is not None
            assert type(float_lines.read(segment)[0]) is float_lines.Block
        for fn in (float_lines.read, float_lines.scan):
            assert _view(fn(segment) or []) == _view(_regex_only(monkeypatch, fn, segment) or [])


def test_plain_float_points_come_as_rows_of_their_exact_doubles():
    rng = random.Random(5)
    segment = _segment(rng, 50, top=15)        # below 9e18: orjson read no int as a float
    block = float_lines.read(segment)[0]
    assert block.array is not None and block.array.flags.c_contiguous
    for line, row in zip(segment.splitlines(), block.array):
        point = json.loads(line)["obj"]["values"][0]
        assert struct.pack("<3d", *row) == struct.pack("<3d", point["value"], point["step"], point["ts"])


ONE = _line(["m"], 1.5, 2.0, 3.0, 7)
BROKEN = [
    ONE.replace(b'"step": 2.0, "ts"', b'"ts": 3.0, "step"'),           # keys swapped
    ONE.replace(b'"value": 1.5', b'"value": 1.5, "x": 1'),              # another key
    ONE.replace(b'"value": 1.5', b'"value":  1.5'),                    # json's, not the client's spacing
    ONE.replace(b'"value": 1.5', b'"value": 1.5\t'),
    ONE.replace(b'["m"]', b'[ "m"]'),
    ONE.replace(b'"value": 1.5', b'"value": 1.5\n'),                   # a newline inside a line
    ONE.replace(b'"value": 1.5', b'"value": 1, 2'),
    ONE.replace(b'"value": 1.5', b'"value": "1.5"'),
    ONE.replace(b'"value": 1.5', b'"value": [1.5]'),
    ONE.replace(b'"value": 1.5', b'"value": 007'),
    ONE.replace(b'"value": 1.5', b'"value": '),
    ONE.replace(b'"version": 7', b'"version": {"a": 1}'),
    ONE.replace(b'"at": ', b'"at": \x00'),
    ONE.replace(b'["m"]', b'["m\\x"]'),                                  # a path that is not JSON
    ONE.replace(b'["m"]', b'["m", 3]'),                                  # a path not of strings
    ONE.replace(b'["m"]', b'["m": 1]'),
    ONE.replace(b'LogFloats', b'LogStrings'),
    ONE.replace(b'}]}, "version"', b'}, {"value": 1.0, "step": 3.0, "ts": 3.0}]}, "version"'),
    b"not json at all",
]


@pytest.mark.parametrize("k", range(len(BROKEN)))
def test_a_segment_with_one_line_off_the_template_is_read_as_the_regex_reads_it(monkeypatch, k):
    rng = random.Random(k)
    lines = _segment(rng, 40, top=15).splitlines()
    lines[rng.randrange(40)] = BROKEN[k]
    segment = b"\n".join(lines) + b"\n"
    for fn in (float_lines.read, float_lines.scan):
        assert _view(fn(segment) or []) == _view(_regex_only(monkeypatch, fn, segment) or [])


def _op_line(obj, n) -> bytes:
    return json.dumps({"obj": obj, "version": n, "at": 1700000000.5 + n}).encode()


# lines of other ops a training loop's queue holds among its points; the regex leaves each to json
OTHERS = [_op_line({"type": "LogStrings", "path": ["monitoring", "7d3a", "stdout"],
                    "values": [{"value": "epoch 3: loss 0.25\n", "step": None, "ts": 1.7e9}]}, 5),
          _op_line({"type": "AssignString", "path": ["sys", "name"], "value": "ünï \"q\""}, 6),
          _op_line({"type": "ClearFloatLog", "path": ["train", "loss"]}, 7),
          _op_line({"type": "AssignFloat", "path": ["parameters", "lr"], "value": 1e-3}, 8),
          b"", b"not json", b'{"obj": {"type": "LogStrings", "path": ["a"], "values": [{"value": "\x00"}]}}']
# lines that are LogFloats ops of another shape: the regex judges them, so the cut leaves the segment
REGEX_WAY = [_line(["train", "loss"], 0.5, 1.0, 2.0, 9).replace(b", ", b",  ", 1),
             json.dumps({"obj": {"type": "LogFloats", "path": ["x"], "values": [
                 {"value": 1.0, "step": 1.0, "ts": 2.0}, {"value": 2.0, "step": 2.0, "ts": 3.0}]},
                 "version": 9, "at": 1.0}).encode()]


def _view_rows(items):
    return _view(items) + [item.array.tobytes() for item in items
                           if type(item) is float_lines.Block and item.array is not None]


@pytest.mark.parametrize("top", [30, 5])
@pytest.mark.parametrize("odd", [0.0, 0.2, 1.0])
def test_a_segment_with_other_ops_among_its_points_is_cut_as_the_regex_reads_it(monkeypatch, odd, top):
    rng = random.Random(int(odd * 10) + top)
    for k in range(12):
        lines = _segment(rng, 200, odd=odd, top=top).split(b"\n")[:-1]
        for _ in range(rng.randint(1, 12)):
            lines.insert(rng.randint(0, len(lines)), rng.choice(OTHERS))
        if k % 3 == 0:
            lines.insert(0, OTHERS[1])          # a run's first segment: its assigns come first
        segment = b"\n".join(lines) + b"\n"
        if odd < 1:                  # the cut takes it ("a: b" paths in the odd ones split a line apart)
            assert one_point_ops.cut_among(segment) is not None
        for fn in (float_lines.read, float_lines.scan):
            assert _view_rows(fn(segment) or []) == _view_rows(_regex_only(monkeypatch, fn, segment) or [])


@pytest.mark.parametrize("line", REGEX_WAY)
def test_a_segment_with_a_float_op_of_another_shape_goes_the_regex_way(monkeypatch, line):
    lines = _segment(random.Random(4), 50).split(b"\n")[:-1]
    lines.insert(20, line)
    segment = b"\n".join(lines) + b"\n"
    assert one_point_ops.cut_among(segment) is None
    assert one_point_ops.cut_among(segment[:-1]) is None and one_point_ops.cut_among(OTHERS[1] + b"\n") is None
    assert one_point_ops.cut_among(OTHERS[0] + b"\n").kinds == [one_point_ops.Among.TEXT]    # a printed word alone
    for fn in (float_lines.read, float_lines.scan):
        assert _view_rows(fn(segment) or []) == _view_rows(_regex_only(monkeypatch, fn, segment) or [])


def test_a_segment_without_its_last_newline_or_with_a_carriage_return_is_not_cut():
    segment = _segment(random.Random(1), 10)
    assert one_point_ops.cut(segment) is not None
    assert one_point_ops.cut(segment[:-1]) is None
    assert float_lines.read(segment.replace(b"\n", b"\r\n", 1)) == segment.replace(b"\n", b"\r\n", 1).splitlines()


def test_the_spill_gives_back_each_segments_rows_and_lines_bit_for_bit(tmp_path):
    spill = RowSpill(tmp_path / "tmp")
    import numpy
    a = numpy.array([[math.nan, 1.0, 2.0], [-0.0, 5e-324, math.inf]])
    spill.put("s1", ["a", "b"], a, None, [2, 0], [b""], [])
    spill.put("s2", ["b"], a[1:], [1], [0, 1, -2, 0, 0], [b'{"obj": 1}', b"\x00\xff", b""], ["t", "b"])
    paths, rows, ends, layout, lines, text_paths = spill.take("s1")
    assert paths == ["a", "b"] and rows.tobytes() == a.tobytes() and ends is None
    assert (layout, lines, text_paths) == ([2, 0], [b""], [])
    paths, rows, ends, layout, lines, text_paths = spill.take("s2")
    assert paths == ["b"] and rows.tobytes() == a[1:].tobytes() and ends == [1]
    assert (layout, lines, text_paths) == ([0, 1, -2, 0, 0], [b'{"obj": 1}', b"\x00\xff", b""], ["t", "b"])
    assert spill.take("s3") is None
    spill.close()
    assert spill.take("s1") is None
    small = RowSpill(tmp_path / "tmp")
    small.put("s1", ["a", "b"], a, None, [2, 0], [b""], [])
    small.CAP = small._size
    assert not small.put("s2", ["b"], a[1:], None, [1, 0], [b""], [])     # past the cap: not kept
    assert small.take("s1") is not None and small.take("s2") is None


def test_past_so_many_open_spills_the_oldest_is_closed(tmp_path, monkeypatch):
    import numpy
    monkeypatch.setattr(RowSpill, "OPEN_AT_MOST", 2)
    monkeypatch.setattr(Spill, "_open", OrderedDict())     # this test's spills only (earlier tests may leave some)
    rows = numpy.zeros((1, 3))
    spills = [RowSpill(tmp_path / "tmp") for _ in range(3)]
    for k, spill in enumerate(spills):
        spill.put(f"s{k}", ["a"], rows, None, [1, 0], [b""], [])
    assert spills[0].take("s0") is None           # closed: its segments are read from the store
    spills[0].put("s3", ["b", "a"], numpy.eye(2, 3), None, [2, 0], [b""], [])   # a run still being stored: a new file
    paths, back, *_ = spills[0].take("s3")
    assert paths == ["b", "a"] and back.tobytes() == numpy.eye(2, 3).tobytes()
    assert spills[1].take("s1") is None           # the oldest open one, closed in its turn
    assert spills[2].take("s2") is not None
    for spill in spills:
        spill.close()
    assert not Spill._open


def _metrics(mirror_root):
    import duckdb
    con = duckdb.connect(str(mirror_root / "index.duckdb"), read_only=True)
    rows = con.execute("SELECT name, step, timestamp, value FROM metrics ORDER BY name, step, timestamp").fetchall()
    con.close()
    return rows


def test_a_fetch_indexes_the_rows_it_spilled_as_it_would_from_the_store(tmp_path, monkeypatch):
    ops = [{"type": "AssignString", "path": ["sys", "name"], "value": "r"}]
    for step in range(8500):          # five segments: the first two with other ops (an assign, a clear)
        ops.append({"type": "LogFloats", "path": ["train", f"s{step % 3}"],
                    "values": [{"value": 1 / (step + 1), "step": float(step // 3), "ts": 1.7e9 + step}]})
        if step == 3000:
            ops.append({"type": "ClearFloatLog", "path": ["train", "s1"]})
    folder = write_offline_run(tmp_path / "src", ops)
    taken, closed = [], []
    take, close = RowSpill.take, RowSpill.close
    monkeypatch.setattr(RowSpill, "take", lambda self, s: taken.append(take(self, s)) or taken[-1])
    monkeypatch.setattr(RowSpill, "close", lambda self: closed.append(1) or close(self))
    result = run_fetch(Mirror.init(tmp_path / "a"), "neptune", str(folder), FetchOptions())
    assert not result.errors
    assert sum(t is not None for t in taken) == 5 and closed      # other ops among the points too
    monkeypatch.setattr(RowSpill, "put", lambda self, *a: None)    # nothing kept: every segment read again
    assert not run_fetch(Mirror.init(tmp_path / "b"), "neptune", str(folder), FetchOptions()).errors
    spilled, read = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert len(spilled) == sum(step % 3 != 1 or step > 3000 for step in range(8500))   # s1 from its clear
    assert spilled == read


@pytest.mark.parametrize("odd", ["", "strings-to-a-float-series", "a-clear", "a-late-series", "a-bad-line"])
def test_an_append_loop_that_prints_indexes_as_from_the_store(tmp_path, monkeypatch, odd):
    """A printed line every 10 ops: a spilled segment goes as one Block, its other lines only counted
    (offline_v1._spilled_whole), unless one of them touches a float series or a series starts in it;
    either way the rows are the ones read from the store Block by Block."""
    ops = [{"type": "AssignString", "path": ["sys", "name"], "value": "r"}]
    for k in range(6500):            # four segments
        path = ["train", f"s{k % 3}"] if not (odd == "a-late-series" and k > 4100 and k % 5 == 0) else ["late", "x"]
        ops.append({"type": "LogFloats", "path": path,
                    "values": [{"value": 1 / (k + 1), "step": float(k // 3), "ts": 1.7e9 + k}]})
        if k % 10 == 9:
            ops.append({"type": "LogStrings", "path": ["monitoring", "7d3a", "stdout"],
                        "values": [{"value": f"step {k}\n", "step": None, "ts": 1.7e9 + k}]})
        if k == 3000 and odd == "strings-to-a-float-series":
            ops.append({"type": "LogStrings", "path": ["train", "s2"],
                        "values": [{"value": "oops", "step": None, "ts": 1.7e9 + k}]})
        if k == 3000 and odd == "a-clear":
            ops.append({"type": "ClearFloatLog", "path": ["train", "s1"]})
    folder = write_offline_run(tmp_path / "src", ops)
    if odd == "a-bad-line":
        log = next(folder.glob(".neptune/offline/*/data-1.log"))
        lines = log.read_bytes().split(b"\n")
        lines[2500] = b'{"obj": {"type": "LogStrings", "path": ["monitoring", "7d3a", "stdout"], "valu'
        log.write_bytes(b"\n".join(lines))
    wholes = []
    real = offline_v1._spilled_whole
    monkeypatch.setattr(offline_v1, "_spilled_whole", lambda *a: wholes.append(real(*a)) or wholes[-1])
    errors = ["malformed operation"] if odd == "a-bad-line" else []
    result = run_fetch(Mirror.init(tmp_path / "a"), "neptune", str(folder), FetchOptions())
    assert [e.split(": ")[-1].split(",")[0] for e in result.errors] == errors
    whole = [w is not None for w in wholes]
    # Block by Block: the first segment (its series start there), and the one with a line that touches a
    # float series or where a series starts (a malformed line is only not counted)
    assert whole.count(True) >= 2 and whole.count(False) == (1 if odd in ("", "a-bad-line") else 2), whole
    monkeypatch.setattr(RowSpill, "put", lambda self, *a: None)     # Block by Block, from the store
    result = run_fetch(Mirror.init(tmp_path / "b"), "neptune", str(folder), FetchOptions())
    assert [e.split(": ")[-1].split(",")[0] for e in result.errors] == errors
    spilled, read = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert len(spilled) > 6000 - (1000 if odd == "a-clear" else 0)
    assert list(map(repr, spilled)) == list(map(repr, read))


def test_an_extend_loops_segments_are_spilled_and_index_as_from_the_store(tmp_path, monkeypatch):
    """Ops of many points (`extend` / `log([...])`): the scan keeps each op's points and where they end,
    in segments with other ops among them too (an assign, the run's stdout, a clear)."""
    ops = [{"type": "AssignString", "path": ["sys", "name"], "value": "r"}]
    for k in range(5000):           # three segments, each with other ops; the last with a NaN point
        n = 1 + k % 7
        ops.append({"type": "LogFloats", "path": ["train", f"s{k % 4}"],
                    "values": [{"value": math.nan if k == 4900 and j == 0 else 1 / (k + j + 1),
                                "step": float(k * 8 + j), "ts": 1.7e9 + k + j / 8} for j in range(n)]})
        if k % 700 == 350:
            ops.append({"type": "LogStrings", "path": ["monitoring", "stdout"],
                        "values": [{"value": f"epoch {k}", "step": None, "ts": 1.7e9 + k}]})
        if k == 2500:
            ops.append({"type": "ClearFloatLog", "path": ["train", "s1"]})
    folder = write_offline_run(tmp_path / "src", ops)
    taken = []
    take = RowSpill.take
    monkeypatch.setattr(RowSpill, "take", lambda self, s: taken.append(take(self, s)) or taken[-1])
    assert not run_fetch(Mirror.init(tmp_path / "a"), "neptune", str(folder), FetchOptions()).errors
    kept = [t for t in taken if t is not None]
    assert len(kept) == 2 and all(ends is not None for _, _, ends, _, _, _ in kept)     # not the NaN's
    assert all(0 in layout for _, _, _, layout, _, _ in kept)
    monkeypatch.setattr(RowSpill, "put", lambda self, *a: None)
    assert not run_fetch(Mirror.init(tmp_path / "b"), "neptune", str(folder), FetchOptions()).errors
    spilled, read = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    s1_cleared = sum(1 + k % 7 for k in range(5000) if k % 4 == 1 and k <= 2500)
    assert len(spilled) == sum(1 + k % 7 for k in range(5000)) - s1_cleared
    assert list(map(repr, spilled)) == list(map(repr, read))      # the NaN too

"""neptune 1.x store fold: float_lines.scan decodes no point of a client-shaped op, so the regex alone
must keep every line json would refuse (or judge otherwise) out of its Blocks."""
import json

import numpy
import pytest

from cometx_mirror.sources.neptune import float_lines


def _op(n, points):
    return json.dumps({"obj": {"type": "LogFloats", "path": ["m"], "values": [
        {"value": v, "step": s, "ts": t} for v, s, t in points]}, "version": n, "at": 1.7e9 + n}).encode()


GOOD = [_op(k, [(0.5, float(k * 3 + j), 2.0) for j in range(3)]) for k in range(4)]


@pytest.mark.parametrize("bad", [b"007", b"1.", b"-", b"nan", b"1e", b"tru", b"1" * 150])
@pytest.mark.parametrize("key", [b'"value": 0.5', b'"ts": 2.0'])
def test_a_token_inside_a_many_point_op_is_judged_by_json(bad, key):
    """A token of a point the fold never decodes (not the last step): the segment goes to json."""
    line = GOOD[1].replace(key, key.split(b":")[0] + b": " + bad, 1)
    segment = b"\n".join(GOOD[:1] + [line] + GOOD[2:]) + b"\n"
    assert float_lines.scan(segment) is None
    read = float_lines.read(segment)
    if bad == b"1" * 150:      # json takes it: read's objects are json's, line by line
        assert read == segment.splitlines()
        assert json.loads(line)["obj"]["values"][0]["value" if b"value" in key else "ts"] == int(bad)
    else:
        with pytest.raises(ValueError):
            json.loads(line)
        assert read == segment.splitlines()


def test_the_fold_block_of_many_point_ops_gives_each_ops_last_step_and_time():
    lines = GOOD + [_op(9, [(1.0, 5.0, 2.0), (2.0, None, 3.0), (3.0, 7, 4.0)])]
    (block, tail) = float_lines.scan(b"\n".join(lines) + b"\n")
    assert tail == b"" and block.single() is False and block.numbered is False     # the null step is seen
    assert [(path, steps, at) for path, at, steps, _, _ in block.ops()] == \
        [("m", [json.loads(x)["obj"]["values"][-1]["step"]], json.loads(x)["at"]) for x in lines]
    assert block.array is None and block.values is None      # a null step: no point kept for the stream
    segment = b"\n".join(GOOD) + b"\n"
    (block, _) = float_lines.scan(segment)
    # every token a float: the scan keeps the points as `read` gives them, for the float stream to take
    (read, _) = float_lines.read(segment)
    assert block.numbered is True and block.ends == read.ends and block.array.tobytes() == read.array.tobytes()
    (spilled, _) = float_lines.spilled(*float_lines.spillable(float_lines.scan(segment)))
    assert (spilled.paths, spilled.ends, spilled.lasts) == (read.paths, read.ends, read.lasts)


def _fields(items):
    """Items as comparable values: a Block's fields with their types, and its float rows' bits; a
    Texts' paths and steps (what the stream reads of it)."""
    out = []
    for item in items:
        if type(item) is float_lines.Texts:
            out.append(("texts", item.paths, item.steps))
        elif type(item) is float_lines.Block:
            out.append([(f, getattr(item, f), [type(x) for x in getattr(item, f) or ()]
                         if isinstance(getattr(item, f), list) else None) for f in float_lines.Block.FIELDS]
                       + [item.array.tobytes() if item.array is not None else None])
        else:
            out.append(item)
    return out


def _other(n):
    """A line the script printed, as the client's stdout capture queues it."""
    return json.dumps({"obj": {"type": "LogStrings", "path": ["monitoring", "7d3a", "stdout"], "values": [
        {"value": f"line {n}", "step": None, "ts": 2.0}]}, "version": n, "at": 1.7e9 + n}).encode()


@pytest.mark.parametrize("most", [1, 3])
@pytest.mark.parametrize("layout", ["o b o", "b o b", "o b o b o", "b o o b b"])
def test_a_segment_of_float_ops_among_other_lines_spills_what_read_gives(layout, most):
    """Ops of floats between other ops (a run's stdout, its assigns), each of one point (`append`) or of
    up to `most`: the scan keeps every Block's points, and the spill's items are `read`'s, each other
    line the same bytes in its place."""
    lines, n = [], 0
    for part in layout.split():
        if part == "o":
            lines.append(_other(n))
            n += 1
        else:
            for k in range(5):
                lines.append(_op(n, [(1 / (n + j + 1), float(n * 8 + j), 2.0 + j) for j in range(1 + k % most)]))
                n += 1
    segment = b"\n".join(lines) + b"\n"
    kept = float_lines.spillable(float_lines.scan(segment))
    read = float_lines.read(segment)
    assert kept is not None and kept[3] == [len(x) if type(x) is float_lines.Block else
                                            -len(x) if type(x) is float_lines.Texts else 0 for x in read]
    assert (kept[2] is None) == (most == 1)        # one point an op: no ends kept
    assert _fields(float_lines.spilled(*kept)) == _fields(read)


@pytest.mark.parametrize("odd", [[(1.0, 3, 2.0)], [(1.0, 3, 2.0), (2.0, None, 3.0)], [(None, 1.0, 2.0)]])
def test_a_segment_with_a_float_op_that_is_not_all_floats_is_not_spilled(odd):
    """An int step, a null value: read's Block holds json's lists, not rows, and nothing is kept for the
    stream."""
    lines = [_other(0)] + ([_op(k, [(0.5, float(k), 2.0)]) for k in range(1, 4)] if len(odd) == 1 else GOOD)
    segment = b"\n".join(lines + [_op(9, odd), _other(10)]) + b"\n"
    assert float_lines.spillable(float_lines.scan(segment)) is None
    assert all(item.array is None for item in float_lines.read(segment) if type(item) is float_lines.Block)


def test_the_store_folds_many_point_ops_on_new_series_without_decoding_them(tmp_path, monkeypatch):
    """`extend` ops on series the fold has not met yet: one at a time from their last step, not json."""
    from cometx_mirror.sources.neptune import offline_v1
    from cometx_mirror.store.mirror import Mirror

    lines = [json.dumps({"obj": {"type": "LogFloats", "path": ["s", str(k % 3)], "values": [
        {"value": 0.5, "step": None if j == 1 and k == 4 else float(k * 5 + j), "ts": 2.0} for j in range(5)]},
        "version": k, "at": 1.7e9 + k}).encode() for k in range(30)]
    run_dir = tmp_path / "run__00000000-0000-0000-0000-000000000016__1__x"
    run_dir.mkdir()
    (run_dir / "data-1.log").write_bytes(b"\n".join(lines) + b"\n")
    parsed = []
    parse = offline_v1._parse
    monkeypatch.setattr(offline_v1, "_parse", lambda line: parsed.append(line) or parse(line))
    mirror = Mirror.init(tmp_path / "m")
    reader = offline_v1._RunReader(run_dir, "w", "p", "k")
    manifest = reader.store(mirror, None)
    folder = reader._kept[1]
    assert parsed == []                       # no line decoded whole
    monkeypatch.undo()
    refold = offline_v1.fold(mirror, manifest)     # json, line by line
    assert folder.next_step == {"s/0": 140.0, "s/1": 145.0, "s/2": 150.0}
    assert repr({k: v for k, v in vars(refold).items() if k != "float_points"}) == \
        repr({k: v for k, v in vars(folder.run).items() if k != "float_points"})


def _items(items):
    """read's items as plain data (a Block's slots; a Texts as its lines, each an other line)."""
    out = []
    for item in items:
        if type(item) is float_lines.Texts:
            out += item.lines
        else:
            out.append(item if type(item) is bytes else {k: getattr(item, k) for k in float_lines.Block.FIELDS})
    return out


def test_the_fast_token_decode_gives_jsons_objects_where_orjson_alone_would_not():
    """orjson reads an int past 64 bits as a float and refuses NaN / 1e400: json's objects still."""
    tricky = [(12345678901234567890123, 1.0, 2.0), (-0.0, 2.0, 5e-324), (1e300, 3.0, 9.5e18),
              (0.1, 18446744073709551616, 2.0), (1.7976931348623157e308, 4.0, -9223372036854775809)]
    lines = [_op(1, tricky), _op(2, [(0.5, 5.0, 2.0)] * 3)]
    segment = b"\n".join(lines) + b"\n"
    (block, _) = float_lines.read(segment)
    want = [p for line in lines for p in json.loads(line)["obj"]["values"]]
    got = list(zip(block.values, block.steps, block.stamps))
    assert [tuple(map(repr, g)) for g in got] == [tuple(repr(p[k]) for k in ("value", "step", "ts")) for p in want]
    assert [tuple(map(type, g)) for g in got] == [tuple(type(p[k]) for k in ("value", "step", "ts")) for p in want]
    nan = b"\n".join([lines[1], lines[1].replace(b'"value": 0.5', b'"value": NaN', 1)]) + b"\n"
    (block, _) = float_lines.read(nan)
    assert block.values[3] != block.values[3] and block.values[:3] == [0.5] * 3


SEGMENTS = {
    "extend": GOOD,
    "append": [_op(k, [(0.25 * k, float(k), 2.0 + k)]) for k in range(5)],
    "mixed": [b'{"obj": {"type": "AssignString", "path": ["sys", "name"], "value": "x"}, "version": 0, "at": 1.0}']
             + GOOD[:2] + [_op(7, [(1.0, 8.0, 2.0)])] + [b""] + GOOD[2:] + [_op(8, [(1.0, None, 3.0)] * 2)],
    "other lines only": [b'{"obj": {"type": "AssignFloat", "path": ["a"], "value": 1.5}, "version": 0, "at": 1.0}'],
    "printed words": [_op(k, [(0.25 * k, 3 if k == 2 else None, 2.0 + k)]) for k in range(5)]    # an int: no rows
                     + [_other(n) for n in range(6)] + [_op(9, [(1.0, None, 3.0)])] + [_other(7)],
}


@pytest.mark.parametrize("name", SEGMENTS)
def test_a_segment_the_store_scanned_is_cut_by_its_layout_as_the_regex_cuts_it(name, monkeypatch):
    """The float stream of a fetch reads a stored segment again: with the layout the store's scan kept,
    it gives the same items without running LINE."""
    segment = b"\n".join(SEGMENTS[name]) + b"\n"
    want = _items(float_lines.read(segment))
    float_lines.remember("id-" + name, float_lines.scan(segment))

    class NoRegex:
        def findall(self, _):
            raise AssertionError("LINE ran")
    if name != "other lines only":        # no client-shaped line: nothing to cut, the regex reads it
        monkeypatch.setattr(float_lines, "LINE", NoRegex())
    assert _items(float_lines.read_stored(segment, "id-" + name)) == want
    assert "id-" + name not in float_lines._LAYOUTS      # read once: the memo does not grow with the run


@pytest.mark.parametrize("many", [False, True])
def test_a_null_step_is_nan_in_the_spilled_rows_and_none_in_reads_steps(many):
    """`append(value)` / `extend(values)` give no step: the rows hold NaN there (json's own NaN is refused
    by the rows), the Blocks say unnumbered, and read's steps give None, as json's lists do."""
    odd = [(1.0, None, 2.0), (2.0, 3.0, 3.0)] if many else [(1.0, None, 2.0)]
    lines = [_other(0)] + GOOD + [_op(9, odd), _other(10)]
    segment = b"\n".join(lines) + b"\n"
    kept = float_lines.spillable(float_lines.scan(segment))
    assert kept is not None and int(numpy.isnan(kept[1][:, 1]).sum()) == 1
    (block,) = [item for item in float_lines.read(segment) if type(item) is float_lines.Block]
    assert not block.numbered and block.steps.count(None) == 1 and block.array is not None
    assert _fields(float_lines.spilled(*kept)) == _fields(float_lines.read(segment))
    marked = segment.replace(b'"step": 3.0', b'"step": ' + float_lines._NULL_MARK)   # the stand-in, spelt
    assert all(item.array is None for item in float_lines.read(marked) if type(item) is float_lines.Block)

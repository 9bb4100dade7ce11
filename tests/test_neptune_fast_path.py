"""neptune 1.x float stream: the regex fast path (float_lines) gives the points json gives, and refuses
every line not in the client's exact shape."""
import json
import math
import os
import random

import pytest

from cometx_mirror.sources.neptune import float_lines, offline_v1
from cometx_mirror.store.mirror import Mirror

VALUES = [2 ** 70 + 1, -(2 ** 64), math.nan, math.inf, -math.inf, -0.0, 0, 1e-320, 1.5e300, 0.1, 7, 1 / 3]
STEPS = [0, 3, 2.5, None, 2 ** 63 + 5, 1e17, -0.0, None]
PATHS = [["train", "loss"], ["ünï", "cödé"], ['quo"te', "back\\slash"], ["a/b", "c"]]


def _line(path, value, step, ts, n, more=()):
    """A LogFloats op as neptune 1.x's DiskQueue writes it (json.dumps, the client's key order); `more`
    are further (value, step, ts) points, as `extend` / `log([...])` write them in one op."""
    return json.dumps({"obj": {"type": "LogFloats", "path": path,
                               "values": [{"value": v, "step": s, "ts": t} for v, s, t in [(value, step, ts), *more]]},
                       "version": n, "at": 1700000000.5 + n}).encode()


def _fuzz(n=600, seed=15, many=0.0):
    """Client-shaped LogFloats lines; a share `many` of them ops of 2 to 120 points."""
    rng = random.Random(seed)

    def point():
        return (rng.choice(VALUES + [rng.random() * 10 ** rng.randint(-30, 30)]),
                rng.choice(STEPS + [rng.randint(0, 10 ** 6)]), rng.choice([1.7e9 + rng.random(), 5.0]))
    return [_line(rng.choice(PATHS), *point(), i,
                  [point() for _ in range(rng.randint(1, 119))] if rng.random() < many else ())
            for i in range(n)]


def _json_points(line):
    op = json.loads(line)["obj"]
    return ("/".join(op["path"]), *([p[k] for p in op["values"]] for k in ("step", "ts", "value")))


def _same(a, b):
    return repr(a) == repr(b) and list(map(type, a[1] + a[2] + a[3])) == list(map(type, b[1] + b[2] + b[3]))


def _flat(items, scan=False):
    """Blocks as one item per line: (path, [step], [ts], [value]) as read gave them before, or
    (path, step, at) for scan."""
    out = []
    for item in items:
        if type(item) is float_lines.Block:
            out += ((path, steps[-1], at) if scan else (path, steps, stamps, values)
                    for path, at, steps, stamps, values in item.ops())
        else:
            out.append(item)
    return out


@pytest.mark.parametrize("many", [0.0, 0.3, 1.0])
def test_client_shaped_lines_give_the_objects_json_gives(many):
    lines = _fuzz(600 if not many else 200, many=many)
    got = _flat(float_lines.read(b"\n".join(lines) + b"\n"))
    assert got[-1] == b"" and len(got) == len(lines) + 1      # the empty match after the last newline
    for line, item in zip(lines, got):
        assert type(item) is tuple, line
        assert _same(item, _json_points(line)), line


REFUSED = [
    b'{"obj": {"type": "LogFloats", "path": ["m"], "values": [{"value": 1.0, "ts": 2.0, "step": 1}]}, '
    b'"version": 1, "at": 3.0}',                                       # another key order
    b'{"obj": {"type": "LogFloats", "path": ["m"], "values": [{"value": 1.0, "ts": 2.0}]}, "version": 1, "at": 3.0}',
    b'{"obj":{"type":"LogFloats","path":["m"],"values":[{"value":1.0,"step":1,"ts":2.0}]},"version":1,"at":3.0}',
    b'{"obj": {"type": "LogFloats", "path": ["m"], "values": [{"value": "1.0", "step": 1, "ts": 2.0}]}, '
    b'"version": 1, "at": 3.0}',                                       # a string value
    b'{"obj": {"type": "LogFloats", "path": ["m"], "values": [{"value": 1.0, "step": 1, "ts": 2.0}, '
    b'{"value": 2.0, "ts": 2.5, "step": 2}]}, "version": 1, "at": 3.0}',   # many points, one in another order
    b'{"obj": {"type": "LogFloats", "path": ["m"], "values": [{"value": 1.0, "step": 1, "ts": 2.0},'
    b'{"value": 2.0, "step": 2, "ts": 2.5}]}, "version": 1, "at": 3.0}',   # many points, no space between
    b'{"obj": {"type": "LogFloats", "path": ["m"], "values": []}, "version": 1, "at": 3.0}',    # no point
    b'{"obj": {"type": "LogStrings", "path": ["m"], "values": [{"value": 1.0, "step": 1, "ts": 2.0}]}, '
    b'"version": 1, "at": 3.0}',
    b'{"obj": {"type": "LogFloats", "path": ["m"], "values": [{"value": 1.0, "step": 1, "ts": 2.0}]}, '
    b'"version": 1, "at": 3.0, "x": 1}',                                # another key
]


def test_lines_not_in_the_clients_shape_are_left_to_json():
    lines = _fuzz(20)
    mixed = [x for pair in zip(lines, REFUSED + REFUSED[:1] * 13) for x in pair]
    got = _flat(float_lines.read(b"\n".join(mixed) + b"\n"))
    assert got[1::2][:len(REFUSED)] == REFUSED
    assert all(type(item) is tuple for item in got[0:-1:2])


@pytest.mark.parametrize("bad", [b"007", b"1.", b"-", b"nan", b"1e", b"tru"])
def test_a_token_json_refuses_sends_the_segment_to_json(bad):
    lines = _fuzz(5)
    broken = _line(["m"], 1.0, 1, 2.0, 9).replace(b'"value": 1.0', b'"value": ' + bad)
    segment = b"\n".join(lines + [broken]) + b"\n"
    assert float_lines.read(segment) == segment.splitlines()


def test_a_path_that_is_not_json_leaves_its_line_out_as_json_does():
    bad = _line(["m"], 1.0, 1, 2.0, 1).replace(b'["m"]', b'["m\\x"]')
    assert offline_v1._parse(bad) is None
    assert _flat(float_lines.read(bad + b"\n" + _line(["n"], 2.0, 1, 2.0, 2)))[0][0] == "n"


def _stream(mirror, manifest, monkeypatch, fast):
    if not fast:
        monkeypatch.setattr(float_lines, "read", lambda segment: segment.splitlines())
        monkeypatch.setattr(float_lines, "read_stored", lambda segment, segment_id: segment.splitlines())
    folder = offline_v1._Fold("w", "p", "k", {}, {}, {}, {})
    for rec in offline_v1.iter_ops(mirror, manifest):
        folder.feed(rec)
    points = []
    for batch in offline_v1._float_points(mirror, manifest, folder.float_from):
        points += zip(batch.name, batch.step, batch.timestamp, map(repr, batch.value))
    monkeypatch.undo()
    return points


@pytest.mark.parametrize("many", [0.0, 0.1])
def test_the_float_stream_is_the_same_with_and_without_the_fast_path(tmp_path, monkeypatch, many):
    mirror = Mirror.init(tmp_path / "m")
    lines = _fuzz(1500, many=many)
    lines[700:700] = [json.dumps({"obj": {"type": "ClearFloatLog", "path": ["train", "loss"]},
                                  "version": 0, "at": 1.0}).encode(), b"not json"] + REFUSED
    segments = [mirror.objects.put_bytes(b"\n".join(lines[k:k + 400]) + b"\n") for k in range(0, len(lines), 400)]
    manifest = {"logs": [{"file": "data-1.log", "segments": segments}]}
    fast = _stream(mirror, manifest, monkeypatch, True)
    assert len(fast) > 1000
    assert fast == _stream(mirror, manifest, monkeypatch, False)


def _op(n, typ, path, **fields):
    return json.dumps({"obj": {"type": typ, "path": path, **fields}, "version": n, "at": 1.6e9 + n}).encode()


def _store_fold(tmp_path, data: bytes, name: str, monkeypatch, fast: bool):
    """The store's fold of a run folder holding `data` as its op log (with or without float_lines.scan)."""
    run_dir = tmp_path / name / "run__00000000-0000-0000-0000-000000000015__1__x"
    run_dir.mkdir(parents=True)
    (run_dir / "data-1.log").write_bytes(data)
    os.utime(run_dir / "data-1.log", ns=(1_700_000_000 * 10**9,) * 2)    # stamped alike, fast or slow
    if not fast:
        monkeypatch.setattr(float_lines, "scan_whole", lambda segment: None)
    mirror = Mirror.init(tmp_path / name / "m")
    reader = offline_v1._RunReader(run_dir, "w", "p", "k")
    manifest = reader.store(mirror, None)
    folder = reader._kept[1]
    monkeypatch.undo()
    state = (folder.types, folder.float_from, folder.next_step, folder.i,
             {k: v for k, v in vars(folder.run).items() if k != "float_points"})
    return manifest, state, mirror


@pytest.mark.parametrize("many", [0.0, 0.1])
def test_the_stores_fold_is_the_same_with_and_without_the_fast_path(tmp_path, monkeypatch, many):
    lines = _fuzz(2600, seed=16, many=many)
    lines[0:0] = [_op(1, "LogStrings", ["ünï", "cödé"], values=[{"value": "x", "step": None, "ts": 1.0}]),
                  _op(2, "AssignFloat", ["train", "loss"], value=0.5)]          # a float line on a text series
    lines[900:900] = [_op(3, "ClearFloatLog", ["train", "loss"]), b"not json", b"", b"   ",
                      _op(4, "DeleteAttribute", ["a/b", "c"])] + REFUSED
    torn = _line(["train", "loss"], 1.0, 1, 2.0, 9)[:40]
    data = b"\n".join(lines) + b"\n" + torn
    fast, fast_state, mirror = _store_fold(tmp_path, data, "fast", monkeypatch, True)
    slow, slow_state, _ = _store_fold(tmp_path, data, "slow", monkeypatch, False)
    assert fast == {**slow, "run_dir": fast["run_dir"]} and repr(fast_state) == repr(slow_state)
    assert fast["logs"][0]["lines"] == len(lines) and len(fast["logs"][0]["segments"]) == 2
    assert fast["errors"] == [f"{fast['run_dir']}/data-1.log line {k}: malformed operation, skipped"
                              for k, line in enumerate(lines, 1) if line.strip() and offline_v1._parse(line) is None]
    assert "ünï/cödé" in fast_state[4]["series"]        # the text series took the float lines meant for it
    # and the fold a reindex makes (json, from the stored objects) agrees
    refold = offline_v1.fold(mirror, fast)
    for entry in refold.series.values():      # sealed as the store's are, by the fold it saved (v1_resume)
        if "text" in entry or "blob" in entry:
            entry.get("text", entry.get("blob")).seal()
    assert repr({k: v for k, v in vars(refold).items() if k != "float_points"}) == repr(fast_state[4])


@pytest.mark.parametrize("bad", [b"007", b"\r", b"m\\x"])
def test_a_segment_scan_refuses_is_folded_by_json(bad):
    line = _line(["m"], 1.0, 1, 2.0, 9)
    broken = line.replace(b'"value": 1.0', b'"value": 007') if bad == b"007" else \
        line.replace(b'["m"]', b'["m\\x"]') if bad == b"m\\x" else line + b"\r"
    assert float_lines.scan(b"\n".join(_fuzz(5) + [broken]) + b"\n") is None
    got = _flat(float_lines.scan(b"\n".join(_fuzz(5) + [line]) + b"\n"), scan=True)
    assert got[-2] == ("m", 1, 1700000009.5) and got[-1] == b""


def _block_log(n=3000, seed=17, many=0.0):
    """An op log mostly in runs of client-shaped lines over a few series (the shape `append` in a
    training loop writes), broken now and then by what makes a run fall back to one line at a time:
    a None step, an int op time, a clear or delete (a series whose start then lies inside a later
    run), a new path, a text series taking float lines, a line json refuses."""
    rng = random.Random(seed)
    paths = [["train", "loss"], ["train", "acc"], ["ünï", "cödé"]]
    lines, step = [], {}
    for k in range(n):
        r = rng.random() if k < n // 2 else max(rng.random(), 0.002)    # no clear late in the log
        path = rng.choice(paths)
        if r < 0.0015:
            lines.append(_op(k, "ClearFloatLog", path))
        elif r < 0.002:
            lines.append(_op(k, "DeleteAttribute", path))
        elif r < 0.003:
            paths.append(["new", str(k)])
        elif r < 0.004:
            lines.append(_op(k, "LogStrings", ["text", "s"], values=[{"value": "x", "step": None, "ts": 1.0}]))
        elif r < 0.012:
            lines += [b"not json", _line(path, 1.0, None, 2.0, k)]    # a None after a run taken whole
        elif r < 0.013:
            lines.append(_line(path, 1.0, None, 2.0, k))
        elif r < 0.014:
            lines.append(_line(["text", "s"], 2.5, 7, 2.0, k))
        elif r < 0.015:
            lines.append(json.dumps({"obj": {"type": "LogFloats", "path": path, "values": [
                {"value": 1.0, "step": 3, "ts": 2.0}]}, "version": k, "at": 1700000000}).encode())
        else:      # a share `many` of ops of several points (`extend`), now and then one unnumbered
            points = []
            for _ in range(rng.randint(2, 40) if rng.random() < many else 1):
                s = step[tuple(path)] = step.get(tuple(path), -1) + rng.choice([1, 1, 1, 0, 2, 0.5])
                points.append((rng.choice(VALUES + [rng.random()]), None if rng.random() < 0.0003 else s,
                               1.7e9 + k * 0.01))
            lines.append(_line(path, *points[0], k, points[1:]))
    return lines


@pytest.mark.parametrize("many", [0.0, 0.5])
def test_runs_taken_whole_give_the_points_and_fold_one_line_at_a_time_gives(tmp_path, monkeypatch, many):
    lines = _block_log(n=3000 if not many else 1200, many=many)
    taken = {"stream": 0, "fold": 0}
    taken_whole, feed_block = offline_v1._taken_whole, offline_v1._Fold.feed_block

    def count(key, f):
        def counted(*args):
            ok = f(*args)
            taken[key] += ok if type(ok) is bool else ok is not None
            return ok
        return counted

    mirror = Mirror.init(tmp_path / "m")
    segments = [mirror.objects.put_bytes(b"\n".join(lines[k:k + 100]) + b"\n") for k in range(0, len(lines), 100)]
    manifest = {"logs": [{"file": "data-1.log", "segments": segments}]}
    monkeypatch.setattr(offline_v1, "_taken_whole", count("stream", taken_whole))
    fast = _stream(mirror, manifest, monkeypatch, True)
    assert len(fast) > 1000 and taken["stream"] > 10, taken          # many runs went through whole
    assert fast == _stream(mirror, manifest, monkeypatch, False)

    data = b"\n".join(lines) + b"\n"
    monkeypatch.setattr(offline_v1._Fold, "feed_block", count("fold", feed_block))
    monkeypatch.setattr(offline_v1, "SEGMENT_LINES", 100)      # many segments: many runs (undone by each)
    fast_m, fast_state, _ = _store_fold(tmp_path, data, "fast", monkeypatch, True)
    monkeypatch.setattr(offline_v1, "SEGMENT_LINES", 100)
    slow_m, slow_state, _ = _store_fold(tmp_path, data, "slow", monkeypatch, False)
    assert taken["fold"] > 10, taken
    assert fast_m == {**slow_m, "run_dir": fast_m["run_dir"]} and repr(fast_state) == repr(slow_state)


@pytest.mark.parametrize("odd", [math.nan, math.inf, -math.inf, 1e306])
def test_an_op_or_point_time_that_is_not_finite_is_unknown_on_both_paths(tmp_path, monkeypatch, odd):
    """A NaN or infinite `at` or `ts` (or one past int64 as ms) leaves that time unknown; the run folds."""
    lines = [_line(["m"], 1.0, 0, 2.0, 0), _line(["m"], 2.0, 1, odd, 1),
             json.dumps({"obj": {"type": "LogFloats", "path": ["m"], "values": [{"value": 3.0, "step": 2, "ts": 4.0}]},
                         "version": 2, "at": odd}).encode()]
    data = b"\n".join(lines) + b"\n"
    (fast, fast_state, mirror), (slow, slow_state, _) = (_store_fold(tmp_path, data, name, monkeypatch, name == "fast")
                                                         for name in ("fast", "slow"))
    assert repr(fast_state) == repr(slow_state) and fast["errors"] == []
    assert fast_state[4]["last_time"] == 1700000001500     # the finite op times' latest
    manifest = {"logs": fast["logs"]}
    for fast_path in (True, False):
        assert _stream(mirror, manifest, monkeypatch, fast_path) == [
            ("m", 0, 2000, "1.0"), ("m", 1, None, "2.0"), ("m", 2, 4000, "3.0")]

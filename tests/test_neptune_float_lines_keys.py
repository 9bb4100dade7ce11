"""neptune 1.x float stream: the points' keys stripped by one translate (float_lines._point_tokens) and
a known segment cut at C level (float_lines._read_known) give exactly the objects json gives, odd
tokens included; the store's segments end where a line-by-line read ends them, a torn tail too."""
import json
import math
import random
import struct

import pytest

from cometx_mirror import metric_stream
from cometx_mirror.sources.neptune import float_lines, offline_v1
from cometx_mirror.store.mirror import Mirror

# spelled as json.dumps spells them, and as other writers might (exponents, many digits, -0)
ODD = [b"NaN", b"Infinity", b"-Infinity", b"-0.0", b"-0", b"0", b"18446744073709551617",
       b"-9223372036854775809", b"9223372036854775807", b"123456789012345678901234567890", b"2.5",
       b"1e-05", b"1E+300", b"-2.5e-320", b"1e308", b"4.9e-324", b"0.1000000000000000055511151231257827",
       b"3.141592653589793238462643383279", b"1.7e9", b"1700000000.123456", b"null", b"true", b"false",
       b"12e3", b"1.5E-7", b"100"]
PLAIN = [b"0.5", b"1.0", b"1e-05", b"2.5e-07", b"1700000000.01", b"7.0", b"-3.25", b"1.0000000000000002"]
# exponents that are numbers still with their e left out: a path that dropped the e would read them wrong
EXPONENTS = [b"0.5", b"12e3", b"2e5", b"1.5e10", b"-4e2", b"7.0", b"1700000000.0"]


def _text(v: bytes, s: bytes, t: bytes) -> bytes:
    return b'{"value": ' + v + b', "step": ' + s + b', "ts": ' + t + b"}"


def _same_objects(got: list, want: list) -> bool:
    """Equal types and equal values bit for bit (NaN, -0.0 and ints of any size included)."""
    if len(got) != len(want) or list(map(type, got)) != list(map(type, want)):
        return False
    for a, b in zip(got, want):
        if type(a) is float:
            if struct.pack("<d", a) != struct.pack("<d", b):
                return False
        elif a != b:
            return False
    return True


def _ops(rng, tokens, ops=300):
    """Points' texts of `ops` ops (1 to 40 points each) drawn from `tokens`, and the points' count."""
    texts, count = [], 0
    for _ in range(ops):
        n = rng.choice([1, 1, 3, 40])
        count += n
        texts.append(b", ".join(_text(*(rng.choice(tokens) for _ in range(3))) for _ in range(n)))
    return texts, count


@pytest.mark.parametrize("tokens", [PLAIN, EXPONENTS, ODD, PLAIN + ODD[:3], PLAIN + [b"1e400"]],
                         ids=["plain", "exponents", "odd", "plain-and-constants", "past-the-double-range"])
def test_point_tokens_are_the_objects_json_gives(tokens):
    rng = random.Random(15)
    for _ in range(20):
        texts, count = _ops(rng, tokens)
        want = [x for text in texts for p in json.loads(b"[" + text + b"]") for x in p.values()]
        assert _same_objects(float_lines._point_tokens(texts, count), want)


def test_a_single_odd_token_among_plain_ones_is_json_s():
    for odd in ODD:
        texts = [_text(b"0.5", b"1.0", b"1700000000.5"), _text(odd, b"2.0", b"1e-05"),
                 _text(b"1e-05", odd, odd)]
        want = [x for text in texts for x in json.loads(text).values()]
        assert _same_objects(float_lines._point_tokens(texts, 3), want), odd


def _line(path, points, n):
    return json.dumps({"obj": {"type": "LogFloats", "path": path,
                               "values": [{"value": v, "step": s, "ts": t} for v, s, t in points]},
                       "version": n, "at": 1700000000.5 + n}).encode()


def test_a_segment_cut_by_its_layout_is_the_segment_the_regex_reads():
    rng = random.Random(16)
    values = [math.nan, math.inf, -0.0, 2 ** 70, 1e-05, 0.1, 7, 1 / 3, 1e308]
    steps = [None, 0, 2.5, 1e17, 2 ** 63 + 5, 3.0]
    lines = []
    for n in range(1500):
        if rng.random() < 0.05:      # other ops between the runs
            lines.append(json.dumps({"obj": {"type": "AssignFloat", "path": ["x"], "value": 1.0},
                                     "version": n, "at": 1.0}).encode())
            continue
        points = [(rng.choice(values), rng.choice(steps), 1.7e9 + rng.random())
                  for _ in range(rng.choice([1, 1, 1, 5, 100]))]
        lines.append(_line(rng.choice([["train", "loss"], ["ünï", "c"], ['q"', "b\\s"]]), points, n))
    segment = b"\n".join(lines) + b"\n"
    items = float_lines.scan(segment)
    assert items is not None and any(type(i) is float_lines.Block for i in items)
    layout = tuple(len(i) if type(i) is float_lines.Block else 0 for i in items)

    def flat(items):
        return [(b.paths, b.ends, b.steps, b.stamps, b.values) if type(b) is float_lines.Block else b
                for b in items]
    cut, read = flat(float_lines._read_known(segment, layout)), flat(float_lines.read(segment))
    assert repr(cut) == repr(read)
    for a, b in zip(cut, read):
        if type(a) is tuple:
            for column in (2, 3, 4):
                assert list(map(type, a[column])) == list(map(type, b[column]))


def _log(run_dir, lines: list[bytes], tail: bytes):
    run_dir.mkdir(parents=True)
    (run_dir / "data-1.log").write_bytes(b"".join(line + b"\n" for line in lines) + tail)


@pytest.mark.parametrize("count", [8, 9, 16, 17])
@pytest.mark.parametrize("tail", [b"", b'{"obj": {"type": "LogFl', b"   ",
                                  b'{"obj": {"type": "AssignFloat", "path": ["z"], "value": 2.0}, "version": 99, "at": 5.0}'],
                         ids=["none", "torn", "blank", "whole-without-newline"])
def test_the_stores_segments_end_where_the_lines_end(tmp_path, monkeypatch, count, tail):
    monkeypatch.setattr(offline_v1, "SEGMENT_LINES", 8)
    lines = [_line(["train", "loss"], [(0.5, float(n), 1.7e9)], n) for n in range(count)]
    run_dir = tmp_path / "run__00000000-0000-0000-0000-000000000015"
    _log(run_dir, lines, tail)
    mirror = Mirror.init(tmp_path / "m")
    reader = offline_v1._RunReader(run_dir, "w", "p", "k")
    manifest = reader.store(mirror, None)
    kept = lines + ([tail] if tail.startswith(b'{"obj": {"type": "Assign') else [])
    whole = [kept[k:k + 8] for k in range(0, len(kept), 8)]
    (log,) = manifest["logs"]
    assert log["lines"] == len(kept)
    stored = [mirror.objects.get_bytes(seg) for seg in log["segments"]]
    want = [b"\n".join(seg) + b"\n" for seg in whole]
    if tail.startswith(b'{"obj": {"type": "Assign'):
        want[-1] = want[-1][:-1]          # the last line as the file has it: no newline
    assert stored == want
    run = reader.fold(mirror, manifest)
    assert [b.values for b in run.float_points()] != []
    if tail.startswith(b'{"obj": {"type": "Assign'):
        assert run.attrs["z"] == ("float", 2.0)


def _float_run(rng, n: int, ints: str = "") -> list[bytes]:
    """A training loop's lines, every token a float (exponents, -0.0, many digits), one and many points;
    with ints "small" some values, steps and times small ints (an int time is ms), with "huge" ints past
    64 bits (orjson reads them as floats)."""
    floats = [0.5, -0.0, 1e-05, 5e-324, 0.1 + 0.2, 1 / 3, 2.5e-07, 8e18, -7.25, 123456789.123456789]
    value, ts = {"": (floats, [1.7e9]), "small": ([7, 0, -3], [1_700_000_000]),
                 "huge": ([2 ** 70 + 1, 1.7976931348623157e308], [2 ** 64 + 1])}[ints]
    return [_line(["train", rng.choice("abc")],
                  [(rng.choice(floats), float(k * 7 + j) + rng.choice([0.0, 0.5]), 1.7e9 + k / 3)
                   if rng.random() < 0.99 else (rng.choice(value), k * 7 + j if ints == "small" else float(k * 7 + j), rng.choice(ts))
                   for j in range(rng.choice([1, 1, 4, 100]))], k)
            for k in range(n)]


@pytest.mark.parametrize("lines", ["floats", "ints", "odd-one", "odd-many"])
@pytest.mark.parametrize("stored", [True, False], ids=["cut-by-layout", "read-by-regex"])
def test_points_taken_as_float_rows_are_the_points_the_lists_give(tmp_path, monkeypatch, lines, stored):
    from test_neptune_fast_path import _fuzz
    from test_neptune_v1_arrays import _batches, _mirror_of, _points
    rng = random.Random(19)
    run = {"floats": lambda: _float_run(rng, 900), "ints": lambda: _float_run(rng, 300, "small")
           + _float_run(rng, 300) + _float_run(rng, 300, "huge"),
           "odd-one": lambda: _fuzz(900, seed=22),
           "odd-many": lambda: _fuzz(600, seed=23, many=0.3) + _float_run(rng, 300)}[lines]()
    mirror, manifest = _mirror_of(tmp_path, run, 300)

    def batches(rows: bool, arrays: bool = True):
        if stored:     # as a fetch reads them: each segment's layout kept by the store's scan
            for seg in manifest["logs"][0]["segments"]:
                items = float_lines.scan(mirror.objects.get_bytes(seg))
                if items is not None:
                    float_lines.remember(seg, items)
        if not rows:
            monkeypatch.setattr(float_lines, "_float_rows", lambda texts, points: None)
        return _batches(mirror, manifest, monkeypatch, arrays)     # undoes the patches
    taken = batches(True)
    assert len(_points(taken)) >= 900
    if lines == "floats":          # the rows were taken
        assert all(isinstance(b, metric_stream.ArrayBatch) for b in taken)
    assert _points(taken) == _points(batches(False)) == _points(batches(False, arrays=False))

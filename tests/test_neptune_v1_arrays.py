"""neptune 1.x float stream as NumPy columns (offline_v1._Gathered): the points, their types and their
order are what the list batches give, for plain runs and for every odd value the fuzz holds."""
import json

import pytest

from cometx_mirror import metric_stream
from cometx_mirror.sources.neptune import float_lines, offline_v1
from cometx_mirror.store.mirror import Mirror

from test_neptune_fast_path import _fuzz, _line


def _batches(mirror, manifest, monkeypatch, arrays: bool):
    if not arrays:
        monkeypatch.setattr(offline_v1, "_point_arrays", lambda steps, stamps, values: None)
        monkeypatch.setattr(float_lines, "_float_rows", lambda texts, points: None)   # the float-rows way too
        monkeypatch.setattr(float_lines, "_column_rows", lambda values, steps, stamps, count: None)
    folder = offline_v1._Fold("w", "p", "k", {}, {}, {}, {})
    for rec in offline_v1.iter_ops(mirror, manifest):
        folder.feed(rec)
    out = list(offline_v1._float_points(mirror, manifest, folder.float_from))
    monkeypatch.undo()
    return out


def _points(batches):
    """Every column of every point, each value by repr and each entry with its type."""
    return [(n, s, type(s), t, type(t), repr(v), e, x)
            for b in batches for n, s, t, v, e, x in zip(b.name, b.step, b.timestamp, b.value, b.epoch, b.text)]


def _mirror_of(tmp_path, lines, per_segment=400):
    mirror = Mirror.init(tmp_path / "m")
    segments = [mirror.objects.put_bytes(b"\n".join(lines[k:k + per_segment]) + b"\n")
                for k in range(0, len(lines), per_segment)]
    return mirror, {"logs": [{"file": "data-1.log", "segments": segments}]}


@pytest.mark.parametrize("many", [0.0, 0.2])
def test_odd_values_give_the_points_the_lists_give(tmp_path, monkeypatch, many):
    lines = _fuzz(1200, seed=21, many=many)
    lines[500:500] = [json.dumps({"obj": {"type": "ClearFloatLog", "path": ["train", "loss"]},
                                  "version": 0, "at": 1.0}).encode(), b"not json"]
    mirror, manifest = _mirror_of(tmp_path, lines)
    arrays = _batches(mirror, manifest, monkeypatch, True)
    lists = _batches(mirror, manifest, monkeypatch, False)
    assert len(_points(arrays)) > 1000
    assert _points(arrays) == _points(lists)


def test_a_training_loop_goes_as_arrays_with_its_steps_and_times(tmp_path, monkeypatch):
    lines = [_line(["train", m], 0.5 + k, k, 1.7e9 + k / 8, k * 3 + j, [(0.25, k + 0.5, 1.7e9)] if m == "b" else ())
             for k in range(3000) for j, m in enumerate(("a", "b", "c"))]
    mirror, manifest = _mirror_of(tmp_path, lines, 1000)
    arrays = _batches(mirror, manifest, monkeypatch, True)
    assert arrays and all(isinstance(b, metric_stream.ArrayBatch) for b in arrays)
    assert sum(map(len, arrays)) == 3000 * 4
    first = arrays[0]
    assert first.name[:4] == ["train/a", "train/b", "train/b", "train/c"]
    assert first.step[:4] == [0, 0, 0, 0] and first.timestamp[:2] == [1_700_000_000_000, 1_700_000_000_000]
    assert _points(arrays) == _points(_batches(mirror, manifest, monkeypatch, False))


def test_odd_float_values_steps_and_times_as_arrays_give_what_the_lists_give(tmp_path, monkeypatch):
    """Only float values (NaN, infinities, -0.0, subnormal, huge), steps of every kind a column holds
    (ints, halves, -0.0, 2^53 + 1, 1e17) and times of two kinds: the arrays path takes these."""
    import math
    import random
    rng = random.Random(7)
    values = [math.nan, math.inf, -math.inf, -0.0, 1e-320, 1.5e300, 0.1, 1 / 3]
    steps = [0, 3, 2.5, -0.0, 2 ** 53 + 1, 1e17, 7.999999999999999]
    lines = [_line(["s", str(k % 3)], rng.choice(values), rng.choice(steps), rng.choice([1.7e9 + rng.random(), 5.0]),
                   k, [(rng.choice(values), rng.choice(steps), 1.7e9) for _ in range(k % 4)]) for k in range(900)]
    mirror, manifest = _mirror_of(tmp_path, lines, 300)
    arrays = _batches(mirror, manifest, monkeypatch, True)
    assert any(isinstance(b, metric_stream.ArrayBatch) for b in arrays)
    assert _points(arrays) == _points(_batches(mirror, manifest, monkeypatch, False))


@pytest.mark.parametrize("more", [(), [(0.25, 0.5, 1.7e9)]])
def test_printed_lines_among_the_points_leave_them_in_few_conversions(tmp_path, monkeypatch, more):
    """A training loop that prints (a LogStrings op every 10 float ops, as the client's stdout capture
    queues them): the lines carry no float point, so the rows gathered around them are converted in
    FLUSH_POINTS lots, not one lot per printed line; and the points are the lists' points."""
    lines = []
    for k in range(6000):
        lines.append(_line(["train", "a" if k % 2 else "b"], 0.5 + k, float(k), 1.7e9 + k / 8, len(lines),
                           [(v, s + k, t) for v, s, t in more]))
        if k % 10 == 9:
            lines.append(json.dumps({"obj": {"type": "LogStrings", "path": ["monitoring", "7d3a", "stdout"],
                                             "values": [{"value": f"step {k}", "step": None, "ts": 1.7e9}]},
                                     "version": len(lines), "at": 1.7e9}).encode())
    mirror, manifest = _mirror_of(tmp_path, lines, 2000)
    conversions = []
    row_arrays = offline_v1._row_arrays
    monkeypatch.setattr(offline_v1, "_row_arrays", lambda rows: conversions.append(len(rows)) or row_arrays(rows))
    arrays = list(offline_v1._float_points(mirror, manifest, {"train/a": 0, "train/b": 0}))
    monkeypatch.undo()
    points = 6000 * (1 + len(more))
    assert sum(conversions) == points and len(conversions) <= points // offline_v1.FLUSH_POINTS + 2
    assert _points(arrays) == _points(_batches(mirror, manifest, monkeypatch, False))

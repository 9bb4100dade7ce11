"""neptune 1.x store fold: float_lines.scan decodes no point of a client-shaped op, so the regex alone
must keep every line json would refuse (or judge otherwise) out of its Blocks."""
import json

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
    (block, _) = float_lines.scan(b"\n".join(GOOD) + b"\n")
    assert block.numbered is True and block.values is None      # no point value decoded


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

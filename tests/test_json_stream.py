"""json_stream reads what json.loads reads, from chunks cut anywhere, and refuses what it refuses.

Random objects (strings with quotes, braces, commas and escapes; nested lists of objects inside
the entries; huge integers, NaN, infinities; other keys before and after the array) are written
with json's several spellings, cut into chunks at random places and read back with the runs of
items (json_stream._run) taken at every size down to one character."""
from __future__ import annotations

import json
import random

import pytest

from cometx_mirror import json_stream

_CHARS = 'ab"\\\n\u00e9\u4e2d\U0001f600 ,:[]{}'


def _text(rnd: random.Random) -> str:
    return "".join(rnd.choice(_CHARS) for _ in range(rnd.randint(0, 6)))


def _value(rnd: random.Random, depth: int = 0):
    k = rnd.random()
    if depth < 2 and k < 0.15:
        return {_text(rnd): _value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))}
    if depth < 2 and k < 0.25:
        return [_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    if k < 0.4:
        return rnd.choice([True, False, None, float("nan"), float("inf"), -float("inf")])
    if k < 0.6:
        return rnd.randint(-10 ** 20, 10 ** 20)
    if k < 0.75:
        return rnd.uniform(-1e6, 1e6) * rnd.choice([1, 1e-9, 1e12])
    return _text(rnd)


def _answer(rnd: random.Random) -> dict:
    answer = {_text(rnd): _value(rnd) for _ in range(rnd.randint(0, 3))}
    answer.pop("metrics", None)
    if rnd.random() < 0.9:
        answer["metrics"] = [_value(rnd) if rnd.random() < 0.3 else
                             {"metricName": _text(rnd), "metricValue": str(_value(rnd)), "step": rnd.randint(0, 99),
                              "nested": [{"a": _text(rnd)}, {"b": _value(rnd)}]}
                             for _ in range(rnd.randint(0, 20))]
    keys = list(answer)
    rnd.shuffle(keys)
    return {k: answer[k] for k in keys}


def _chunks(rnd: random.Random, data: bytes) -> list[bytes]:
    cuts = sorted(rnd.sample(range(len(data) + 1), min(len(data), rnd.randint(0, 8))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


@pytest.mark.parametrize("run", [1, 8, 64, json_stream._RUN])
def test_chunks_cut_anywhere_read_as_json_reads_the_whole(run, monkeypatch):
    monkeypatch.setattr(json_stream, "_RUN", run)
    rnd = random.Random(run)
    for _ in range(600):
        answer = _answer(rnd)
        data = json.dumps(answer, ensure_ascii=rnd.random() < 0.5, indent=rnd.choice([None, 1, "\t"]),
                          separators=rnd.choice([None, (",", ":")])).encode()
        stream = json_stream.ObjectStream(_chunks(rnd, data), "metrics")
        items = list(stream.items())
        got = dict(stream.rest, **({"metrics": items} if stream.found else {}))
        assert json.dumps(got, sort_keys=True) == json.dumps(json.loads(data), sort_keys=True)
        assert stream.non_finite or not any(t in data for t in (b"NaN", b"Infinity"))
        short = data[:rnd.randrange(1, len(data))]      # cut short: refused, as json refuses it
        with pytest.raises(ValueError):
            json.loads(short)
        with pytest.raises(ValueError):
            list(json_stream.ObjectStream(_chunks(rnd, short), "metrics").items())


@pytest.mark.parametrize("data", [b'{"metrics": [1, 2', b'{"metrics": [1] "x": 2}', b'[1]', b'{"metrics": [1]} 2',
                                  b'{"metrics": [], "metrics": []}', b'{"a": 12e', b'{"a": 1,}', b'{1: 2}',
                                  b'\xef\xbb\xbf{}', b'{"a": "\xff"}'])
def test_text_that_is_not_one_object_is_refused(data):
    with pytest.raises(ValueError):
        list(json_stream.ObjectStream([data], "metrics").items())

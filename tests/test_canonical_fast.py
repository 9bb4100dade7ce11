"""Canonical JSON written by orjson where it gives json's bytes, by json elsewhere
(store/canonical.py): a fuzz of values of every kind gives json's bytes."""
import json
import math
import random
import struct

import pytest

from cometx_mirror.store import canonical


def _json_bytes(value) -> bytes:
    """json's bytes, a lone surrogate (no UTF-8 has one) as its escape."""
    return json.dumps(canonical._clean(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8", "backslashreplace")


def _double(rng):
    kind = rng.randrange(5)
    if kind == 0:
        return struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]   # any bits: NaN, tiny, huge
    if kind == 1:
        return rng.random() * 10 ** rng.randint(-12, 22) * rng.choice([1, -1])
    if kind == 2:
        return rng.choice([0.0, -0.0, 5e-324, 1e-4, 9.999e-5, 1e16, 1e15, 1.7976931348623157e308, math.inf])
    if kind == 3:
        return round(rng.uniform(-1e6, 1e6), rng.randint(0, 12))
    return float(rng.randint(-10 ** 17, 10 ** 17))


def _text(rng):
    pool = [chr(c) for c in range(0x80)] + ["\u2028", "é", "\U0001F600", "\ufeff", "e-", ".0000", "7e-5"]
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))


def _value(rng, depth=0):
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return _double(rng)
    if kind == 1:
        return rng.choice([0, -1, 2 ** 63 - 1, -(2 ** 63), 2 ** 64, -(2 ** 63) - 1, 10 ** 30, rng.randint(-10 ** 20, 10 ** 20)])
    if kind == 2:
        return _text(rng)
    if kind == 3:
        return rng.choice([None, True, False])
    if kind == 4:
        return rng.choice(["\ud800", "a\udfffb", ""])            # lone surrogates: orjson refuses them
    if kind in (5, 6):
        return {_text(rng) or str(rng.randint(0, 9)): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]


@pytest.mark.parametrize("seed", range(4))
def test_a_fuzz_of_values_gives_jsons_bytes(seed):
    rng = random.Random(seed)
    for _ in range(1500):
        value = _value(rng)
        text = canonical.dumps(value)
        assert text == _json_bytes(value)
        assert json.loads(text) == json.loads(json.dumps(canonical._clean(value)))   # a lone surrogate too


def test_what_json_refuses_is_still_refused():
    with pytest.raises(TypeError):
        canonical.dumps({"when": object()})


def test_plain_values_are_written_and_read_without_json(monkeypatch):
    """The fast path is taken for what a mirror mostly holds (so the fuzz above tests it)."""
    def refuse(*args, **kwargs):
        raise AssertionError("json was used")
    monkeypatch.setattr(canonical.json, "dumps", refuse)
    value = {"rows": [[1, 1700000000000, 0, "CggKBnRyYWluLw=="]], "loss": [0.25, 1e16, -0.0, 12.5], "é": None}
    text = canonical.dumps(value)
    assert json.loads(text) == value
    assert text == b'{"loss":[0.25,1e+16,-0.0,12.5],"rows":[[1,1700000000000,0,"CggKBnRyYWluLw=="]],"\xc3\xa9":null}'


@pytest.mark.parametrize("seed", range(3))
def test_a_column_of_scalars_gives_jsons_bytes(seed):
    """dumps_column: doubles of every size (those below 1e-4 respelled as repr spells them), ints of
    any size, strings, constants, and mixes of them; and a column of dicts with their keys sorted."""
    rng = random.Random(seed)
    makers = [lambda: [d for d in (_double(rng) for _ in range(300)) if math.isfinite(d)],
              lambda: [rng.choice([None, True, 3, -(2 ** 63), 2 ** 64, 1e-7]) for _ in range(50)],
              lambda: [_text(rng) for _ in range(50)] + ["\ud800"] * rng.randint(0, 1),
              lambda: [rng.choice([_text(rng), 1e-5, None, 7]) for _ in range(50)],
              lambda: [{"b": 1e-6, "a": [_text(rng)]}, None]]
    for _ in range(200):
        column = rng.choice(makers)()
        assert canonical.dumps_column(column) == _json_bytes(column)


def test_a_column_of_numbers_is_respelled_token_by_token():
    """Doubles of 1e-5 to 1e-4 respelled in place, and `0.0000` inside a larger number (10.00001) left
    as it is: a respelling by pattern once wrote that one as 11e-05."""
    column = [10.00001, -100.000015, 1.5e-5, -9.9999e-5, 1e-5, 1e-6, -2.5e-9, 1e-10, 0.0001, -0.0, 3, None, True]
    column += [0.5] * 100
    assert canonical.dumps_column(column) == _json_bytes(column)
    assert canonical.dumps_column([10.00001] + [0.5] * 20).startswith(b"[10.00001,")


@pytest.mark.parametrize("seed", range(2))
def test_columns_of_small_doubles_give_jsons_bytes(seed):
    rng = random.Random(seed)
    makers = [lambda: rng.uniform(1e-5, 1e-4) * rng.choice([1, -1]),
              lambda: rng.random() * 10 ** rng.randint(-12, 3) * rng.choice([1, -1]),
              lambda: float(rng.randint(0, 10 ** 6)) + rng.choice([1e-5, 1.5e-5, 1e-6]),
              lambda: rng.choice([None, True, False, 0, -3, 2 ** 63 - 1, 1e-5, 1e-7, -0.0])]
    for _ in range(300):
        column = [rng.choice(makers)() for _ in range(rng.randint(1, 80))]
        assert canonical.dumps_column(column) == _json_bytes(column), column

"""A column of number texts converted at once (sources/wandb/decimal_floats.py) gives float()'s
own bits for every text it calls exact, calls the plain reprs a run logs exact, and leaves the
rest (non-finite words, too many digits, far exponents, halfway points) to float(); the
chunked history reader gives the same arrays with it as without it."""
from __future__ import annotations

import random
import struct
from decimal import Decimal

import numpy as np
import pytest

from cometx_mirror.sources.wandb import decimal_floats, history_bulk
from cometx_mirror.sources.wandb.records import HistoryPayload
from cometx_mirror.sources.wandb.normalize import _text_point

pytestmark = pytest.mark.skipif(not decimal_floats.ENABLED, reason="no 80-bit long double here")

ODD = ["-0.0", "0.0", "-0", "0", "1e400", "-1e400", "1e-400", "1.5E+3", "-1.0e-5", "0.1", "1e-07", "1E+300",
       "9007199254740993.0", "9007199254740993", "123456789012345678901.5", str(2 ** 70), "2.2250738585072014e-308",
       "4.9e-324", "1.7976931348623157e308", "0.30000000000000004", "1e27", "1e28", "1e-27", "1e-28",
       "1234567890123456789e-10", "12345678901234567890e-10", "0.000000000000000000001", "7.0e0001",
       "NaN", "Infinity", "-Infinity", "5e-324", "-2.5e-3", "1704067200.51", "100000000000000000000000"]


def _as_double(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _halfway(rng) -> str:
    """The exact decimal halfway between two neighbouring doubles (where rounding twice can go wrong)."""
    bits = struct.unpack("<Q", struct.pack("<d", rng.uniform(1e-3, 1e6)))[0]
    return str((Decimal(_as_double(bits)) + Decimal(_as_double(bits + 1))) / 2)


def _texts(n: int) -> list[bytes]:
    rng = random.Random(7)
    out = [t.encode() for t in ODD]
    makers = [lambda: repr(1.0 / rng.randint(1, 10 ** 7)),
              lambda: repr(rng.uniform(-1e6, 1e6)),
              lambda: repr(abs(_as_double(rng.getrandbits(63)))),
              lambda: f"{rng.randint(0, 10 ** rng.randint(1, 22))}.{rng.randint(0, 10 ** rng.randint(1, 12))}",
              lambda: f"{'-' if rng.random() < .5 else ''}{rng.randint(1, 10 ** 18)}e{rng.randint(-40, 40)}",
              lambda: _halfway(rng)]
    out += [makers[i % len(makers)]().encode() for i in range(n)]
    return [t for t in out if b"inf" not in t and b"nan" not in t]     # (repr's own words are no JSON)


def _grid(texts: list[bytes]) -> np.ndarray:
    width = max(map(len, texts))
    return np.frombuffer(np.array(texts, f"S{width}").tobytes(), np.uint8).reshape(len(texts), width).copy()


def test_every_exact_value_is_floats_own_bits():
    texts = _texts(30000)
    values, exact = decimal_floats.parse(_grid(texts))
    want = np.array([float(t) for t in texts])
    assert np.array_equal(values[exact].view(np.int64), want[exact].view(np.int64))
    assert exact[len(ODD):].mean() > 0.5                        # most of the fuzz is read here
    plain = [repr(1.0 / (i + 1)).encode() for i in range(5000)] + [repr(1.7e9 + i * 0.01).encode() for i in range(5000)]
    assert decimal_floats.parse(_grid(plain))[1].all()          # what a run logs: all of it
    by_text = dict(zip(texts, exact.tolist()))
    for word in (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1e-400", b"4.9e-324", b"1e28",
                 b"12345678901234567890e-10", b"123456789012345678901.5"):
        assert by_text[word] is False                           # left to float()
    assert by_text[b"-0.0"] and np.signbit(values[texts.index(b"-0.0")])
    assert by_text[b"1e27"] and by_text[b"1234567890123456789e-10"] and by_text[b"0.000000000000000000001"]


def test_halfway_texts_are_left_to_float_when_the_long_double_lands_on_them():
    rng = random.Random(3)
    texts = [_halfway(rng).encode() for _ in range(2000)]
    values, exact = decimal_floats.parse(_grid(texts))
    want = np.array([float(t) for t in texts])
    assert np.array_equal(values[exact].view(np.int64), want[exact].view(np.int64))
    # halfway points of few digits: integers between two doubles past 2**53, which the long double holds
    short = [f"{2 ** 53 + 2 * k + 1}.0".encode() for k in range(500)] + \
        [f"{2 ** 54 + 4 * k + 2}".encode() + b"e0" for k in range(500)]
    assert not decimal_floats.parse(_grid(short))[1].any()      # every one left to float()


def _chunk_arrays(texts: list[bytes]):
    from wandb.proto import wandb_internal_pb2 as pb
    keys = ("_step", "_timestamp", "a", "b", "epoch")
    chunk = []
    for i in range(0, len(texts) - 2, 3):
        rec = pb.Record()
        rec.num = i + 1
        for key, value in zip(keys, [str(i).encode(), texts[i], texts[i + 1], texts[i + 2], texts[i + 2]]):
            it = rec.history.item.add()
            it.nested_key.append(key)
            it.value_json = value.decode()
        rec.history.step.num = i
        chunk.append(HistoryPayload(rec.SerializeToString(), i, "t"))
    return [(kind, piece if kind == "arrays" else [r.payload for r in piece])
            for kind, piece in history_bulk.ChunkReader(_text_point).pieces(chunk)]


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    return a == b


def test_the_chunked_reader_gives_the_same_arrays_with_it_and_without(monkeypatch):
    texts = [t for t in _texts(3000) if len(t) <= 40]
    fast = _chunk_arrays(texts)
    monkeypatch.setattr(decimal_floats, "ENABLED", False)
    slow = _chunk_arrays(texts)
    assert sum(kind == "arrays" for kind, _ in fast) > 0
    assert _same(fast, slow)

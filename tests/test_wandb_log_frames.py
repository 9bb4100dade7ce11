"""The bulk framing (log_frames) against the chunk-by-chunk loop it replaces: the same records,
offsets, complete_end and the same error (offset and reason) on every kind of damage."""
from __future__ import annotations

import io
import random
import struct
import zlib

import pytest

from cometx_mirror.sources.wandb import log_frames, records

BLOCK = records.BLOCK


def _log(sizes: list[int], seed: int = 0) -> bytes:
    """A log of records of these payload sizes, framed as wandb frames them (FIRST/MIDDLE/LAST
    across blocks, trailers padded)."""
    rnd = random.Random(seed)
    out, pos = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0)), 7
    for size in sizes:
        rest, first = rnd.randbytes(size), True
        while True:
            left = BLOCK - pos % BLOCK
            if left < 7:
                out += bytes(left)
                pos += left
                continue
            chunk, rest = rest[:left - 7], rest[left - 7:]
            kind = (1 if first else 4) if not rest else (2 if first else 3)
            out += struct.pack("<IHB", zlib.crc32(chunk, zlib.crc32(bytes([kind]))), len(chunk), kind) + chunk
            pos += 7 + len(chunk)
            first = False
            if not rest:
                break
    return bytes(out)


def _read(data: bytes, bulk: bool, start: int = 0, span_blocks: int = 2):
    was, blocks = log_frames.ENABLED, log_frames.SPAN_BLOCKS
    log_frames.ENABLED, log_frames.SPAN_BLOCKS = bulk, span_blocks
    reader = records.LogReader(io.BytesIO(data), start=start)
    got, error = [], None
    try:
        for item in reader:
            got.append(item)
    except records.CorruptLog as e:
        error = (e.offset, e.reason)
    finally:
        log_frames.ENABLED, log_frames.SPAN_BLOCKS = was, blocks
    return got, error, reader.complete_end


@pytest.fixture(scope="module")
def logs():
    rnd = random.Random(7)
    small = _log([rnd.randint(0, 300) for _ in range(900)], 1)            # many chunks per block
    large = _log([rnd.choice([5, 40000, 70000, 200]) for _ in range(12)], 2)   # records over blocks
    exact = _log([BLOCK - 7 - 7 - 7, 3, BLOCK - 14, 10], 3)              # chunks ending on a block's end
    return [small, large, exact]


def test_whole_logs_frame_alike(logs):
    for data in logs:
        for blocks in (1, 2, 5):
            bulk = _read(data, True, span_blocks=blocks)
            assert bulk == _read(data, False) and bulk[1] is None and len(bulk[0]) > 3


def test_damaged_logs_frame_alike(logs):
    rnd = random.Random(11)
    kinds = set()
    headers = {id(data): [offset for offset, _ in _read(data, False)[0]] for data in logs}
    for data in logs:
        for trial in range(60):
            damaged = bytearray(data)
            how = trial % 5
            at = rnd.randrange(7, len(data))
            if how == 0:
                damaged[at] ^= 1 << rnd.randrange(8)                 # a bit flipped: checksum, header
            elif how == 1:
                block_end = (at // BLOCK + 1) * BLOCK
                damaged[at:block_end] = bytes(len(damaged[at:block_end]))   # zero-filled to the block end
            elif how == 2:
                damaged = damaged[:at]                               # a torn tail
            elif how == 3:                                           # an empty header before data
                at = rnd.choice(headers[id(data)])
                damaged[at:at + 7] = bytes(7)
            else:
                damaged[at] = rnd.choice([0, 2, 3, 4, 9])            # a chunk type out of sequence
            bulk, one = _read(bytes(damaged), True), _read(bytes(damaged), False)
            assert bulk == one, (how, at)
            kinds.add(one[1][1] if one[1] else None)
    # every reason the loop gives came up and was matched
    assert {None, "checksum mismatch", "empty chunk header before data"} <= kinds
    assert any(k and k.startswith("bad chunk header") for k in kinds)
    assert any(k and "fragmented" in k or k and "continuation" in k for k in kinds)


def test_resumed_reads_frame_alike(logs):
    for data in logs:
        full, _, _ = _read(data, False)
        for offset, payload in full[1::40]:
            start = offset + 7 + len(payload) if len(payload) < BLOCK - 14 else None
            if start is None:
                continue
            assert _read(data, True, start) == _read(data, False, start)


def test_short_logs(logs):
    for data in (b"", b":W&B", logs[0][:7], logs[0][:10], b"NOTAWB\x00" + bytes(20)):
        assert _read(data, True) == _read(data, False)


def _payload_log(payloads: list[bytes]) -> bytes:
    out, pos = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0)), 7
    for p in payloads:
        assert len(p) < BLOCK - 14
        left = BLOCK - pos % BLOCK
        if left < 7 + len(p):
            out += bytes(left)
            pos += left
        out += struct.pack("<IHB", zlib.crc32(p, zlib.crc32(b"\x01")), len(p), 1) + p
        pos += 7 + len(p)
    return bytes(out)


def test_history_spans_take_what_iter_history_takes():
    """Records starting every way (history, summary, other tags, long and cut `num` varints,
    random bytes) are told apart in bulk as iter_history tells them one by one."""
    rnd = random.Random(5)
    heads = [b"\x08\x01\x12", b"\x08\x01\x1a", b"\x08\x81\x01\x12", b"\x08" + b"\x80" * 12 + b"\x01\x12",
             b"\x08" + b"\x80" * 9 + b"\x01\x12", b"\x08\x01", b"\x08", b"", b"\x12", b"\x08\x01\x22",
             b"\x12\x02ab", b"\x1a\x00", b"\x08\x01\x0a\x00\x12\x00"]
    payloads = [rnd.choice(heads) + rnd.randbytes(rnd.choice([0, 1, 2, 30])) for _ in range(3000)]
    data = _payload_log(payloads)
    one = [(h.offset, h.payload) for h in records.iter_history(data)]
    bulk = [(h.offset, h.payload) for span in records.iter_history_spans(data) for h in span.payloads()]
    assert bulk == one and 300 < len(one) < 2900

"""The .wandb framing reader on synthetic logs: fragments, padding, torn tails, corruption."""
from __future__ import annotations

import struct
import zlib

import pytest

from cometx_mirror.sources.wandb.records import BLOCK, CorruptLog, fold, iter_payloads


def write_log(payloads: list[bytes]) -> bytes:
    """A log framed the way wandb writes it (LevelDB blocks, CRC-32 seeded with the type byte)."""
    out = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0))
    for payload in payloads:
        first, rest = True, payload
        while True:
            left = BLOCK - len(out) % BLOCK
            if left < 7:
                out += b"\0" * left
                continue
            chunk, rest = rest[:left - 7], rest[left - 7:]
            kind = (1 if first else 4) if not rest else (2 if first else 3)
            crc = zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
            out += struct.pack("<IHB", crc, len(chunk), kind) + chunk
            first = False
            if not rest:
                break
    return bytes(out)


def record(**fields) -> bytes:
    from wandb.proto import wandb_internal_pb2 as pb
    rec = pb.Record()
    for kind, items in fields.items():
        if kind == "config":
            for key, value in items:
                item = rec.config.update.add()
                item.nested_key.extend(key.split("/"))
                item.value_json = value
        elif kind == "history":
            for key, value in items:
                item = rec.history.item.add()
                if "/" in key:
                    item.nested_key.extend(key.split("/"))
                else:
                    item.key = key          # the legacy writer's form
                item.value_json = value
        elif kind == "run":
            rec.run.run_id, rec.run.project = items
    return rec.SerializeToString()


def test_fragments_padding_and_both_key_forms():
    big = '"' + "x" * 70000 + '"'                         # spans three blocks: FIRST, MIDDLE, LAST
    payloads = [record(run=("r1", "p")), record(config=[("a/b", "1"), ("big", big)])]
    payloads += [record(history=[("_step", str(i)), ("m/n", str(i * 2)), ("loss", "0.5")]) for i in range(3000)]
    log = fold(write_log(payloads))
    assert log.run["id"] == "r1"
    assert log.config["a"] == {"b": 1} and len(log.config["big"]) == 70000
    assert len(log.history) == 3000
    assert log.history[-1] == {"_step": 2999, "m": {"n": 5998}, "loss": 0.5}


def test_torn_tail_is_tolerated():
    data = write_log([record(run=("r1", "p"))] + [record(history=[("_step", str(i))]) for i in range(10)])
    for cut in (len(data) - 3, len(data) - 12):           # inside a payload, inside a header
        assert len(fold(data[:cut]).history) == 9


def test_corruption_names_file_and_offset():
    data = bytearray(write_log([record(run=("r1", "p")), record(history=[("_step", "1")])]))
    second = 7 + 7 + len(record(run=("r1", "p")))
    data[second + 9] ^= 0xFF                             # a payload byte of the second record
    with pytest.raises(CorruptLog) as e:
        list(iter_payloads(bytes(data), "run-x/run-x.wandb"))
    assert e.value.offset == second
    assert "run-x/run-x.wandb" in str(e.value) and f"byte {second}" in str(e.value)


def test_not_a_wandb_file():
    with pytest.raises(CorruptLog, match="not a W&B record log"):
        list(iter_payloads(b"hello world, not a log"))

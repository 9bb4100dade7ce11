"""Whether a file that only grows still begins with the bytes stored from it: its first bytes hashed
against the stored objects' own ids (an object's id is the hash of its bytes), so nothing is parsed and no
bookkeeping can go stale. A W&B record log stored as parts (wandb/log_parts) and a neptune 1.x op log stored
as segments (neptune/v1_resume) are told grown, not rewritten, this way.
"""
from __future__ import annotations

from typing import BinaryIO

import xxhash

HASH_CHUNK = 1 << 20


class Range:
    """A binary file up to byte `end`, as a readable, seekable stream (a live log grows
    meanwhile: what is read must be what was stored)."""

    def __init__(self, f: BinaryIO, end: int):
        self.f, self.end = f, end

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.end - self.f.tell())
        return self.f.read(left if n < 0 else min(n, left))

    def seek(self, pos: int) -> int:
        return self.f.seek(pos)


def _hash_range(f: BinaryIO, size: int) -> tuple[str, int]:
    """xxh3-128 and length of the next `size` bytes of f."""
    hasher, got, stream = xxhash.xxh3_128(), 0, Range(f, f.tell() + size)
    while chunk := stream.read(HASH_CHUNK):
        hasher.update(chunk)
        got += len(chunk)
    return hasher.hexdigest(), got


def is_prefix(f: BinaryIO, log_parts: list[dict]) -> bool:
    """Whether the file starts with exactly these parts' bytes (leaves f positioned after them).

    Hashing runs at the speed of the disk; nothing is parsed.  A shorter file, or any part
    whose bytes differ, means the log was rewritten, not appended to."""
    f.seek(0)
    for part in log_parts:
        object_id, got = _hash_range(f, part["size"])
        if got != part["size"] or object_id != part["object"]:
            return False
    return True

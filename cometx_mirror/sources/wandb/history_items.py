"""The items of a chunk of history (or summary) records, found in their bytes with NumPy, in any order.

wandb-core writes a record's items in Go map order: once a run logs more than a few keys,
nearly every record has an order of its own, so a record is not matched against a key list
but walked where it lies, all records of the chunk at once, item slot by item slot:

    Record  { num (1): varint, history (2): len HistoryRecord }
    History { item (1): len { key (1) | nested_key (2)...: "<part>", value_json (16): "<text>" } ...,
              step (2): len { num (1): varint } }

Every length here is one byte (an item, a key part or a text of 128 bytes or more, another
field, a typed value, a `key` beside `nested_key` or twice: the record is not `ok`, and the
row path decodes it).  An item's key is told by its bytes, the same key being the same bytes,
so each distinct key of a chunk is decoded once.  A summary record is walked the same way
(`Record { num, summary (3): { update (1): SummaryItem ... } }`, its items of the same form,
nothing after them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...metric_stream import UNSET

PAD = 256              # zero bytes after a chunk: a read past a short record stays in the array
_MOST_PARTS = 8        # key fields read per item (a deeper nested key: the row path)


@dataclass
class Items:
    """The items of the `ok` records, record by record, each record's in its own order."""
    ok: np.ndarray         # per record: its bytes are exactly the form above
    record: np.ndarray     # per item: its record's index in the chunk
    slot: np.ndarray       # per item: its place in its record
    key: np.ndarray        # per item: its key, an index into `literals`
    text_at: np.ndarray
    text_len: np.ndarray
    step: np.ndarray       # per record: the HistoryStep's num, UNSET when the record has none
    literals: list         # the bytes of each distinct key (its key fields): KeyCodes.literals


def walk(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, keys: "KeyCodes", record_tag: int = 0x12,
         step: bool = True) -> Items:
    """The items of the records at [starts, ends) of `buf` (padded with PAD zero bytes): history
    records (tag 0x12, a step may follow the items), or summary records (0x1A, step=False).
    `keys` codes the items' keys (the same KeyCodes across a run's chunks keeps the codes)."""
    limit = len(buf) - PAD
    p, ends = starts.astype(np.int64), ends.astype(np.int64)
    ok = buf[p] == 0x08                                  # num
    n, _, good = varint_at(buf, p + 1, 10)
    ok &= good
    p = np.minimum(p + 1 + n, limit)
    ok &= buf[p] == record_tag                           # history (or summary)
    n, length, good = varint_at(buf, p + 1, 4)
    ok &= good
    p = np.minimum(p + 1 + n, limit)
    ok &= length.astype(np.int64) == ends - p
    # the items' places, slot by slot for all records at once (an item's end is its start's
    # next), then every item's fields at once
    at, owner, slots = [], [], []
    going = np.flatnonzero(ok & (p < ends) & (buf[p] == 0x0A))
    slot = 0
    while going.size:
        q = p[going]
        end = q + 2 + buf[q + 1].astype(np.int64)
        good = (buf[q + 1] < 0x80) & (end <= ends[going])
        at.append(q[good])
        owner.append(going[good])
        slots.append(np.full(int(good.sum()), slot, np.int64))
        ok[going[~good]] = False
        p[going] = np.where(good, end, q)
        going = going[good]
        going = going[(p[going] < ends[going]) & (buf[p[going]] == 0x0A)]
        slot += 1
    # the step: none, `12 00` (num 0), or `12 <1 + varint length> 08 <varint>` of at most 8 bytes
    rest = ends - p
    tag, size = buf[p], buf[p + 1].astype(np.int64)
    n, num, good = varint_at(buf, p + 3, 8)
    empty = (rest == 2) & (tag == 0x12) & (size == 0)
    full = (rest == 2 + size) & (tag == 0x12) & (buf[p + 2] == 0x08) & good & (size == 1 + n)
    ok &= (rest == 0) | (empty | full if step else False)
    step = np.where(full, num.astype(np.int64), np.where(empty, 0, UNSET))
    item, record, slot = _record_major(ok, at, owner, slots)
    return _fields(buf, limit, ok, item, record, slot, step, keys)


def _record_major(ok, at: list, owner: list, slots: list):
    """(item start, record, slot) of the ok records' items, record by record, each in slot order."""
    if not at:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    item, record, slot = np.concatenate(at), np.concatenate(owner), np.concatenate(slots)
    keep = np.flatnonzero(ok[record])
    # walked slot by slot: each item's place record by record is its record's first place plus its slot
    count = np.bincount(record[keep], minlength=len(ok))
    place = np.empty(len(keep), np.int64)
    place[(np.cumsum(count) - count)[record[keep]] + slot[keep]] = np.arange(len(keep))
    pick = keep[place]
    return item[pick], record[pick], slot[pick]


def _fields(buf, limit: int, ok, item, record, slot, step, keys: "KeyCodes") -> Items:
    """Each item's key fields and text: one `key`, or nested_key parts only; then value_json, its
    text ending the item.  A record with an item of any other form is not ok (and has no items)."""
    body = item + 2
    end = body + buf[item + 1]
    k = body.copy()
    legacy, nested = np.zeros(len(item), np.int64), np.zeros(len(item), np.int64)
    good = np.ones(len(item), bool)
    for _ in range(_MOST_PARTS):
        tag = buf[k]
        is_key, is_part = tag == 0x0A, tag == 0x12
        field = is_key | is_part
        if not field.any():
            break
        legacy += is_key
        nested += is_part
        part = buf[k + 1]
        good &= ~field | (part < 0x80)
        k = np.where(field, np.minimum(k + 2 + part, limit), k)
    text = buf[k + 2].astype(np.int64)
    good &= ((legacy == 1) & (nested == 0)) | ((legacy == 0) & (nested > 0))
    good &= (buf[k] == 0x82) & (buf[k + 1] == 0x01) & (text > 0) & (text < 0x80) & (k + 3 + text == end)
    if not good.all():
        ok[record[~good]] = False
        mine = ok[record]
        item, record, slot, body, k, text = (a[mine] for a in (item, record, slot, body, k, text))
    key = keys.codes(buf, body, k - body)
    return Items(ok, record, slot, key, k + 3, text, step, keys.literals)

class KeyCodes:
    """The distinct keys (their key fields' bytes) met so far, a run's handful, and each item's
    code among them: an item's bytes are hashed in NumPy, the hash looked up among the known
    ones, and the bytes then compared with the key's own, so a hash two keys share is never
    taken for either (such a chunk is told apart by sorting the bytes themselves)."""

    MOST = 1 << 16         # keys remembered: past this (a run naming a key per row) it starts afresh

    def __init__(self):
        self.literals: list[bytes] = []
        self._index: dict[bytes, int] = {}
        self._hashes = np.empty(0, np.uint64)        # sorted
        self._codes = np.empty(0, np.int64)          # the code of each sorted hash
        self._words = np.zeros((0, 1), np.uint64)    # each key's bytes by code, as zero-padded 8-byte words
        self._lengths = np.empty(0, np.int64)

    def codes(self, buf: np.ndarray, at: np.ndarray, length: np.ndarray) -> np.ndarray:
        if not len(at):
            return np.empty(0, np.int64)
        if len(self.literals) > self.MOST:
            self.__init__()
        # each literal as whole 8-byte words (zero past its length): hashed and compared a word at a time
        width = -(-int(length.max()) // 8) * 8
        windows = np.lib.stride_tricks.sliding_window_view(buf, width)
        grid = windows[np.minimum(at, len(windows) - 1)] * (np.arange(width)[None, :] < length[:, None])
        words = grid.view(np.uint64)
        hashed = _hash(words, length)
        codes, known = self._lookup(hashed)
        if not known.all():
            new = np.flatnonzero(~known)
            _, first = np.unique(hashed[new], return_index=True)
            for i in new[first].tolist():
                self._learn(bytes(grid[i, :length[i]]), hashed[i])
            codes, known = self._lookup(hashed)
        mine = self._words[:, :words.shape[1]][codes]
        if mine.shape[1] < words.shape[1]:          # (a key wider than any known: not one of them)
            return self._sorted_codes(grid, length)
        if not (known & (self._lengths[codes] == length) & (mine == words).all(axis=1)).all():
            return self._sorted_codes(grid, length)      # two keys of one hash: told apart the slow way
        return codes

    def _lookup(self, hashed: np.ndarray):
        if not len(self._hashes):
            return np.zeros(len(hashed), np.int64), np.zeros(len(hashed), bool)
        at = np.minimum(np.searchsorted(self._hashes, hashed), len(self._hashes) - 1)
        return self._codes[at], self._hashes[at] == hashed

    def _code(self, literal: bytes) -> int:
        code = self._index.get(literal)
        if code is None:
            code = self._index[literal] = len(self.literals)
            self.literals.append(literal)
            width = max(self._words.shape[1], -(-len(literal) // 8))
            row = np.zeros(width * 8, np.uint8)
            row[:len(literal)] = np.frombuffer(literal, np.uint8)
            self._words = np.vstack([np.pad(self._words, ((0, 0), (0, width - self._words.shape[1]))),
                                     row.view(np.uint64)[None, :]])
            self._lengths = np.append(self._lengths, len(literal))
        return code

    def _learn(self, literal: bytes, hashed) -> None:
        at = int(np.searchsorted(self._hashes, hashed))
        self._hashes = np.insert(self._hashes, at, hashed)
        self._codes = np.insert(self._codes, at, self._code(literal))

    def _sorted_codes(self, grid: np.ndarray, length: np.ndarray) -> np.ndarray:
        # the length joins the bytes: a literal ending in a zero byte is not one a byte shorter
        rows = np.ascontiguousarray(np.column_stack([grid.astype(np.uint8), length.astype(np.uint8)]))
        distinct, inverse = np.unique(rows.view(np.dtype((np.void, rows.shape[1]))).ravel(), return_inverse=True)
        mapped = [self._code(bytes(d)[:bytes(d)[-1]]) for d in distinct.tolist()]
        return np.asarray(mapped, np.int64)[inverse.ravel()]


def _odd_multipliers(count: int, seed: int) -> np.ndarray:
    """`count` well-mixed odd 64-bit numbers (splitmix64's sequence): made here, not by
    numpy.random, whose import costs a short fetch about 10 ms."""
    out, x, mask = [], seed, (1 << 64) - 1
    for _ in range(count):
        x = (x + 0x9E3779B97F4A7C15) & mask
        z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append((z ^ (z >> 31)) | 1)
    return np.array(out, np.uint64)


_MIX = _odd_multipliers(256, 0x5EED)


def _hash(words: np.ndarray, length: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's words (zero past its length) and its length: a multiplier a word,
    each word first folded on itself so that its high bytes reach the low bits."""
    with np.errstate(over="ignore"):
        hashed = length.astype(np.uint64) * _MIX[0]
        for j in range(words.shape[1]):
            word = words[:, j]
            hashed += (word ^ (word >> np.uint64(29))) * _MIX[j + 1]
        return hashed


def varint_at(buf: np.ndarray, p: np.ndarray, most: int):
    """(byte count, value, ended within `most` bytes) of the varints at p."""
    value = np.zeros(len(p), np.uint64)
    count = np.zeros(len(p), np.int64)
    going = np.ones(len(p), bool)
    for i in range(most):
        byte = buf[p + i]
        value |= np.where(going, (byte & 0x7F).astype(np.uint64) << np.uint64(7 * i), np.uint64(0))
        count += going
        going &= byte >= 0x80
    return count, value, ~going

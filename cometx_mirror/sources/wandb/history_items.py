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
    key: np.ndarray        # per item: its key, an index into the chunk's `literals`
    text_at: np.ndarray
    text_len: np.ndarray
    step: np.ndarray       # per record: the HistoryStep's num, UNSET when the record has none
    literals: list         # the bytes of each distinct key (its key fields)


def walk(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, record_tag: int = 0x12,
         step: bool = True) -> Items:
    """The items of the records at [starts, ends) of `buf` (padded with PAD zero bytes): history
    records (tag 0x12, a step may follow the items), or summary records (0x1A, step=False)."""
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
    found = []                                           # per slot: (records, literal at, its length, text at, its length)
    going = np.flatnonzero(ok & (p < ends) & (buf[p] == 0x0A))
    slot = 0
    while going.size:
        q = p[going]
        size = buf[q + 1].astype(np.int64)
        body, end = q + 2, np.minimum(q + 2 + size, limit)
        good = size < 0x80
        k, legacy, nested = body.copy(), np.zeros(len(q), np.int64), np.zeros(len(q), np.int64)
        for _ in range(_MOST_PARTS):
            tag = buf[k]
            is_key, is_part = tag == 0x0A, tag == 0x12
            field = is_key | is_part
            if not field.any():
                break
            legacy += is_key
            nested += is_part
            part = buf[k + 1].astype(np.int64)
            good &= ~field | (part < 0x80)
            k = np.where(field, np.minimum(k + 2 + part, limit), k)
        text = buf[k + 2].astype(np.int64)
        # one `key`, or nested_key parts only; then value_json, its text ending the item
        good &= ((legacy == 1) & (nested == 0)) | ((legacy == 0) & (nested > 0))
        good &= (buf[k] == 0x82) & (buf[k + 1] == 0x01) & (text > 0) & (text < 0x80) & (k + 3 + text == end)
        good &= end <= ends[going]
        found.append((going[good], slot, body[good], (k - body)[good], (k + 3)[good], text[good]))
        ok[going[~good]] = False
        p[going] = np.where(good, end, p[going])
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
    return _items(buf, ok, found, step)


def _items(buf, ok, found, step) -> Items:
    """The slots' items gathered record by record (a record's in slot order), the ok records' only."""
    if found:
        record, lit_at, lit_len, text_at, text_len = (np.concatenate([f[i] for f in found]) for i in (0, 2, 3, 4, 5))
        slot = np.concatenate([np.full(len(f[0]), f[1], np.int64) for f in found])
    else:
        record = slot = lit_at = lit_len = text_at = text_len = np.empty(0, np.int64)
    keep = ok[record]
    order = np.argsort(record[keep], kind="stable")     # slot-major as walked: record-major now
    record, slot, lit_at, lit_len, text_at, text_len = (
        a[keep][order] for a in (record, slot, lit_at, lit_len, text_at, text_len))
    key, literals = _distinct(buf, lit_at, lit_len)
    return Items(ok, record, slot, key, text_at, text_len, step, literals)


def _distinct(buf, at: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, list]:
    """(an index per item into the distinct literals, those literals as bytes)."""
    if not len(at):
        return np.empty(0, np.int64), []
    width = int(length.max())
    windows = np.lib.stride_tricks.sliding_window_view(buf, width)
    grid = windows[np.minimum(at, len(windows) - 1)] * (np.arange(width)[None, :] < length[:, None])
    # the length joins the bytes: a literal ending in a zero byte is not one a byte shorter
    rows = np.ascontiguousarray(np.column_stack([grid.astype(np.uint8), length.astype(np.uint8)]))
    distinct, key = np.unique(rows.view(np.dtype((np.void, width + 1))).ravel(), return_inverse=True)
    literals = [bytes(d)[:bytes(d)[-1]] for d in distinct.tolist()]
    return key.ravel(), literals


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

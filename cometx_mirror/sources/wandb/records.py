"""Reader for W&B transaction logs (`run-<id>.wandb`) and folding them into run state.

Framing (checked byte for byte against wandb 0.17 to 0.31): a 7-byte file header
(b":W&B", uint16 LE 0xBEE1, uint8 version 0), then LevelDB-log blocks of 32 KiB.
Each chunk has a 7-byte header <uint32 crc, uint16 length, uint8 type>; type is
FULL=1, FIRST=2, MIDDLE=3, LAST=4; fewer than 7 bytes left in a block are zero
padding.  Unlike LevelDB, the checksum is plain zlib CRC-32 of the type byte
followed by the payload (no crc32c, no masking): that is what wandb writes.
Each reassembled payload is one `wandb_internal_pb2.Record`.
"""
from __future__ import annotations

import functools
import io
import json
import math
import re
import struct
import zlib
from operator import attrgetter, itemgetter
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator

from ..console_text import ConsoleText
from . import log_frames
from .record_shapes import literal_of, read_varint, summary_literals

BLOCK = 32768
HEADER = 7
FILE_HEADER = struct.Struct("<4sHB")
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class CorruptLog(Exception):
    """A damaged record log; `offset` is the byte offset of the bad chunk."""

    def __init__(self, name: str, offset: int, reason: str):
        super().__init__(f"{name}: corrupt W&B record log at byte {offset} ({reason})")
        self.name, self.offset, self.reason = name, offset, reason


# CRC-32 of each chunk type byte: the running value a chunk's checksum starts from
_TYPE_CRC = [zlib.crc32(bytes([kind])) for kind in range(5)]
READ_BLOCKS = 32      # a reader holds at most this many blocks (1 MiB) of the log at a time


def _read_full(stream: BinaryIO, n: int) -> bytes:
    """Up to n bytes, fewer only at the end (a stream may hand out less per read)."""
    data = stream.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n and (more := stream.read(n - got)):
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class LogReader:
    """Frames the records of a log read from a binary stream, a few blocks at a time.

    Memory is bounded by READ_BLOCKS blocks plus the record being reassembled.
    `start` resumes at a record boundary an earlier read reported as `complete_end`
    (it must not be in a block trailer); after iterating, `complete_end` is the byte
    just past the last whole record and `bytes_read` how much of the stream was read.
    """

    def __init__(self, stream: BinaryIO, name: str = "run.wandb", start: int = 0):
        self.stream, self.name, self.start = stream, name, start
        self.complete_end = start
        self.bytes_read = 0

    def _chunks(self, blocks: int = READ_BLOCKS) -> Iterator[tuple[int, bytes]]:
        """(file offset, data) of block-aligned reads, from the block holding `start`."""
        base = self.start - self.start % BLOCK
        if base:
            self.stream.seek(base)
        while data := _read_full(self.stream, BLOCK * blocks):
            self.bytes_read += len(data)
            yield base, data
            base += len(data)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        """Yield (offset, payload) per logical record; see iter_payloads."""
        if not log_frames.ENABLED:
            yield from self._one_by_one()
            return
        for span in self.spans():
            yield from span.records()

    def spans(self) -> Iterator["log_frames.Span"]:
        """The records a span of the log at a time (log_frames), as __iter__ yields them one by one."""
        name, framer = self.name, log_frames.Framer()
        for base, buf in self._chunks(log_frames.SPAN_BLOCKS):
            first = self.start - base if base <= self.start else 0
            if base == 0 and self.start == 0:
                _check_file_header(buf, name)
                first = HEADER
            span, event = framer.frame(buf, base, first)
            if framer.complete_end is not None:
                self.complete_end = framer.complete_end
            if len(span):
                yield span
            if event is not None:
                at, reason = event
                if reason is None:
                    return                           # torn tail
                raise CorruptLog(name, base + at, reason)
        if self.start == 0 and not self.bytes_read:
            raise CorruptLog(name, 0, "shorter than the file header")

    def _one_by_one(self) -> Iterator[tuple[int, bytes]]:
        """The chunk-by-chunk framing log_frames replaces (kept to compare the two)."""
        name, crc32, unpack = self.name, zlib.crc32, CHUNK_HEADER.unpack_from
        pending: list | None = None
        pending_at = 0
        for base, buf in self._chunks():
            end = len(buf)
            pos = self.start - base if base <= self.start else 0
            if base == 0 and self.start == 0:
                _check_file_header(buf, name)
                pos = HEADER
            while pos < end:
                left = BLOCK - pos % BLOCK
                if left < HEADER:                    # block trailer: zero padding
                    pos += left
                    continue
                if pos + HEADER > end:
                    return                           # torn tail
                crc, length, kind = unpack(buf, pos)
                if crc == 0 and length == 0 and kind == 0:
                    stop = min(end, pos + left)
                    if buf.count(0, pos, stop) == stop - pos:
                        pos += left                  # zero-filled rest of a block (preallocated)
                        continue
                    raise CorruptLog(name, base + pos, "empty chunk header before data")
                if kind > LAST or kind < FULL or HEADER + length > left:
                    raise CorruptLog(name, base + pos, f"bad chunk header (type {kind}, length {length})")
                if pos + HEADER + length > end:
                    return                           # torn tail
                payload = buf[pos + HEADER:pos + HEADER + length]
                if crc32(payload, _TYPE_CRC[kind]) != crc:
                    raise CorruptLog(name, base + pos, "checksum mismatch")
                at, pos = base + pos, pos + HEADER + length
                if kind == FULL:
                    if pending is not None:
                        raise CorruptLog(name, at, "record starts inside a fragmented record")
                    self.complete_end = base + pos
                    yield at, payload
                elif kind == FIRST:
                    if pending is not None:
                        raise CorruptLog(name, at, "record starts inside a fragmented record")
                    pending, pending_at = [payload], at
                elif pending is None:
                    raise CorruptLog(name, at, "continuation chunk without a first chunk")
                else:
                    pending.append(payload)
                    if kind == LAST:
                        whole, pending = b"".join(pending), None
                        self.complete_end = base + pos
                        yield pending_at, whole
        if self.start == 0 and not self.bytes_read:
            raise CorruptLog(name, 0, "shorter than the file header")


def _check_file_header(buf: bytes, name: str) -> None:
    if len(buf) < HEADER:
        raise CorruptLog(name, 0, "shorter than the file header")
    ident, magic, version = FILE_HEADER.unpack_from(buf, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise CorruptLog(name, 0, "not a W&B record log")
    if version != 0:
        raise CorruptLog(name, 6, f"unknown log version {version}")


def _stream(source) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source


def iter_payloads(source, name: str = "run.wandb") -> Iterator[tuple[int, bytes]]:
    """Yield (offset, payload) for each logical record of a log (bytes or a binary stream).

    A short chunk header or payload at the very end is a torn tail (a live run
    mid-flush, or a crash) and ends the scan quietly; anything else that does not
    check out raises CorruptLog with the offset.
    """
    if isinstance(source, (bytes, bytearray, memoryview)) and len(source) < HEADER:
        raise CorruptLog(name, 0, "shorter than the file header")
    return iter(LogReader(_stream(source), name))


def _pb():
    # Loaded on first use, without the rest of wandb (see protos.py)
    from .protos import wandb_internal_pb2
    return wandb_internal_pb2()


def iter_records(buf: bytes, name: str = "run.wandb") -> Iterator[tuple[int, Any]]:
    pb = _pb()
    for offset, payload in iter_payloads(buf, name):
        record = pb.Record()
        try:
            record.ParseFromString(payload)
        except Exception:
            raise CorruptLog(name, offset, "record is not a protobuf Record") from None
        yield offset, record


# -- folding ------------------------------------------------------------------

def _key_path(item) -> list[str]:
    """wandb-core writes `nested_key`; the legacy Python writer (<= 0.20) wrote `key`."""
    return list(item.nested_key) if len(item.nested_key) else [item.key]


# Bare (unquoted) non-finite spellings some writers use where JSON has none; the Python
# SDK writes NaN / Infinity, which json.loads reads.  A quoted "nan" is a string and stays one.
_BARE_NON_FINITE = {"nan": float("nan"), "+nan": float("nan"), "-nan": float("nan"),
                    "inf": float("inf"), "+inf": float("inf"), "-inf": float("-inf"),
                    "infinity": float("inf"), "+infinity": float("inf"), "-infinity": float("-inf")}


def _loads(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        number = _BARE_NON_FINITE.get(text.strip().lower())
        # a float the writer spelled its own way, else text kept rather than dropped
        return text if number is None else number


def _history_value(item) -> Any:
    which = item.WhichOneof("value") if item.DESCRIPTOR.oneofs_by_name.get("value") else None
    if which == "none":
        return None
    if which in ("boolean", "integer", "number", "text"):
        return getattr(item, which)
    if which == "json":
        return _loads(item.json)
    return _loads(item.value_json)


def _put(target: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if type(nxt) is str:
            nxt = target[part] = _loads(nxt)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[path[-1]] = value


def _drop(target: dict, path: list[str]) -> None:
    for part in path[:-1]:
        parent, target = target, target.get(part)
        if type(target) is str:
            target = parent[part] = _loads(target)
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)


def _ts_ms(ts) -> int | None:
    """A protobuf Timestamp to epoch ms (None when unset)."""
    if not ts.seconds and not ts.nanos:
        return None
    return ts.seconds * 1000 + ts.nanos // 1_000_000


# A summary value is kept as its JSON text (a str) until the log ends: wandb-core rewrites the
# summary beside every history row, and only the last value of each key is kept.  The summary
# tree holds nothing but dicts and such texts (a text is decoded when a key is put under it),
# so a str in it is always a value still to decode.

def _resolve(tree: dict) -> dict:
    for key, value in tree.items():
        if type(value) is str:
            tree[key] = _loads(value)
        elif isinstance(value, dict):
            _resolve(value)
    return tree


_FIRST, _VALUE_JSON = itemgetter(0), attrgetter("value_json")


def _put_texts(target: dict, items) -> None:
    """Summary updates, their values kept as text; a one-part key (nearly all) takes the short way."""
    nested = [it.nested_key for it in items]
    if {*map(len, nested)} == {1}:
        target.update(zip(map(_FIRST, nested), map(_VALUE_JSON, items)))   # loops in C
        return
    for it in items:
        _put(target, _key_path(it), it.value_json)


# -- reading history records without decoding them ----------------------------
#
# A history record is told by its top-level field tags (field 2 is `history`).  The fetch only counts those
# rows, and the normalizer's first pass needs of them only the `_timestamp` (the run's
# last time) and whether they log media; both are found in the bytes, and a row that
# does not look exactly as expected is decoded instead.

HISTORY_TAG, SUMMARY_TAG = 0x12, 0x1A     # fields 2 and 3, length-delimited
MEDIA_MARK = b"_type"   # in a value's JSON or as a nested key part
# one HistoryItem {nested_key|key: "_timestamp", value_json: <text>}: its length byte is 15 + len(text)
_TIMESTAMP_ITEM = re.compile(rb"\x0a([\x00-\x7f])[\x0a\x12]\x0a_timestamp\x82\x01([\x00-\x7f])")


def is_history(payload: bytes) -> bool:
    """Whether a payload is a history record, from its top-level field tags alone
    (True for bytes that do not parse, so that decoding them reports the damage)."""
    if _starts_as(payload, HISTORY_TAG):
        return True
    pos, end = 0, len(payload)
    try:
        while pos < end:
            tag, pos = read_varint(payload, pos)
            if tag == HISTORY_TAG:
                return True
            wire = tag & 7
            if wire == 0:
                _, pos = read_varint(payload, pos)
            elif wire == 2:
                length, pos = read_varint(payload, pos)
                pos += length
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            else:
                return True
    except IndexError:
        return True
    return pos != end


def _starts_as(payload: bytes, tag: int) -> bool:
    """True when the payload is `num` then the field of `tag`, as every writer orders them.
    (A record in another order is decoded whole and folded as one: only slower.)"""
    return _STARTS[tag](payload) is not None


# `num` (field 1, varint: continuation bytes then a last byte) followed by the tag, matched in C
_STARTS = {tag: re.compile(rb"\x08[\x80-\xff]*[\x00-\x7f]" + re.escape(bytes([tag])), re.S).match
           for tag in (HISTORY_TAG, SUMMARY_TAG)}


def history_timestamp_text(payload: bytes) -> str | None:
    """The `_timestamp` value text of a history record found in its bytes, or None when
    the bytes do not show it unambiguously (then the record must be decoded)."""
    if payload.count(b"_timestamp") != 1:
        return None
    m = _TIMESTAMP_ITEM.search(payload)
    if m is None or m[1][0] != 15 + m[2][0]:
        return None
    start = m.end()
    return payload[start:start + m[2][0]].decode("utf-8", "replace")


def _decode(pb, payload: bytes, name: str, offset: int):
    rec = pb.Record()
    try:
        rec.ParseFromString(payload)
    except Exception:
        raise CorruptLog(name, offset, "record is not a protobuf Record") from None
    return rec


class _LatestSummary:
    """wandb-core writes the whole summary beside every history row (and beside it another of the
    run's time): of the summary records of one key set (their items in any order), each updating
    every key and removing none, the last one overwrites every leaf the earlier ones wrote, so
    only it need be folded.  The first record of a key set is folded as usual (it places the
    keys); later ones are held undecoded, one per key set, each replacing the one before; the
    held ones are folded, in log order, before the next record touching the summary, and at the end."""

    def __init__(self):
        self.shapes: set[frozenset] = set()          # the key sets learnt (record_shapes.summary_literals)
        self.held: dict[frozenset, tuple[bytes, int]] = {}

    @functools.cached_property
    def codes(self):
        """The keys fold_spans.matching met, a history_items.KeyCodes (made on first use: NumPy's)."""
        from .history_items import KeyCodes
        return KeyCodes()

    def hold(self, payload: bytes, offset: int) -> bool:
        if self.shapes:
            shape = summary_literals(payload)
            if shape in self.shapes:
                self.held[shape] = payload, offset
                return True
        return False

    def release(self, log: "RunLog", pb, name: str) -> None:
        if self.held:
            for payload, offset in sorted(self.held.values(), key=itemgetter(1)):
                _put_texts(log.summary, _decode(pb, payload, name, offset).summary.update)
            self.held = {}

    def learn(self, r) -> None:
        """Hold from now on the records of this decoded SummaryRecord's key set, if they can be."""
        items = r.update      # (its removes, if any, do not matter: a held record has none)
        if not items:
            return
        literals, paths = [], []
        for it in items:
            nested = tuple(it.nested_key)
            if nested and it.key:
                return                       # both forms in one item
            literals.append(literal_of(nested if len(nested) != 1 else nested[0]) if nested
                            else literal_of(it.key, legacy=True))
            paths.append(nested or (it.key,))
        whole = set(paths)
        if len(whole) != len(paths) or any(p[:n] in whole for p in paths for n in range(1, len(p))):
            return                           # a key twice, or under another: order would matter
        key = frozenset(literals)
        if len(self.shapes) < _KEY_SETS:
            self.shapes.add(key)


_KEY_SETS = 64      # summary key sets held per run (wandb-core writes two, a run may change its keys)


@dataclass
class RunLog:
    """What a record log says about a run, folded in record order."""
    producer: str | None = None
    run: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)   # empty when folded with history=False
    history_rows: int = 0
    media_rows: list[dict] = field(default_factory=list)  # with history=False: the rows that log media
    system: list[dict] = field(default_factory=list)     # {"_timestamp_ms": int, key: value}
    files: list[str] = field(default_factory=list)
    artifacts: list[dict] = field(default_factory=list)
    used_artifacts: list[dict] = field(default_factory=list)
    output: ConsoleText = field(default_factory=ConsoleText)   # stdout and stderr lines, as one text
    environment: dict = field(default_factory=dict)
    exit: dict | None = None
    last_time_ms: int | None = None
    records: int = 0
    complete_end: int = 0    # the byte just past the last whole record (where a later read resumes)
    bytes_read: int = 0      # how much of the log this fold read

    def _seen(self, ms: int | None) -> None:
        if ms is not None and (self.last_time_ms is None or ms > self.last_time_ms):
            self.last_time_ms = ms


def history_row(r) -> dict:
    """A HistoryRecord as the row W&B logged (nested keys as nested dicts)."""
    row: dict = {}
    for it in r.item:
        _put(row, _key_path(it), _history_value(it))
    if "_step" not in row and r.HasField("step"):
        row["_step"] = r.step.num
    return row


def _see_row(log: RunLog, row: dict) -> None:
    ts = row.get("_timestamp")
    if isinstance(ts, (int, float)) and math.isfinite(ts):      # a NaN time tells nothing
        log._seen(int(ts * 1000))


_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")


def _light_history(log: RunLog, payload: bytes, decode) -> None:
    """A history record when rows are not kept: count it, note its time, keep it if it logs media."""
    log.history_rows += 1
    if MEDIA_MARK not in payload:
        text = history_timestamp_text(payload)
        if text is not None:
            if _DECIMAL.fullmatch(text):
                # a plain decimal is the same double from float() as from json, at a tenth of the cost
                ms = int(float(text) * 1000)
                if log.last_time_ms is None or ms > log.last_time_ms:
                    log.last_time_ms = ms
            else:
                _see_row(log, {"_timestamp": _loads(text)})
            return
    row = history_row(decode().history)
    _see_row(log, row)
    if MEDIA_MARK in payload:
        log.media_rows.append(row)


_COVER_AHEAD = 4096    # summary records judged at once past the ones needed now (a log that
# interleaves other records, a printed line a row, has runs of one summary record)


_FEW = 64      # summary records in a run told apart by a loop rather than by np.unique


def _fold_span(span, step, log: RunLog, latest: "_LatestSummary") -> None:
    """A span's records folded as one by one (`step`), its history records counted and timed in
    bulk when fold_spans proves them plain (history=False only)."""
    import numpy as np
    from . import fold_spans
    untold, tag = fold_spans.leading_tags(span)
    history = tag == HISTORY_TAG
    newest = False if untold.any() else fold_spans.history_times(span, history)
    if newest is False:
        for offset, payload in span.records():
            step(offset, payload)
        return
    n = int(history.sum())
    log.history_rows += n
    log.records += n
    log._seen(newest)
    data, rest = span.data, np.flatnonzero(~history)
    summaries = tag[rest] == SUMMARY_TAG
    offsets, starts, ends = span.offsets[rest].tolist(), span.starts[rest].tolist(), span.ends[rest].tolist()
    # which known key set each summary record is of, judged for many at once (each is judged alone,
    # so a judgement holds while the known sets do): positions [known_from, known_to) were judged
    # for `shapes`, and `unmatched` lists those of them of no set (other records too), in order
    is_summary = summaries.tolist()
    run_ends = np.flatnonzero(~summaries).tolist() + [len(rest)]     # where each run of summary records ends
    view, shapes, known_from, known_to, unmatched, match = None, None, 0, 0, [0], None
    e = u = i = 0
    while i < len(rest):
        if is_summary[i] and latest.shapes:
            # the summary records from here to the next other record: of those of a known set,
            # only the last of each set is held (_LatestSummary.hold)
            while run_ends[e] < i:
                e += 1
            end = run_ends[e]
            if shapes is None or len(latest.shapes) != len(shapes) or not (known_from <= i and end <= known_to):
                if view is None:
                    view = fold_spans.span_view(span)
                shapes, known_from = list(latest.shapes), i
                known_to = max(end, min(len(rest), i + _COVER_AHEAD))
                ahead = np.flatnonzero(summaries[i:known_to])
                match = np.full(known_to - i, -1, np.int64)
                match[ahead] = fold_spans.matching(shapes, span, rest[i + ahead], view, latest.codes)
                unmatched, u = (i + np.flatnonzero(match < 0)).tolist() + [known_to], 0
            while unmatched[u] < i:
                u += 1
            k = min(unmatched[u], end) - i
            if k:
                run = match[i - known_from:i - known_from + k]
                if k > _FEW:
                    sets, back = np.unique(run[::-1], return_index=True)
                    lasts = zip(sets.tolist(), (i + k - 1 - b for b in back.tolist()))
                else:       # a few (two beside each printed row): a loop costs less than a NumPy call
                    lasts = dict(zip(run.tolist(), range(i, i + k))).items()
                for which, last in lasts:
                    latest.held[shapes[which]] = data[starts[last]:ends[last]], offsets[last]
                log.records += k
                i += k
                continue
        step(offsets[i], data[starts[i]:ends[i]])    # (a summary record of a new key set is learnt so)
        i += 1


def fold(source, name: str = "run.wandb", history: bool = True, summary: bool = True,
         row_details: bool = True, start: int = 0, log: RunLog | None = None, spans_to=None) -> RunLog:
    """Fold a log (bytes or a binary stream) in one pass.

    start, log: go on from an earlier fold that ended at `start` (its complete_end),
    adding to `log` (a seekable stream of the whole log; only the bytes from the
    block holding `start` are read).

    history=False: the rows are counted, not kept (see RunLog), so memory does not grow
    with them; with row_details=False too, nothing else is read from them (no last time,
    no media rows).  summary=False: summary records (one beside every row in wandb-core's
    logs) are skipped undecoded, for a reader that does not need the summary.

    spans_to: called with each span the fold frames (history=False only; history_spill keeps them),
    or not at all where the log is read record by record.
    """
    pb = _pb()
    log = RunLog() if log is None else log
    if isinstance(source, (bytes, bytearray, memoryview)) and len(source) < HEADER and not start:
        raise CorruptLog(name, 0, "shorter than the file header")
    reader = LogReader(_stream(source), name, start)
    latest = _LatestSummary() if summary else None

    def step(offset: int, payload: bytes) -> None:
        if _starts_as(payload, SUMMARY_TAG) and (not summary or latest.hold(payload, offset)):
            log.records += 1      # skipped, or held: superseded by a later record of its shape
            return
        if not history and _starts_as(payload, HISTORY_TAG):
            log.records += 1
            if row_details:
                _light_history(log, payload, lambda: _decode(pb, payload, name, offset))
            else:
                log.history_rows += 1
            return
        rec = _decode(pb, payload, name, offset)
        kind = rec.WhichOneof("record_type")
        log.records += 1
        if kind is None:
            return
        r = getattr(rec, kind)
        if latest is not None and kind in ("run", "summary"):
            latest.release(log, pb, name)       # what the held record said comes first
        if kind == "header":
            log.producer = r.version_info.producer or None
        elif kind == "run":
            start = _ts_ms(r.start_time)
            log.run = {"id": r.run_id, "entity": r.entity, "project": r.project,
                       "name": r.display_name, "group": r.run_group, "job_type": r.job_type,
                       "notes": r.notes, "tags": list(r.tags), "host": r.host,
                       "start_time": start, "sweep_id": r.sweep_id, "resumed": r.resumed,
                       "starting_step": r.starting_step}
            if r.HasField("git"):
                log.run["git"] = {"remote_url": r.git.remote_url, "commit": r.git.commit}
            log._seen(start)
            for it in r.config.update:
                _put(log.config, _key_path(it), _loads(it.value_json))
            _put_texts(log.summary, r.summary.update)
        elif kind == "summary":
            _put_texts(log.summary, r.update)
            for it in r.remove:
                _drop(log.summary, _key_path(it))
            if latest is not None:
                latest.learn(r)
        elif kind == "config":
            for it in r.update:
                _put(log.config, _key_path(it), _loads(it.value_json))
            for it in r.remove:
                _drop(log.config, _key_path(it))
        elif kind == "history":
            row = history_row(r)
            _see_row(log, row)
            log.history_rows += 1
            if history:
                log.history.append(row)
            elif MEDIA_MARK in payload:
                log.media_rows.append(row)
        elif kind == "stats":
            ms = _ts_ms(r.timestamp)
            sample = {it.key: _loads(it.value_json) for it in r.item}
            sample["_timestamp_ms"] = ms
            log._seen(ms)
            log.system.append(sample)
        elif kind == "files":
            for f in r.files:
                if f.path not in log.files:
                    log.files.append(f.path)
        elif kind == "artifact":
            log.artifacts.append({
                "name": r.name, "type": r.type, "digest": r.digest, "aliases": list(r.aliases),
                "description": r.description or None,
                "metadata": _loads(r.metadata) if r.metadata else None,
                "files": [{"path": e.path, "digest": e.digest, "size": e.size, "ref": e.ref or None,
                           "local_path": e.local_path or None} for e in r.manifest.contents]})
        elif kind == "use_artifact":
            log.used_artifacts.append({"id": r.id, "type": r.type, "name": r.name})
        elif kind in ("output_raw", "output"):
            log._seen(_ts_ms(r.timestamp))
            log.output.add(r.line)
        elif kind == "environment":   # once a run, if at all: protobuf's JSON layer is imported only then
            from google.protobuf.json_format import MessageToDict
            log.environment.update(MessageToDict(r, preserving_proto_field_name=False))
        elif kind == "exit":
            log.exit = {"exit_code": r.exit_code, "runtime": r.runtime}
    if not history and summary and row_details and log_frames.ENABLED:
        for span in reader.spans():        # history records counted a span at a time where they can be
            if spans_to is not None:
                spans_to(span)
            _fold_span(span, step, log, latest)
    else:
        for offset, payload in reader:
            step(offset, payload)
    if latest is not None:
        latest.release(log, pb, name)
    _resolve(log.summary)
    log.complete_end, log.bytes_read = reader.complete_end, reader.bytes_read
    return log


class HistoryPayload:
    """A history record's bytes, decoded only when asked: it reads as the HistoryRecord
    (`.item`, `.step`, ...), while a reader that knows the record's byte shape
    (history_columns) takes `payload` as it is."""

    __slots__ = ("payload", "offset", "name", "_record")

    def __init__(self, payload: bytes, offset: int, name: str):
        self.payload, self.offset, self.name, self._record = payload, offset, name, None

    @property
    def record(self):
        if self._record is None:
            self._record = _decode(_pb(), self.payload, self.name, self.offset).history
        return self._record

    def __getattr__(self, attr: str):
        return getattr(self.record, attr)


def iter_history(source, name: str = "run.wandb", start: int = 0) -> Iterator[Any]:
    """Each HistoryRecord of a log (bytes or a binary stream), in order, as a HistoryPayload
    (decoded when read); nothing else is decoded.  `start`: from that record boundary on
    (a grown log's tail: see LogReader)."""
    starts_as_history, starts_as_summary = _STARTS[HISTORY_TAG], _STARTS[SUMMARY_TAG]
    payloads = iter(LogReader(_stream(source), name, start)) if start else iter_payloads(source, name)
    for offset, payload in payloads:
        if starts_as_history(payload) is None and (starts_as_summary(payload) is not None or not is_history(payload)):
            continue      # (the summary beside each row is told from its first bytes, the rest by their tags)
        yield HistoryPayload(payload, offset, name)


class HistorySpan:
    """The history records of one framed span (log_frames.Span), told from the others in bulk:
    record i is data[starts[i]:ends[i]]; indexing gives HistoryPayloads (an int one, a slice a list)."""

    __slots__ = ("data", "starts", "ends", "offsets", "name")

    def __init__(self, span, name: str):
        import numpy as np
        keep = _history_mask(np, span)
        self.data, self.name = span.data, name
        self.starts, self.ends, self.offsets = span.starts[keep], span.ends[keep], span.offsets[keep]

    @classmethod
    def of(cls, data: bytes, starts, ends, offsets, name: str) -> "HistorySpan":
        """The HistorySpan these fields describe (one a fetch's spill kept: history_spill)."""
        span = cls.__new__(cls)
        span.data, span.starts, span.ends, span.offsets, span.name = data, starts, ends, offsets, name
        return span

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        a, b = int(self.starts[i]), int(self.ends[i])
        return HistoryPayload(self.data[a:b], int(self.offsets[i]), self.name)

    def payloads(self) -> list:
        return self[:]


def _history_mask(np, span):
    """Which records of a span iter_history would take, as a boolean array: `num` then the
    history tag (or the summary tag, dropped) read for all at once; any other start in Python."""
    from . import fold_spans

    starts, ends = span.starts, span.ends
    _, tag = fold_spans.leading_tags(span)      # 0 where untold: neither tag
    history = tag == HISTORY_TAG
    summary = tag == SUMMARY_TAG
    starts_as_history, starts_as_summary = _STARTS[HISTORY_TAG], _STARTS[SUMMARY_TAG]
    data = span.data
    for i in np.flatnonzero(~history & ~summary).tolist():
        payload = data[int(starts[i]):int(ends[i])]
        history[i] = starts_as_history(payload) is not None or (
            starts_as_summary(payload) is None and is_history(payload))
    return history


def iter_history_spans(source, name: str = "run.wandb", start: int = 0) -> Iterator[HistorySpan]:
    """iter_history's records a span at a time (HistorySpan), none made a Python object."""
    if isinstance(source, (bytes, bytearray, memoryview)) and len(source) < HEADER and not start:
        raise CorruptLog(name, 0, "shorter than the file header")
    for span in LogReader(_stream(source), name, start).spans():
        history = HistorySpan(span, name)
        if len(history):
            yield history

"""The common neptune-scale operation, read without building its protobuf map.

`Run.log_metrics` queues one UpdateRunSnapshot per step: a step, a timestamp and
an `append` map of float64 values, nothing else. Decoding that map with the
generated classes makes a Python object per key and per value; here the message
is parsed with a shadow type whose map field is `repeated bytes` (the map's wire
form: one length-delimited entry per key), and each entry is checked to be
exactly `key: Value{float64}`. Anything else -- another field set, another value
kind, a repeated key, a key not UTF-8 -- is not "simple" and the caller decodes
the operation with the real classes, so what is read here always equals what the
real decoding gives.
"""
from __future__ import annotations

import re
import struct
from operator import itemgetter

_PACKAGE = "cometx_mirror.scale_shadow"
_ENTRY_TAIL = b"\x12\t\t"    # the entry's value field (2, 9 bytes long) holding Value.float64 (field 1, fixed64)
_SHADOW = None


def shadow_file() -> bytes:
    """The shadow type's file, serialized: UpdateRunSnapshot's fields under the same numbers, the map
    fields as raw entries.  What `_SHADOW_FILE` holds (tests/test_neptune_scale_speed.py checks)."""
    from google.protobuf import descriptor_pb2
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="cometx_mirror/scale_shadow.proto", package=_PACKAGE,
                                             syntax="proto2")
    for name, fields in (
            ("Step", [("whole", 1, F.TYPE_UINT64), ("micro", 2, F.TYPE_UINT64)]),
            ("Timestamp", [("seconds", 1, F.TYPE_INT64), ("nanos", 2, F.TYPE_INT32)]),
            # every other field of UpdateRunSnapshot in one oneof, as bytes: a repeated field on the
            # wire reads as its last element, so `WhichOneof("other")` is None only when none is set
            ("Snapshot", [("step", 1, "Step"), ("timestamp", 2, "Timestamp"),
                          ("append", 8, F.TYPE_BYTES, F.LABEL_REPEATED)]
             + [(f"other_{n}", n, F.TYPE_BYTES, F.LABEL_OPTIONAL, 0) for n in (4, 5, 9, 10, 11, 12)])):
        message = fdp.message_type.add(name=name)
        for fname, number, typ, *how in fields:
            field = message.field.add(name=fname, number=number, label=how[0] if how else F.LABEL_OPTIONAL)
            if isinstance(typ, str):
                field.type, field.type_name = F.TYPE_MESSAGE, f".{_PACKAGE}.{typ}"
            else:
                field.type = typ
            if len(how) > 1:
                field.oneof_index = how[1]
        if name == "Snapshot":
            message.oneof_decl.add(name="other")
    return fdp.SerializeToString()


# shadow_file(), kept serialized so that a fetch does not import descriptor_pb2 (about 3 % of a short run's fetch)
_SHADOW_FILE = (
    b'\n cometx_mirror/scale_shadow.proto\x12\x1acometx_mirror.scale_shadow"$\n\x04Step\x12\r\n\x05who'
    b'le\x18\x01 \x01(\x04\x12\r\n\x05micro\x18\x02 \x01(\x04"+\n\tTimestamp\x12\x0f\n\x07seconds\x18'
    b'\x01 \x01(\x03\x12\r\n\x05nanos\x18\x02 \x01(\x05"\x82\x02\n\x08Snapshot\x12.\n\x04step\x18\x01 '
    b'\x01(\x0b2 .cometx_mirror.scale_shadow.Step\x128\n\ttimestamp\x18\x02 \x01(\x0b2%.cometx_mirror.'
    b'scale_shadow.Timestamp\x12\x0e\n\x06append\x18\x08 \x03(\x0c\x12\x11\n\x07other_4\x18\x04 \x01('
    b'\x0cH\x00\x12\x11\n\x07other_5\x18\x05 \x01(\x0cH\x00\x12\x11\n\x07other_9\x18\t \x01(\x0cH\x00'
    b'\x12\x12\n\x08other_10\x18\n \x01(\x0cH\x00\x12\x12\n\x08other_11\x18\x0b \x01(\x0cH\x00\x12\x12'
    b'\n\x08other_12\x18\x0c \x01(\x0cH\x00B\x07\n\x05otherb\x06proto2')


def _shadow_class():
    """The shadow Snapshot message class, built once."""
    global _SHADOW
    if _SHADOW is None:
        from google.protobuf import descriptor_pool, message_factory
        pool = descriptor_pool.DescriptorPool()
        pool.AddSerializedFile(_SHADOW_FILE)
        _SHADOW = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Snapshot"))
    return _SHADOW


class _Layout:
    """One operation shape: the `append` entries of these keys in this serialized order. `tail`
    matches exactly those entries' bytes, any double in each; `unpack` reads the doubles from them."""

    def __init__(self, entries: list[bytes], names: list[str]):
        fields = [b"B" + _varint(len(e)) + e for e in entries]    # field 8, length-delimited
        self.size = sum(map(len, fields))
        self.tail = re.compile(b"".join(re.escape(f[:-8]) + b".{8}" for f in fields), re.DOTALL)
        self.unpack = struct.Struct("<" + "".join(f"{len(f) - 8}xd" for f in fields)).unpack_from
        order = sorted(range(len(names)), key=names.__getitem__)
        self.names = [names[i] for i in order]
        self.order = itemgetter(*order) if len(order) > 1 else (lambda values: values)
        self._fields, self._sorted, self._columns = fields, order, None

    def columns(self):
        """For SimpleOps.read_many, built on first use: the offsets of the fixed bytes of the entries
        and their values, and the offsets of each double's 8 bytes, in sorted name order."""
        if self._columns is None:
            import numpy as np
            fixed, starts, at = bytearray(), [], 0
            positions = []
            for f in self._fields:
                positions += range(at, at + len(f) - 8)
                fixed += f[:-8]
                starts.append(at + len(f) - 8)
                at += len(f)
            doubles = np.array([starts[i] for i in self._sorted], np.int64)[:, None] + np.arange(8)
            self._columns = (np.array(positions, np.int64), np.frombuffer(bytes(fixed), np.uint8),
                             doubles.ravel())
        return self._columns

    def ends(self, blob: bytes) -> bool:
        return len(blob) >= self.size and self.tail.fullmatch(blob, len(blob) - self.size) is not None


class SimpleOps:
    """Reads simple operations one at a time. A run's operations mostly share a few layouts (the
    same keys, serialized in the same order), so each layout is checked and sorted once; an
    operation of a known layout costs a regex match of its entries, a parse of the few bytes before
    them (its step and timestamp) and one struct unpack, with no Python object per entry."""
    KEEP = 4     # layouts remembered, the latest first
    LEARN = 8    # operations read_many learns from (or finds not simple) in one segment, at most

    def __init__(self):
        self._parse = _shadow_class().FromString
        self._layouts: list[_Layout] = []

    def read(self, blob: bytes):
        """(message holding the step and timestamp, series names sorted, their values in that order),
        or None: not simple."""
        for layout in self._layouts:
            head = len(blob) - layout.size
            if head >= 0 and layout.tail.fullmatch(blob, head) is not None:
                got = self._read(blob, layout, head)   # None: these are only its last entries, or
                if got is not None:                    # it has more than entries
                    return got
        layout = self._learn(blob)
        return None if layout is None else self._read(blob, layout, len(blob) - layout.size)

    def read_many(self, blobs: list[bytes], eligible, points: bool = True, arrays: bool = False) -> list[tuple]:
        """A segment's operations read at once, with no Python call per operation: runs of consecutive
        operations, each (first, stop, layout, steps, timestamps in ms, values) for operations of one
        known layout (steps and ms one per operation as lists, 0 ms where the message has no time;
        values all their points as a list, each operation's in sorted name order), or (first, stop,
        None, ...) for those left to `read` one at a time. Only an operation whose step and timestamp
        are in the plain form (`_heads`) is read here, so what is read equals what `read` gives.
        Without `points`, steps and values are None (a fold needs only the times). With `arrays`, steps,
        timestamps and values are NumPy arrays (int64 steps, or float64 where one has a fraction), as a
        column batch takes them (metric_stream.ArrayBatches)."""
        import numpy as np
        k = len(blobs)
        if not k:
            return []
        lens = np.fromiter(map(len, blobs), np.int64, k)
        ends = np.cumsum(lens)
        data = np.frombuffer(b"".join(blobs) + bytes(_PAD), np.uint8)
        whole, micro, ms, heads, plain = _heads(data, ends - lens, ends)
        plain &= np.asarray(eligible, bool)
        which = np.full(k, -1, np.int64)
        layouts, tried = list(self._layouts), 0
        for _ in range(self.LEARN):
            for n, layout in enumerate(layouts[tried:], tried):
                todo = np.flatnonzero(plain & (which < 0) & (ends - heads == layout.size))
                if len(todo):
                    positions, fixed, _ = layout.columns()
                    at = heads[todo][:, None]
                    match = (data[at + positions] == fixed).all(axis=1)
                    which[todo[match]] = n
            tried = len(layouts)
            rest = np.flatnonzero(plain & (which < 0))
            if not len(rest):
                break
            # a layout not met yet: learn it from the first such operation (or leave that one to read)
            if self._learn(blobs[rest[0]]) is None:
                plain[rest[0]] = False
            else:
                layouts.append(self._layouts[0])
        out = []
        cuts = np.flatnonzero(np.diff(which)) + 1
        for first, stop in zip([0, *cuts.tolist()], [*cuts.tolist(), k]):
            n = int(which[first])
            if n < 0:
                out.append((first, stop, None, None, None, None))
                continue
            layout, steps, values = layouts[n], None, None
            times = ms[first:stop]
            if points:
                at = heads[first:stop][:, None]
                values = data[at + layout.columns()[2]].view("<f8").ravel()
                steps, fraction = whole[first:stop], micro[first:stop]
                if arrays:
                    if fraction.any():                # as scale._step: the whole step as a double, plus the fraction
                        steps = steps + fraction / 1_000_000
                else:
                    values, steps = values.tolist(), steps.tolist()
                    for i in np.flatnonzero(fraction).tolist():     # as scale._step: a float step
                        steps[i] += int(fraction[i]) / 1_000_000
            out.append((first, stop, layout, steps, times if arrays else times.tolist(), values))
        return out

    def _read(self, blob: bytes, layout: _Layout, head: int):
        # what comes before the entries must be complete fields of its own (so the entries are
        # where a parser reaches them), with no other entry and no other field of the message
        try:
            s = self._parse(blob[:head])
        except Exception:
            return None
        if s.WhichOneof("other") is not None or len(s.append):    # an assign, a set, a preview...
            return None
        return s, layout.names, layout.order(layout.unpack(blob, head))

    def _learn(self, blob: bytes) -> _Layout | None:
        try:
            entries = list(self._parse(blob).append)
        except Exception:
            return None
        # `\n`, the key's length (one byte: under 128), the key, then exactly _ENTRY_TAIL and 8 bytes
        if not entries or {(e[0], len(e) - e[1], e[-11:-8]) for e in entries} != {(0x0A, 13, _ENTRY_TAIL)}:
            return None
        try:
            names = [e[2:-11].decode("utf-8") for e in entries]
        except UnicodeDecodeError:
            return None
        if len(set(names)) != len(names):        # a repeated key: the map keeps the last, leave it to protobuf
            return None
        layout = _Layout(entries, names)
        if not layout.ends(blob) or any(known.tail.pattern == layout.tail.pattern for known in self._layouts):
            return None      # the entries are not all at the end, or a known layout read it: not simple
        self._layouts = [layout, *self._layouts[:self.KEEP - 1]]
        return layout


_PAD = 160    # zero bytes after a segment's operations: a head read past the last one stays in bounds


def _heads(data, starts, ends):
    """Each operation's step and timestamp, read from its first bytes when they are in the plain form
    protobuf writes: Step (field 1) then Timestamp (field 2), each with its varint fields in order or
    left out, lengths under 128, values small enough to be exact (a step whole under 2^49, micro under
    2^28, seconds under 2^42, nanos under 2^31). Returns whole, micro, time in ms, where the entries
    begin, and which operations are plain (the rest are garbage: read them one at a time)."""
    import numpy as np
    top = len(data) - 1
    at = np.minimum(starts, top)
    ok = (data[at] == 0x0A) & (data[at + 1] < 0x80) & (ends - starts >= 4)
    end1 = np.minimum(at + 2 + data[at + 1], top)
    whole, at, good = _varint_field(data, at + 2, end1, 0x08, 7)
    ok &= good
    micro, at, good = _varint_field(data, at, end1, 0x10, 4)
    ok &= good & (at == end1) & (data[end1] == 0x12) & (data[end1 + 1] < 0x80)
    end2 = np.minimum(end1 + 2 + data[end1 + 1], top)
    seconds, at, good = _varint_field(data, end1 + 2, end2, 0x08, 6)
    ok &= good
    nanos, at, good = _varint_field(data, at, end2, 0x10, 5)
    ok &= good & (at == end2) & (end2 <= ends) & (nanos < 1 << 31)
    return whole, micro, seconds * 1000 + nanos // 1_000_000, end2, ok


def _varint_field(data, at, end, tag: int, most: int):
    """The varint field `tag` at `at` if it is there (before `end`): its value (0 if not), where
    the next field begins, and whether its varint ends within `most` bytes."""
    import numpy as np
    top = len(data) - 1
    here = (at < end) & (data[np.minimum(at, top)] == tag)
    value = np.zeros(len(at), np.int64)
    at = np.where(here, at + 1, at)
    going = here
    for shift in range(0, 7 * most, 7):
        byte = data[np.minimum(at, top)].astype(np.int64)
        value |= np.where(going, (byte & 0x7F) << shift, 0)
        at = np.where(going, at + 1, at)
        going = going & (byte >= 0x80)
        if not going.any():
            break
    return value, at, ~going


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)

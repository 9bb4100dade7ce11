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

import struct
from operator import itemgetter

_PACKAGE = "cometx_mirror.scale_shadow"
_ENTRY_TAIL = b"\x12\t\t"    # the entry's value field (2, 9 bytes long) holding Value.float64 (field 1, fixed64)
_SHADOW = None


def _shadow_class():
    """UpdateRunSnapshot's fields under the same numbers; the map fields as raw entries. Built once."""
    global _SHADOW
    if _SHADOW is None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
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
        pool = descriptor_pool.DescriptorPool()
        pool.Add(fdp)
        _SHADOW = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Snapshot"))
    return _SHADOW


class SimpleOps:
    """Reads simple operations one at a time; remembers the last entry layout (the keys in the order
    the client serialized them), which a run's operations mostly share, so that layout is checked
    and sorted once rather than per operation."""

    def __init__(self):
        self._parse = _shadow_class().FromString
        self._prefixes: list[bytes] | None = None
        self._names: list[str] = []
        self._order = None

    def read(self, blob: bytes):
        """(shadow message, series names sorted, their entries in that order), or None: not simple."""
        try:
            s = self._parse(blob)
        except Exception:
            return None
        if s.WhichOneof("other") is not None:    # an assign, a set, a preview, a request id...
            return None
        entries = list(s.append)
        if not entries:
            return None
        prefixes = [e[:-8] for e in entries]     # all but the double: equal prefixes, equal (checked) shape
        if prefixes != self._prefixes and not self._learn(entries, prefixes):
            return None
        return s, self._names, self._order(entries)

    def _learn(self, entries: list[bytes], prefixes: list[bytes]) -> bool:
        # `\n`, the key's length (one byte: under 128), the key, then exactly _ENTRY_TAIL and 8 bytes
        if {(e[0], len(e) - e[1], e[-11:-8]) for e in entries} != {(0x0A, 13, _ENTRY_TAIL)}:
            return False
        try:
            names = [e[2:-11].decode("utf-8") for e in entries]
        except UnicodeDecodeError:
            return False
        if len(set(names)) != len(names):        # a repeated key: the map keeps the last, leave it to protobuf
            return False
        order = sorted(range(len(names)), key=names.__getitem__)
        self._prefixes, self._names = prefixes, [names[i] for i in order]
        self._order = itemgetter(*order) if len(order) > 1 else (lambda es, i=order[0]: (es[i],))
        return True


def values(entries: list[bytes]) -> tuple[float, ...]:
    """The float64 of each simple entry, decoded at once."""
    return struct.unpack(f"<{len(entries)}d", b"".join([e[-8:] for e in entries]))

"""A chunk of an exporter part (a record batch of its rows) as a stored object, and back.

Two forms, told apart by their first bytes:
- columnar JSON (`{"columns": {...}, "rows": n}`, canonical JSON of every column), what
  earlier versions stored and still read;
- columns (MAGIC, then a canonical-JSON header, then each column's body), stored now: the
  numbers as their own little-endian bytes (a double's bits, never a text), the strings
  as a list of the distinct ones plus an int32 code a row, the nested values as JSON.
  A whole column of float points is then read back as NumPy arrays, with no Python object
  a point on the way into the index.
Both are functions of the rows alone, so an unchanged part yields the same objects.  Either
form reads back as the same columns of Python values (`columns`): a decimal as arrow's text
of it, a timestamp as its integer, a double that is not finite as canonical JSON's string.
"""
from __future__ import annotations

import struct
from itertools import repeat

import numpy as np

from ...store import canonical

MAGIC = b"NXCOLS1\n"
_HEADER = struct.Struct("<I")
_STEP_SCALE = 6          # the exporter's step: decimal(18, 6)


# -- writing -------------------------------------------------------------------------
def encode(batch) -> bytes:
    """A record batch as the columns form."""
    header, bodies, at = {}, [], 0
    for name in sorted(batch.schema.names):
        spec, body = _encode_column(batch.column(name))
        if body:
            spec["at"], spec["size"] = at, len(body)
            bodies.append(body)
            at += len(body)
        header[name] = spec
    head = canonical.dumps({"columns": header, "rows": batch.num_rows})
    return MAGIC + _HEADER.pack(len(head)) + head + b"".join(bodies)


def _encode_column(col) -> tuple[dict, bytes]:
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(col)
    if col.null_count == n:
        return {"kind": "null"}, b""
    nulls = col.is_null().to_numpy(zero_copy_only=False).astype(np.uint8).tobytes() if col.null_count else b""
    typ = col.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        encoded = pc.dictionary_encode(col)          # the distinct strings in the order first seen
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype("<i4")
        return {"kind": "strings", "values": encoded.dictionary.to_pylist()}, codes.tobytes()
    if pa.types.is_decimal(typ) and typ.scale == _STEP_SCALE and typ.precision <= 18:
        # the unscaled integer (below 10**18: an int64), the low half of each 16-byte value
        low = np.frombuffer(col.buffers()[1], "<i8")[2 * col.offset:2 * (col.offset + n):2]
        return {"kind": "decimal", "scale": typ.scale, "nulls": len(nulls)}, _masked(low, nulls)
    if pa.types.is_timestamp(typ) or (pa.types.is_integer(typ) and typ.bit_width <= 32) or typ == pa.int64():
        values = pc.cast(col, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype("<i8")
        return {"kind": "int64", "nulls": len(nulls)}, _masked(values, nulls)
    if pa.types.is_float64(typ):
        values = col.fill_null(0.0).to_numpy(zero_copy_only=False).astype("<f8")
        return {"kind": "float64", "nulls": len(nulls)}, _masked(values, nulls)
    if pa.types.is_boolean(typ):
        values = col.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)
        return {"kind": "bool", "nulls": len(nulls)}, _masked(values, nulls)
    # anything else (lists, structs, other decimals): canonical JSON of its values, as the JSON form
    values = pc.cast(col, pa.string()).to_pylist() if pa.types.is_decimal(typ) else canonical._clean(col.to_pylist())
    return {"kind": "json"}, canonical.dumps_clean(values)


def encode_json(batch) -> bytes:
    """A record batch as the columnar JSON form (what earlier versions stored)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = {}
    for name in batch.schema.names:
        col = batch.column(name)
        if col.null_count == len(col):               # most columns of a part of float points
            cols[name] = None
            continue
        if pa.types.is_decimal(col.type):
            col = pc.cast(col, pa.string())          # exact decimal text, e.g. "1.500000"
        elif pa.types.is_timestamp(col.type):
            col = pc.cast(col, pa.int64())           # epoch ms (the schema's unit)
        values = col.to_pylist()
        if pa.types.is_floating(col.type):
            finite = pc.is_finite(col)
            if pc.all(pc.or_kleene(finite, pc.is_null(col))).as_py() is False:
                values = canonical._clean(values)    # NaN/inf as canonical JSON keeps them
        elif pa.types.is_nested(col.type) and col.null_count < len(col):
            values = canonical._clean(values)
        cols[name] = values
    # Same bytes as canonical.dumps of {"columns": cols, "rows": n}, without re-walking millions of plain
    # values, a column of nulls written as its text at once
    nulls = b"[" + b",".join(repeat(b"null", batch.num_rows)) + b"]"
    text = b",".join(canonical.dumps_clean(name) + b":" + (nulls if values is None else canonical.dumps_column(values))
                     for name, values in sorted(cols.items()))
    return b'{"columns":{' + text + b'},"rows":' + str(batch.num_rows).encode() + b"}"


def _masked(values: np.ndarray, nulls: bytes) -> bytes:
    """The values (a null's slot zeroed by the caller), then the null mask when there is one."""
    return values.tobytes() + nulls


# -- reading -------------------------------------------------------------------------
class Chunk:
    """A stored chunk, either form: `columns(names)` as Python lists; `float_arrays()` for a
    chunk of float points in the columns form."""

    def __init__(self, data: bytes):
        if data.startswith(MAGIC):
            (size,) = _HEADER.unpack_from(data, len(MAGIC))
            start = len(MAGIC) + _HEADER.size
            head = canonical.loads(data[start:start + size])
            self.rows, self._specs = head["rows"], head["columns"]
            self._body = memoryview(data)[start + size:]
            self._json = None
        else:
            self._json = canonical.loads(data)
            self.rows = self._json["rows"]

    def columns(self, names) -> list[list]:
        """Each named column's values (a list of None for a column the chunk lacks)."""
        if self._json is not None:
            cols, nones = self._json["columns"], [None] * self.rows
            return [cols.get(n, nones) for n in names]
        return [self._values(n) for n in names]

    def _bytes(self, spec: dict) -> memoryview:
        return self._body[spec["at"]:spec["at"] + spec["size"]]

    def _array(self, spec: dict, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
        body, nulls = self._bytes(spec), spec.get("nulls", 0)
        values = np.frombuffer(body[:len(body) - nulls], dtype)
        return values, (np.frombuffer(body[len(body) - nulls:], np.uint8).astype(bool) if nulls else None)

    def _values(self, name: str) -> list:
        spec = self._specs.get(name)
        kind = spec and spec["kind"]
        if kind in (None, "null"):
            return [None] * self.rows
        if kind == "json":
            return canonical.loads(bytes(self._bytes(spec)))
        if kind == "strings":
            strings = spec["values"] + [None]            # code -1: a null
            return list(map(strings.__getitem__, np.frombuffer(self._bytes(spec), "<i4").tolist()))
        values, nulls = self._array(spec, {"decimal": "<i8", "int64": "<i8", "float64": "<f8", "bool": "u1"}[kind])
        if kind == "decimal":
            out = list(map(_decimal_text, values.tolist(), repeat(spec["scale"])))
        elif kind == "bool":
            out = values.astype(bool).tolist()
        elif kind == "float64" and not np.isfinite(values).all():
            out = canonical._clean(values.tolist())      # NaN, infinities: as the JSON form holds them
        else:
            out = values.tolist()
        if nulls is not None:
            for i in np.flatnonzero(nulls).tolist():
                out[i] = None
        return out

    def float_arrays(self):
        """(paths, codes, steps, times, values) of a columns-form chunk of float points only, whole
        steps within ±2**53, every time and value present; None for any other chunk (read it as
        columns).  Steps are int64 as the list way makes them, times int64 ms, values float64."""
        if self._json is not None:
            return None
        specs = self._specs
        kinds, paths = specs.get("attribute_type"), specs.get("attribute_path")
        if not kinds or kinds["kind"] != "strings" or kinds["values"] != ["float_series"] or \
                not paths or paths["kind"] != "strings":
            return None
        step, stamp, value = specs.get("step"), specs.get("timestamp"), specs.get("float_value")
        if not step or step["kind"] != "decimal" or step.get("nulls") or not stamp or \
                stamp["kind"] != "int64" or stamp.get("nulls") or not value or \
                value["kind"] != "float64" or value.get("nulls"):
            return None
        if (np.frombuffer(self._bytes(kinds), "<i4") != 0).any():
            return None                                  # a null kind
        codes = np.frombuffer(self._bytes(paths), "<i4")
        if (codes < 0).any():
            return None
        unscaled, _ = self._array(step, "<i8")
        scale = 10 ** step["scale"]
        steps, fraction = np.divmod(unscaled, scale)
        if fraction.any() or (np.abs(steps) > 1 << 53).any():
            return None                                  # fractional or huge steps: the list way converts them
        times, _ = self._array(stamp, "<i8")
        values, _ = self._array(value, "<f8")
        return paths["values"], codes, steps, times, values


def _decimal_text(unscaled: int, scale: int) -> str:
    """arrow's text of a decimal: the sign, the whole part, a point and `scale` digits."""
    whole, part = divmod(abs(unscaled), 10 ** scale)
    return f"{'-' if unscaled < 0 else ''}{whole}.{part:0{scale}d}"

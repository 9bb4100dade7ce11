"""Exporter chunks in the columns form (sources/neptune/exporter_chunks.py): they read back as the
columns the JSON form of earlier versions gives, a chunk of float points as arrays gives the points
the list way gives, and a mirror of either form indexes to the same rows."""
from __future__ import annotations

import math

import pyarrow as pa
import pytest
from neptune_fixtures import SCHEMA, q, row, run1_rows, sanitize, ts, write_part

from cometx_mirror.sources.neptune import exporter, exporter_chunks
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch

ODD = [float("nan"), float("inf"), -float("inf"), -0.0, 5e-324, 1.7976931348623157e308, 1e-5, 0.1]
TABLES = ("experiments", "params", "others", "tags", "metrics", "texts", "assets", "artifact_files")


def _odd_rows():
    part0, part1 = run1_rows()
    floats = [row("RUN-1", f"m/{i % 3}", "float_series", step=s, ts=ts(i) if i % 5 else None, float_value=v)
              for i, (s, v) in enumerate(zip([0, 1.5, -2, -0.25, 10 ** 11, 3, 4, 5], ODD))]
    return part0 + part1 + floats + [row("RUN-1", "m/none", "float_series", step=None, ts=ts(1), float_value=None)]


def _batch(rows):
    return pa.Table.from_pylist(rows, schema=SCHEMA).to_batches()[0]


def _same(a, b):
    return all(x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)) for x, y in zip(a, b)) \
        and len(a) == len(b)


def test_both_forms_read_back_as_the_same_columns():
    batch = _batch(_odd_rows())
    as_json = exporter_chunks.Chunk(exporter_chunks.encode_json(batch)).columns(exporter.FIELDS)
    as_columns = exporter_chunks.Chunk(exporter_chunks.encode(batch)).columns(exporter.FIELDS)
    for name, a, b in zip(exporter.FIELDS, as_json, as_columns):
        assert _same(a, b), name
    assert exporter_chunks.encode(batch) == exporter_chunks.encode(_batch(_odd_rows()))   # a function of the rows


def test_a_float_chunk_goes_as_arrays_and_anything_odd_as_columns():
    whole = _batch([row("R", f"m/{i % 2}", "float_series", step=i, ts=ts(i), float_value=v)
                    for i, v in enumerate(ODD)])
    paths, codes, steps, times, values = exporter_chunks.Chunk(exporter_chunks.encode(whole)).float_arrays()
    assert [paths[c] for c in codes.tolist()] == [f"m/{i % 2}" for i in range(len(ODD))]
    assert steps.tolist() == list(range(len(ODD)))
    assert values.tobytes() == pa.array(ODD, pa.float64()).to_numpy().tobytes()     # every bit
    assert times.tolist() == exporter_chunks.Chunk(exporter_chunks.encode_json(whole)).columns(["timestamp"])[0]
    for odd in (dict(step=1.5), dict(step=None), dict(ts=None), dict(float_value=None)):
        fields = dict(step=1, ts=ts(1), float_value=0.5) | odd
        rows = [row("R", "m", "float_series", step=fields["step"], ts=fields["ts"], float_value=fields["float_value"])]
        assert exporter_chunks.Chunk(exporter_chunks.encode(_batch(rows))).float_arrays() is None, odd
    mixed = _batch([row("R", "m", "float_series", step=1, ts=ts(1), float_value=0.5),
                    row("R", "s", "string_series", step=1, ts=ts(1), string_value="a")])
    assert exporter_chunks.Chunk(exporter_chunks.encode(mixed)).float_arrays() is None
    assert exporter_chunks.Chunk(exporter_chunks.encode_json(whole)).float_arrays() is None


def _rows(mirror) -> dict:
    """Every table's rows, but the manifest's id (it names the chunks, which differ by form)."""
    return {t: sorted(map(str, q(mirror, f"SELECT * {'EXCLUDE (manifest_id)' if t == 'experiments' else ''} FROM {t}")))
            for t in TABLES}


@pytest.mark.parametrize("chunk_rows", [3, 50_000])
def test_a_mirror_of_either_form_indexes_to_the_same_rows(exporter_folder, tmp_path, monkeypatch, chunk_rows):
    pdir = exporter_folder / "data" / sanitize("ws/proj")
    write_part(pdir, "RUN-5", 0, [row("RUN-5", "sys/id", "string", string_value="RUN-5")]
               + [row("RUN-5", f"m/{i % 3}", "float_series", step=i if i % 7 else i + 0.5, ts=ts(i), float_value=v)
                  for i, v in enumerate(ODD * 4)]
               + [row("RUN-5", "m/text", "string_series", step=0, ts=ts(20), string_value="a"),
                  row("RUN-5", "m/0", "float_series", step=40, ts=None, float_value=1.5)])
    monkeypatch.setattr(exporter, "CHUNK_ROWS", chunk_rows)
    rows = {}
    for form, encode in (("json", exporter_chunks.encode_json), ("columns", exporter_chunks.encode)):
        monkeypatch.setattr(exporter, "ENCODE", encode)
        mirror = Mirror.init(tmp_path / form)
        assert run_fetch(mirror, "neptune", str(exporter_folder), FetchOptions()).failed == 0
        rows[form] = _rows(mirror)
        indexer.rebuild(mirror)
        assert _rows(mirror) == rows[form]                      # the stored chunks alone give the same rows
    assert rows["json"] == rows["columns"]
    assert len(rows["columns"]["metrics"]) > 30

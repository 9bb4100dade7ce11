"""An exporter run that gained a part since the last fetch: the fetch folds only the new part's chunks (from the
fold it saved, sources/neptune/exporter_resume.py) and the index appends only their points
(exporter.grown_since); the manifest is the one a fresh fetch writes, and the index a fresh fetch's and a
reindex's. A run whose parts did not only grow, or whose fold cannot be saved, is folded whole. Parts
written in neptune-exporter's parquet layout (neptune_fixtures)."""
from __future__ import annotations

import pytest
from neptune_fixtures import (fetch_cleanly, fresh_fetch, index_rows, only_manifest, q, row, sanitize, ts,
                              write_part)

from cometx_mirror.sources.neptune import exporter
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch

RUN = "RUN-G"


def _part0() -> list[dict]:
    return [row(RUN, "sys/id", "string", string_value=RUN),
            row(RUN, "sys/name", "string", string_value="grows"),
            row(RUN, "sys/creation_time", "datetime", datetime_value=ts(0)),
            row(RUN, "parameters/lr", "float", float_value=0.1),
            row(RUN, "files/model", "file", file_value={"path": f"{sanitize(RUN)}/files/model"})] + \
        [row(RUN, "train/loss", "float_series", step=i, ts=ts(10 + i), float_value=1.0 / (i + 1))
         for i in range(300)] + \
        [row(RUN, "monitoring/abc/stdout", "string_series", step=i, ts=ts(10 + i), string_value=f"out {i}\n")
         for i in range(20)] + \
        [row(RUN, "logs/info", "string_series", step=i, ts=ts(10 + i), string_value=f"info {i}") for i in range(5)]


def _part1() -> list[dict]:
    return [row(RUN, "train/loss", "float_series", step=i, ts=ts(10 + i), float_value=1.0 / (i + 1))
            for i in range(300, 450)] + \
        [row(RUN, "train/acc", "float_series", step=i, ts=ts(10 + i), float_value=-0.0 if i % 2 else 0.5)
         for i in range(300, 350)] + \
        [row(RUN, "monitoring/abc/stdout", "string_series", step=i, ts=ts(10 + i), string_value=f"out {i}\n")
         for i in range(20, 30)] + \
        [row(RUN, "logs/info", "string_series", step=9, ts=ts(99), string_value="info later"),
         row(RUN, "parameters/lr", "float", float_value=0.2)]


@pytest.fixture
def export(tmp_path):
    root = tmp_path / "exports"
    pdir = root / "data" / sanitize("ws/proj")
    write_part(pdir, RUN, 0, _part0())
    model = root / "files" / sanitize("ws/proj") / sanitize(RUN) / "files" / "model"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"model-bytes")
    return root, pdir, model


@pytest.fixture
def decoded(monkeypatch):
    """The stored chunks read back (by the fold or the index's float stream), by id."""
    seen: list[str] = []
    chunk = exporter._chunk

    def counted(mirror, chunk_id):
        seen.append(chunk_id)
        return chunk(mirror, chunk_id)
    monkeypatch.setattr(exporter, "_chunk", counted)
    return seen


def _chunks(manifest: dict) -> set[str]:
    return {c for part in manifest["parts"] for c in part["chunks"]}


def test_a_run_that_gained_a_part_folds_and_indexes_only_that_part(tmp_path, export, decoded):
    root, pdir, _ = export
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, root)
    before = only_manifest(mirror)
    assert "resume" in before

    decoded.clear()
    assert fetch_cleanly(mirror, root).unchanged == 1 and decoded == []      # unchanged: nothing read back

    write_part(pdir, RUN, 1, _part1())
    decoded.clear()
    assert fetch_cleanly(mirror, root).changed == 1
    assert decoded and not set(decoded) & _chunks(before)            # the old part's chunks: never read back
    after = only_manifest(mirror)
    fresh = fresh_fetch(tmp_path, root, "fresh")
    assert after == only_manifest(fresh)                                 # byte for byte a fresh fetch's
    assert index_rows(mirror) == index_rows(fresh)
    assert q(mirror, "SELECT count(*) FROM metrics WHERE name = 'train/loss'") == [(450,)]
    assert q(mirror, "SELECT count(*) FROM metrics WHERE name = 'train/acc'") == [(50,)]
    assert q(mirror, "SELECT value FROM params WHERE name = 'parameters/lr'") == [("0.2",)]
    [(stdout,)] = q(mirror, "SELECT object_id FROM texts WHERE kind = 'output'")
    assert mirror.objects.get_bytes(stdout) == b"".join(b"out %d\n" % i for i in range(30))
    [(info,)] = q(mirror, "SELECT object_id FROM assets WHERE file_name = 'logs/info.jsonl'")
    assert mirror.objects.get_bytes(info).count(b"\n") == 6         # the series went on from its saved text

    indexed = index_rows(mirror)
    indexer.rebuild(mirror)                                          # a reindex folds every stored chunk again
    assert index_rows(mirror) == indexed


@pytest.mark.parametrize("change", ["part rewritten", "file changed", "histogram", "saved text lost"])
def test_a_run_that_did_not_only_gain_parts_is_folded_whole(tmp_path, export, decoded, change):
    root, pdir, model = export
    first = _part0()
    if change == "histogram":     # a histogram's JSON array is closed once stored: no fold saved
        first.append(row(RUN, "weights/h", "histogram_series", step=0, ts=ts(5),
                         histogram_value={"type": "COUNTING", "edges": [0.0, 1.0], "values": [3.0]}))
        write_part(pdir, RUN, 0, first)
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, root)
    assert ("resume" in only_manifest(mirror)) == (change != "histogram")
    if change == "part rewritten":
        write_part(pdir, RUN, 0, first[:-1])
    elif change == "file changed":
        model.write_bytes(b"model-bytes, retrained")
    elif change == "saved text lost":
        [(stdout,)] = q(mirror, "SELECT object_id FROM texts WHERE kind = 'output'")
        mirror.objects.remove(stdout)
    write_part(pdir, RUN, 1, _part1())
    decoded.clear()
    fetch_cleanly(mirror, root)
    grown = only_manifest(mirror)
    sorted_parts = sorted(grown["parts"], key=lambda p: p["part"])
    assert set(sorted_parts[0]["chunks"]) <= set(decoded)            # the first part read back: folded whole
    fresh = fresh_fetch(tmp_path, root, "fresh")
    assert grown == only_manifest(fresh)
    assert index_rows(mirror) == index_rows(fresh)


def test_a_saved_fold_that_cannot_be_restored_folds_whole(tmp_path, export):
    """A previous manifest naming a saved fold of this version that lacks what it should hold (damaged,
    or another build's): the run is folded whole, to the raw manifest a fresh fetch stores."""
    root, pdir, _ = export
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, root)
    old = only_manifest(mirror)
    write_part(pdir, RUN, 1, _part1())
    [run] = exporter.runs(root, [], [])
    good = run.store(mirror, old)
    for state in (b'{"v":1,"parts":1}', b'{"v":1,"parts":1,"run":{"series":{}},"types":{}}'):
        [again] = exporter.runs(root, [], [])
        assert again.store(mirror, {**old, "resume": mirror.objects.put_bytes(state)}) == good


def test_a_part_gone_does_not_replace_the_run_stored(tmp_path, export):
    """A part the last fetch stored no longer there: the stored run is kept and the fetch says so;
    `--allow-shrink` takes the run with fewer rows."""
    root, pdir, _ = export
    part = write_part(pdir, RUN, 1, _part1())
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, root)
    stored, indexed = only_manifest(mirror), index_rows(mirror)
    part.unlink()
    kept = run_fetch(mirror, "neptune", str(root), FetchOptions())
    assert kept.failed == 1 and "kept the stored version" in kept.errors[0] and "rows" in kept.errors[0]
    assert (only_manifest(mirror), index_rows(mirror)) == (stored, indexed)
    assert not run_fetch(mirror, "neptune", str(root), FetchOptions(allow_shrink=True)).errors
    assert index_rows(mirror) == index_rows(fresh_fetch(tmp_path, root, "fresh"))

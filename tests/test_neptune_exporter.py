"""fetch --from neptune on neptune-exporter output: every attribute type, parts, incremental, bad input."""
from __future__ import annotations

import json

import pytest
from neptune_fixtures import q

from cometx_mirror.sources import SourceError
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch
from cometx_mirror.sources.options import FetchOptions

from neptune_fixtures import row, sanitize, ts, write_part

EXP1 = "neptune:ws/proj/RUN-1"
T0_MS = 1740830400000   # 2025-03-01T12:00:00Z


def fetch(mirror, path, notes=None):
    progress = (lambda event, **info: notes.append(info.get("message"))) if notes is not None else None
    return run_fetch(mirror, "neptune", str(path), FetchOptions(progress=progress))


@pytest.fixture
def mirror(tmp_path):
    return Mirror.init(tmp_path / "mirror")


def test_exporter_all_attribute_types(mirror, exporter_folder):
    notes = []
    result = fetch(mirror, exporter_folder, notes)
    assert (result.new, result.failed) == (2, 0)
    assert any("RUN-3" in n and "part_0" in n for n in notes if n)      # unfinished run named, skipped
    assert result.errors == [f"RUN-1: missing file {sanitize('ws/proj')}/{sanitize('RUN-1')}/files/lost"]

    exps = q(mirror, "SELECT exp_id, experiment_key, workspace, project, name, epoch_ms(created_at), "
                     "epoch_ms(updated_at), state FROM experiments ORDER BY 1")
    assert exps == [(EXP1, "RUN-1", "ws", "proj", "first run", T0_MS, T0_MS + 100_000, "finished"),
                    ("neptune:ws/proj/RUN-2", "RUN-2", "ws", "proj", "second", T0_MS + 1_000_000, None,
                     "crashed")]
    assert q(mirror, "SELECT tag FROM tags WHERE exp_id = ? ORDER BY 1", EXP1) == [("a",), ("b",)]
    params = dict(q(mirror, "SELECT name, value FROM params WHERE exp_id = ?", EXP1))
    assert params == {"parameters/lr": "0.1", "parameters/epochs": "7", "parameters/use_amp": "true",
                      "parameters/optimizer": "sgd", "config/started": "2025-03-01T12:00:05.000Z",
                      "config/groups": '["g1","g2"]'}
    assert q(mirror, "SELECT name, value FROM others WHERE exp_id = ?", EXP1) == [("eval/final_acc", "0.93")]
    assert json.loads(dict(q(mirror, "SELECT name, value FROM system_details WHERE exp_id = ?", EXP1))
                      ["sys/state"]) == "Inactive"

    metrics = q(mirror, "SELECT step, epoch_ms(timestamp), value FROM metrics WHERE exp_id = ? "
                        "AND name = 'train/loss' ORDER BY step", EXP1)
    assert metrics == [(i, T0_MS + (10 + i) * 1000, 1.0 / (i + 1)) for i in range(5)]   # both parts

    texts = q(mirror, "SELECT kind, name, content FROM texts WHERE exp_id = ?", EXP1)
    assert texts == [("output", "monitoring/abc/stdout", "out 0\nout 1\n")]

    assets = {r[0]: r[1:] for r in q(mirror, "SELECT file_name, type, step, size, object_id FROM assets "
                                             "WHERE exp_id = ?", EXP1)}
    assert set(assets) == {"files/model", "images/pred/0.png", "images/pred/1.png", "source_code/files/main.py",
                           "source_code/files/pkg/util.py", "weights/hist.json", "logs/info.jsonl",
                           "files/lost"}
    assert assets["images/pred/1.png"][:3] == ("image", 1, len(b"\x89PNG-one"))
    assert mirror.objects.get_bytes(assets["files/model"][3]) == b"model-bytes"
    assert assets["source_code/files/pkg/util.py"][0] == "source_code"
    assert assets["files/lost"][3] is None                       # reported, not fatal
    hist = json.loads(mirror.objects.get_bytes(assets["weights/hist.json"][3]))
    assert hist == [{"step": 2, "timestamp": T0_MS + 40_000, "type": "COUNTING", "edges": [0.0, 1.0, 2.0],
                     "values": [5.0, 6.0]}]
    assert assets["weights/hist.json"][0] == "histogram_combined_3d"
    line = json.loads(mirror.objects.get_bytes(assets["logs/info.jsonl"][3]))
    assert line == {"step": 0.5, "timestamp": T0_MS + 30_000, "value": "half step"}

    files = q(mirror, "SELECT artifact, path, size, checksum, link FROM artifact_files ORDER BY path")
    assert files == [("proj/datasets/train", "labels.csv", 30, "neptune:def456", "s3://bucket/labels.csv"),
                     ("proj/datasets/train", "train.csv", 120, "neptune:abc123", "s3://bucket/train.csv")]
    assert q(mirror, "SELECT experiment_key FROM artifact_versions") == [("RUN-1",)]


def test_exporter_incremental(mirror, exporter_folder):
    fetch(mirror, exporter_folder)
    before = set(mirror.objects.ids())
    again = fetch(mirror, exporter_folder)
    assert (again.new, again.changed, again.unchanged, again.snapshots) == (0, 0, 2, [])
    assert set(mirror.objects.ids()) == before                     # nothing new stored

    # the run gains a part: only that part's rows (plus manifest, snapshot, derived) are new
    pdir = exporter_folder / "data" / sanitize("ws/proj")
    write_part(pdir, "RUN-1", 2, [row("RUN-1", "train/loss", "float_series", step=5, ts=ts(15), float_value=0.1)])
    third = fetch(mirror, exporter_folder)
    assert (third.changed, third.unchanged) == (1, 1)
    added = set(mirror.objects.ids()) - before
    assert len(added) <= 4      # part chunk, manifest, snapshot; the unchanged parts and files dedupe
    assert q(mirror, "SELECT count(*) FROM metrics WHERE exp_id = ?", EXP1) == [(6,)]

    # the unfinished run completes: picked up now
    write_part(pdir, "RUN-3", 0, [row("RUN-3", "sys/name", "string", string_value="third")])
    assert fetch(mirror, exporter_folder).new == 1
    assert q(mirror, "SELECT name FROM experiments WHERE experiment_key = 'RUN-3'") == [("third",)]


def test_exporter_reindex_gives_same_rows(mirror, exporter_folder):
    fetch(mirror, exporter_folder)
    tables = ("experiments", "params", "others", "tags", "metrics", "texts", "assets", "artifact_files")
    before = {t: sorted(map(str, q(mirror, f"SELECT * FROM {t}"))) for t in tables}
    indexer.rebuild(mirror)
    assert {t: sorted(map(str, q(mirror, f"SELECT * FROM {t}"))) for t in tables} == before


def test_truncated_part_is_named_and_the_rest_fetched(mirror, exporter_folder):
    pdir = exporter_folder / "data" / sanitize("ws/proj")
    part1 = pdir / f"{sanitize('RUN-1')}_part_1.parquet"
    part1.write_bytes(part1.read_bytes()[:200])
    result = fetch(mirror, exporter_folder)
    assert any(f"{part1.name}: unreadable parquet part" in e for e in result.errors)
    assert q(mirror, "SELECT experiment_key FROM experiments ORDER BY 1") == [("RUN-1",), ("RUN-2",)]
    assert q(mirror, "SELECT count(*) FROM metrics WHERE exp_id = ?", EXP1) == [(3,)]   # part 0's points


def test_empty_and_foreign_folders(mirror, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="is empty"):
        fetch(mirror, empty)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    with pytest.raises(SourceError, match="nothing Neptune-like"):
        fetch(mirror, tmp_path / "other")


def test_list_only(mirror, exporter_folder):
    result = run_fetch(mirror, "neptune", str(exporter_folder), FetchOptions(list_only=True))
    assert sorted(r["key"] for r in result.listing) == ["RUN-1", "RUN-2"]
    assert mirror.refs.get("neptune/exporter/ws/proj") is None


def test_truncated_only_part_names_file(mirror, exporter_folder):
    pdir = exporter_folder / "data" / sanitize("ws/proj")
    part0 = pdir / f"{sanitize('RUN-2')}_part_0.parquet"
    part0.write_bytes(part0.read_bytes()[:100])
    result = fetch(mirror, exporter_folder)
    assert any(e.startswith(f"{pdir.name}/{part0.name}: unreadable parquet part") for e in result.errors)
    assert q(mirror, "SELECT experiment_key FROM experiments") == [("RUN-1",)]


def test_part_encoding_is_canonical_json():
    import pyarrow as pa

    from cometx_mirror.sources.neptune.exporter_chunks import encode_json as _encode_batch
    from cometx_mirror.store import canonical
    from neptune_fixtures import SCHEMA, run1_rows
    part0, part1 = run1_rows()
    rows = part0 + part1 + [row("RUN-1", "m", "float_series", step=9, ts=ts(1), float_value=float("nan"))]
    batch = pa.Table.from_pylist(rows, schema=SCHEMA).to_batches()[0]
    encoded = _encode_batch(batch)
    assert encoded == canonical.dumps(canonical.loads(encoded))
    assert canonical.loads(encoded)["columns"]["float_value"][-1] == "nan"

"""neptune-scale offline reader: the simple-operation path (scale_floats) reads what protobuf reads.

The run is written by the real neptune-scale client offline, mixing the operations the fast path takes
(log_metrics of floats) with those it must leave to protobuf: previews, a config assigned in
the same operation as a metric, a key longer than 127 bytes, non-finite values at fractional steps.
"""
from __future__ import annotations

import json
import sqlite3
import struct
import subprocess
import sys

import pytest
from neptune_fixtures import _run_script, q

from cometx_mirror.sources.neptune import scale, scale_floats
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store import canonical
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch

LONG = "x/" + "k" * 140
SCRIPT = f"""
from neptune_scale import Run
run = Run(project="ws/speedproj", run_id="speed-1", mode="offline", experiment_name="fast")
for i in range(300):
    run.log_metrics({{"train/loss": 1 / (i + 1), "train/acc": i / 300, "eval/é": -i * 0.5}}, step=i)
    if i % 30 == 0:
        run.log_metrics({{"{LONG}": float(i)}}, step=i)
    if i % 50 == 0:
        run.log_metrics({{"ints/n": i}}, step=i)      # the client sends an int as a float64
    if i % 70 == 0:
        run.log_metrics({{"train/loss": 9.0}}, step=i + 0.5, preview=True)
    if i == 100:
        run.log(step=i + 0.25, metrics={{"train/loss": 0.3}}, configs={{"params/x": 1}})
    if i % 90 == 0:
        run.log_metrics({{"train/loss": float("nan"), "train/acc": float("inf")}}, step=i + 0.5)
run.close()
"""
TABLES = ("experiments", "params", "others", "tags", "metrics", "texts", "assets")


@pytest.fixture(scope="module")
def client_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("neptune_scale_speed")
    _run_script(d, SCRIPT)
    return d


@pytest.fixture(scope="module")
def repository_run(tmp_path_factory):
    """Ten series a step through neptune-scale's OperationsRepository (bench/neptune_writers.py): its
    map entries come out in hash order, not sorted."""
    from bench.neptune_writers import write_scale_run
    return write_scale_run(tmp_path_factory.mktemp("neptune_scale_repo"), 120, 10)


@pytest.fixture(params=["client", "repository"])
def scale_run(request):
    return request.getfixturevalue(f"{request.param}_run")


def _fetch(path, root):
    mirror = Mirror.init(root)
    result = run_fetch(mirror, "neptune", str(path), FetchOptions())
    assert (result.new, result.errors) == (1, [])
    return mirror


def _rows(mirror) -> dict:
    return {t: list(map(str, q(mirror, f"SELECT * FROM {t}"))) for t in TABLES}


def _operations(folder) -> list[bytes]:
    [db] = scale.locate(folder)
    with sqlite3.connect(db) as con:
        return [blob for typ, blob in con.execute(
            "SELECT operation_type, operation FROM run_operations ORDER BY sequence_id") if typ != scale.CREATE_RUN]


def test_a_simple_operation_reads_as_protobuf_reads_it_and_the_others_are_refused(client_run, repository_run):
    reader = scale_floats.SimpleOps()
    repository = _operations(repository_run)
    assert any(list(scale._decode(0, b).append) != sorted(scale._decode(0, b).append) for b in repository)
    assert all(reader.read(b) is not None for b in repository)
    simple, refused = 0, 0
    for blob in repository + _operations(client_run):
        msg, got = scale._decode(0, blob), reader.read(blob)
        if got is None:
            refused += 1
            continue
        simple += 1
        shadow, names, values = got
        assert names == sorted(msg.append)
        assert [msg.append[n].WhichOneof("value") for n in names] == ["float64"] * len(names)
        bits = [struct.pack("<d", v) for v in values]   # NaN too, bit for bit
        assert bits == [struct.pack("<d", msg.append[n].float64) for n in names]
        assert (scale._step(shadow.step), scale._ts_ms(shadow.timestamp)) == \
            (scale._step(msg.step), scale._ts_ms(msg.timestamp))
        assert not msg.assign and not msg.HasField("preview")
    # every log_metrics with keys under 128 bytes; not the long key, the previews, the config
    assert simple == 120 + 300 + 6 + 4 and refused == 10 + 5 + 1


def test_a_long_key_or_a_preview_or_a_config_is_left_to_protobuf(client_run):
    reader = scale_floats.SimpleOps()
    for blob in _operations(client_run):
        msg = scale._decode(0, blob)
        if LONG in msg.append or msg.HasField("preview") or msg.assign or \
                any(v.WhichOneof("value") != "float64" for v in msg.append.values()):
            assert reader.read(blob) is None


def test_rows_and_objects_are_the_same_without_the_simple_path(scale_run, tmp_path, monkeypatch):
    fast = _fetch(scale_run, tmp_path / "fast")
    rows = _rows(fast)
    assert len(rows["metrics"]) in (300 * 3 + 10 + 6 + 1 + 4 * 2, 120 * 10)   # previews left out
    monkeypatch.setattr(scale_floats.SimpleOps, "read", lambda self, blob: None)
    monkeypatch.setattr(scale_floats.SimpleOps, "read_many",
                        lambda self, blobs, eligible, points=True, arrays=False: [(0, len(blobs), None, None, None, None)])
    slow = _fetch(scale_run, tmp_path / "slow")
    assert _rows(slow) == rows                     # same rows in the same order
    manifests = [set(fast.snapshot(fast.refs.get(r)).manifests.values()) for r in fast.refs.names()]
    assert manifests == [set(slow.snapshot(slow.refs.get(r)).manifests.values()) for r in slow.refs.names()]
    monkeypatch.undo()
    indexer.rebuild(fast)                          # a reindex folds and streams from the stored segments
    assert _rows(fast) == rows


def test_non_finite_values_stay_what_they_were(client_run, tmp_path):
    mirror = _fetch(client_run, tmp_path / "m")
    assert q(mirror, "SELECT count(*) FROM metrics WHERE name = 'train/acc' AND isinf(value)") == [(4,)]
    assert q(mirror, "SELECT count(*) FROM metrics WHERE name = 'train/loss' AND isnan(value)") == [(4,)]


def test_segments_are_canonical_json(client_run, tmp_path):
    mirror = _fetch(client_run, tmp_path / "m")
    [ref] = list(mirror.refs.names())
    [manifest_id] = mirror.snapshot(mirror.refs.get(ref)).manifests.values()
    manifest = mirror.get_json(manifest_id)
    assert manifest["segments"]
    for seg in manifest["segments"]:
        assert mirror.objects.get_bytes(seg) == canonical.dumps(json.loads(mirror.objects.get_bytes(seg)))


def test_an_offline_fetch_imports_no_vendor_client_pyarrow_http_stack_or_unused_layers(client_run, tmp_path):
    """Nor DuckDB's Python layer (index/engine.py), importlib.metadata (neptune_api.proto's `__init__`)
    or protobuf's descriptor_pb2 (the shadow type comes serialized): each a share of a short run's fetch."""
    script = ("import sys\n"
              "from cometx_mirror.store.mirror import Mirror\n"
              "from cometx_mirror.sync.fetch import run_fetch\n"
              "from cometx_mirror.sources.options import FetchOptions\n"
              "r = run_fetch(Mirror.init(sys.argv[2]), 'neptune', sys.argv[1], FetchOptions())\n"
              "assert r.new == 1 and not r.errors, r.errors\n"
              "print(sorted(m for m in ('neptune_query', 'pyarrow', 'pandas', 'requests', 'urllib3', 'httpx',\n"
              "                         'neptune_api', 'duckdb', 'importlib.metadata',\n"
              "                         'google.protobuf.descriptor_pb2') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", script, str(client_run), str(tmp_path / "m")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[-2] == "[]"


def test_the_shadow_file_kept_serialized_is_the_one_its_builder_makes():
    assert scale_floats._SHADOW_FILE == scale_floats.shadow_file()


def test_a_segment_read_at_once_reads_what_each_operation_reads(client_run, repository_run):
    """read_many (no Python call per operation) gives each operation's step, time and values as read()
    does, takes every simple operation of the repository run, and leaves the others to read()."""
    for folder, everything in ((repository_run, True), (client_run, False)):
        blobs = _operations(folder)
        taken = 0
        for first, stop, layout, steps, ms, values in scale_floats.SimpleOps().read_many(blobs, [True] * len(blobs)):
            if layout is None:
                assert not everything
                continue
            n = len(layout.names)
            for i in range(first, stop):
                shadow, names, op_values = scale_floats.SimpleOps().read(blobs[i])
                assert names == layout.names
                assert [struct.pack("<d", v) for v in values[(i - first) * n:(i - first + 1) * n]] == \
                    [struct.pack("<d", v) for v in op_values]
                assert (steps[i - first], ms[i - first] or None) == (scale._step(shadow.step),
                                                                    scale._ts_ms(shadow.timestamp))
                taken += 1
        assert taken == (120 if everything else 300 + 6 + 4)    # the fractional steps' ops too


def test_an_operation_with_an_empty_timestamp_takes_the_row_time(repository_run, tmp_path, monkeypatch):
    """A plain head whose Timestamp is empty (0 ms) gets the row's timestamp, as _ts_ms(...) or row_ts."""
    import shutil
    folder = tmp_path / "run"
    shutil.copytree(repository_run, folder)
    [db] = scale.locate(folder)
    with sqlite3.connect(db) as con:
        for seq, blob in con.execute("SELECT sequence_id, operation FROM run_operations WHERE operation_type = 0 "
                                     "AND sequence_id % 7 = 0").fetchall():
            msg = scale._decode(0, blob)
            msg.timestamp.Clear()
            msg.timestamp.SetInParent()          # present and empty: b"\x12\x00"
            con.execute("UPDATE run_operations SET operation = ?, timestamp = ? WHERE sequence_id = ?",
                        (msg.SerializeToString(), 1_000_000 + seq, seq))
    fast = _fetch(folder, tmp_path / "fast")
    rows = _rows(fast)
    assert q(fast, "SELECT count(*) FROM metrics WHERE epoch_ms(timestamp) >= 1000000 "
                   "AND epoch_ms(timestamp) < 2000000") == [(10 * len(range(7, 122, 7)),)]
    monkeypatch.setattr(scale_floats.SimpleOps, "read", lambda self, blob: None)
    monkeypatch.setattr(scale_floats.SimpleOps, "read_many",
                        lambda self, blobs, eligible, points=True, arrays=False: [(0, len(blobs), None, None, None, None)])
    assert _rows(_fetch(folder, tmp_path / "slow")) == rows


def test_the_collector_is_paused_per_segment_and_restored(repository_run, tmp_path):
    """The store and the float stream pause the cyclic collector for each segment only: enabled after a
    fetch, and left disabled when it was disabled before."""
    import gc
    paused = []
    original = scale._blobs
    def watching(rows):
        paused.append(gc.isenabled())
        return original(rows)
    scale._blobs = watching
    try:
        _fetch(repository_run, tmp_path / "on")
        assert paused == [False] and gc.isenabled()
        gc.disable()
        try:
            _fetch(repository_run, tmp_path / "off")
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        scale._blobs = original

"""Total-fidelity metrics are read as a stream: a long series is indexed batch by batch,
never held whole, and the batches are exactly the points the files hold.

A run of 16,000 points per metric is logged through the real SDK's ingestion endpoint
into a server that keeps total-fidelity CSV zips (parts of 7,000 rows), fetched by the
real CLI; then the mirror's experiment is normalized with small batches."""
from __future__ import annotations

import pytest

from cometx_mirror import metric_stream
from cometx_mirror.server import start_server
from cometx_mirror.server.seed import long_run
from cometx_mirror.sources.comet import full_metrics, normalize
from cometx_mirror.store import objects
from cometx_mirror.store.mirror import Mirror
from push_fixtures import fetch

POINTS = 16_000


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    server = start_server(total_fidelity=True, full_metric_part_rows=7_000)
    try:
        logged = long_run(server, points=POINTS, project="tf-stream")
        path = tmp_path_factory.mktemp("tf") / "m"
        fetch(server, path, f"{server.workspace}/tf-stream")
        mirror = Mirror(path)
        (label,) = [k for k in mirror.current_manifests() if k.startswith("comet:experiment/")]
        yield mirror, mirror.get_json(mirror.current_manifests()[label]), logged
    finally:
        server.stop()


def test_total_fidelity_points_come_in_bounded_batches_equal_to_the_files(mirrored, monkeypatch):
    mirror, manifest, logged = mirrored
    monkeypatch.setattr(metric_stream, "BATCH_POINTS", 3_000)
    reads = []

    def counting(method):
        def read(object_id):
            reads.append(object_id)
            return method(object_id)
        return read
    for method in ("get_bytes", "open_seekable"):
        monkeypatch.setattr(mirror.objects, method, counting(getattr(mirror.objects, method)))
    exp = normalize.experiment(mirror, manifest)
    assert isinstance(exp.metrics, metric_stream.MetricStream)
    assert exp.extra[full_metrics.WHOLE_KEY] == sorted(logged["metrics"])
    checked = len(reads)                                 # the resources, and each part once to count rows
    sizes, by_name = [], {}
    for batch in metric_stream.batches(exp.metrics):
        sizes.append(len(batch.name))
        for name, text, value in zip(batch.name, batch.text, batch.value):
            by_name.setdefault(name, []).append(text if text is not None else repr(value))
    assert max(sizes) <= 3_000 and len(sizes) >= 2 * POINTS // 3_000
    streamed = reads[checked:]                           # each part read once more while streaming,
    assert len(streamed) == 2 * 3 == len(set(streamed))  # nothing of them kept in between
    assert set(streamed) <= set(reads[:checked])
    for name, texts in logged["values"].items():         # every point, in order, as logged
        assert len(by_name[name]) == POINTS
        assert [float(t) for t in by_name[name]] == [float(t) for t in texts]


def test_parts_too_large_to_hold_are_read_from_a_temp_file_with_the_same_points(mirrored, monkeypatch):
    """A part above the store's in-memory limit is streamed by `open`; zip needs to seek, so it is
    copied into a temp file, never read whole into memory: the points are the same."""
    mirror, manifest, logged = mirrored

    def points():
        exp = normalize.experiment(mirror, manifest)
        out = {}
        for batch in metric_stream.batches(exp.metrics):
            for name, text, value, step in zip(batch.name, batch.text, batch.value, batch.step):
                out.setdefault(name, []).append((text, value, step))
        return out
    in_memory = points()
    readers, open_seekable = [], mirror.objects.open_seekable

    def recorded(object_id):
        reader = open_seekable(object_id)
        readers.append(type(reader).__name__)
        return reader
    monkeypatch.setattr(objects, "VERIFY_IN_MEMORY", 1024)     # every part (~100 KB) is "large"
    monkeypatch.setattr(mirror.objects, "open_seekable", recorded)
    spooled = points()
    assert len(readers) == 2 * 3 * 2 and "BytesIO" not in readers   # counted, then streamed
    assert spooled == in_memory
    assert all(len(spooled[name]) == POINTS for name in logged["values"])

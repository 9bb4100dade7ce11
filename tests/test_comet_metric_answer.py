"""Comet's metrics/get-all answer is stored and read as a stream, never parsed whole, with the
same bytes in the store and the same points in the index as when it was parsed whole.

An experiment is logged through the real SDK's ingestion endpoint (several metrics, odd values:
integers, a string, repeated steps), fetched by the real CLI; the stored answer is compared with
canonical.dumps of the answer read whole over HTTP, and its points read as a stream with the
points read whole."""
from __future__ import annotations

import json

import pytest
import requests

from cometx_mirror import json_stream, metric_stream, model
from cometx_mirror.server import start_server
from cometx_mirror.server.seed import long_run
from cometx_mirror.sources.comet import metric_answer, metric_columns, normalize
from cometx_mirror.store import canonical
from cometx_mirror.store.mirror import Mirror
from push_fixtures import fetch

METRICS = ("loss", "acc", "layer.0/grad norm", "lr")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    server = start_server()
    try:
        run = long_run(server, points=3_000, metrics=METRICS, project="answer", per_ms=3)
        yield server, run, tmp_path_factory.mktemp("answer")
    finally:
        server.stop()


def _answer_whole(server, key: str) -> bytes:
    r = requests.get(server.url + "/api/rest/v2/experiment/metrics/get-all",
                     params={"experimentKey": key}, headers={"Authorization": server.api_key}, timeout=30)
    r.raise_for_status()
    return canonical.dumps(json.loads(r.content))


def _stored(path, key: str) -> tuple[Mirror, dict]:
    mirror = Mirror(path)
    (label,) = [k for k in mirror.current_manifests() if k.endswith(key)]
    return mirror, mirror.get_json(mirror.current_manifests()[label])


@pytest.mark.parametrize("whole_bytes", [metric_columns.WHOLE_BYTES, 1_000], ids=["parsed-whole", "streamed"])
def test_the_stored_answer_is_the_canonical_answer_even_after_a_cut_body(logged, whole_bytes, monkeypatch):
    server, run, tmp = logged
    if not (tmp / "a").exists():
        fetch(server, tmp / "a", f"{server.workspace}/answer")
    mirror, manifest = _stored(tmp / "a", run["key"])
    ref = manifest["resources"]["metrics"]
    whole = _answer_whole(server, run["key"])
    assert mirror.objects.get_bytes(ref["object"]) == whole and ref["size"] == len(whole) > 1_000_000
    # the body cut short once: read again from the start, stored once, the same bytes
    monkeypatch.setattr(metric_columns, "WHOLE_BYTES", whole_bytes)
    spooled, spool = [], metric_answer._spool
    monkeypatch.setattr(metric_answer, "_spool", lambda *args: spooled.append(len(args[1])) or spool(*args))
    server.set_faults("truncate path=experiment/metrics/get-all nth=1")
    server.reset_counters()
    try:
        fetch(server, tmp / f"b{whole_bytes}", f"{server.workspace}/answer")
    finally:
        server.set_faults(None)
    asked = {e: c for e, c in server.counters()["endpoints"].items() if e.endswith("metrics/get-all")}
    assert [(c["count"], c["faults"]) for c in asked.values()] == [(2, 1)], asked     # cut once, asked again
    again, manifest_b = _stored(tmp / f"b{whole_bytes}", run["key"])
    assert manifest_b["resources"]["metrics"] == ref
    assert again.objects.get_bytes(ref["object"]) == whole
    assert (sum(spooled) >= 4 * 3_000) == (whole_bytes == 1_000)      # streamed entry by entry, or parsed whole


def test_a_streamed_answer_of_another_shape_is_refused_in_one_line(tmp_path):
    """An entry without its metric name, past the first WHOLE_BYTES: not Comet's API, said as
    the whole-answer check says it; nothing is stored."""
    import types
    from cometx_mirror.sources.comet import shapes
    from cometx_mirror.store.objects import ObjectStore
    entries = [{"metricName": "loss", "metricValue": str(i / 7)} for i in range(80_000)]
    entries[-2] = {"metricValue": "1"}
    body = json.dumps({"metrics": entries}).encode()
    assert len(body) > metric_columns.WHOLE_BYTES
    objects = ObjectStore(tmp_path / "objects")
    reader = types.SimpleNamespace(creds=types.SimpleNamespace(shown_url="http://127.0.0.1:1"))
    with pytest.raises(shapes.NotCometApi) as e:
        metric_answer._Stored(reader, objects)(iter([body[i:i + 65536] for i in range(0, len(body), 65536)]))
    assert "'metrics'[79998] has no 'metricName'" in str(e.value) and "\n" not in str(e.value)
    assert list(objects.ids()) == []


def test_a_large_answer_streams_into_batches_equal_to_the_whole(logged, monkeypatch):
    server, run, tmp = logged
    if not (tmp / "a").exists():
        fetch(server, tmp / "a", f"{server.workspace}/answer")
    mirror, manifest = _stored(tmp / "a", run["key"])
    whole = normalize.experiment(mirror, manifest).metrics
    assert not isinstance(whole, metric_stream.MetricStream) and len(whole.name) == 4 * 3_000

    monkeypatch.setattr(metric_columns, "WHOLE_BYTES", 0)          # every answer "large"
    monkeypatch.setattr(metric_columns, "HELD", 700)
    monkeypatch.setattr(metric_columns, "BATCH_POINTS", 2_000)
    loads = []
    monkeypatch.setattr(canonical, "loads", lambda data: loads.append(len(data)) or json.loads(data))
    streamed = normalize.experiment(mirror, manifest).metrics
    assert isinstance(streamed, metric_stream.MetricStream)
    sizes = [len(b.name) for b in metric_stream.batches(streamed)]
    assert sum(sizes) == len(whole.name) and len(sizes) >= 5 and max(sizes) < 2_000 + 700
    answer_size = manifest["resources"]["metrics"]["size"]
    assert answer_size not in loads                               # never parsed whole
    for column in ("name", "value", "text", "step", "epoch", "timestamp", "context"):
        got = [x for b in metric_stream.batches(streamed) for x in getattr(b, column)]
        assert got == getattr(whole, column), column
    assert set(run["values"]) == set(whole.name)
    for name, texts in run["values"].items():     # as logged, exactly
        mine = [(t if t is not None else repr(v)) for n, v, t in zip(whole.name, whole.value, whole.text)
                if n == name]
        assert [float(t) for t in mine] == [float(t) for t in texts]


@pytest.mark.parametrize("body", [
    b'{"metrics": [{"metricName": "a", "metricValue": "1"}, {"metricName": "b", "metricValue": "x"}]}',
    b'{"zeta": 1, "metrics": [], "alpha": {"k": [1, 2.5, null]}}',
    b'{"metrics": [{"metricName": "a", "metricValue": "NaN", "step": 1e400}], "experimentKey": "k"}',
    b'{"metrics": [{"metricName": "a", "step": NaN}, {"metricName": "b", "step": -Infinity, "x": 12345678901234567890123}]}',
    b'{"metrics":[{"metricValue":"0.00001","metricName":"\\u00e9\\ud83d\\ude00","runContext":null}]}',
    b'{}',
])
def test_the_canonical_form_is_written_piece_by_piece(body, tmp_path):
    """_canonical (the object's small keys, then the spooled entries at their key's place) gives
    canonical.dumps of the whole answer, over chunks cut anywhere."""
    import tempfile
    for cut in range(1, len(body), 7):
        answer = json_stream.ObjectStream([body[:cut], body[cut:]], "metrics")
        with tempfile.TemporaryFile() as spool:
            held = []
            for entry in answer.items():       # spooled in runs of 1 and 2, as _Stored spools HELD
                held.append(entry)
                if len(held) == 1 + cut % 2:
                    metric_answer._spool(spool, held, answer)
                    held = []
            metric_answer._spool(spool, held, answer)
            assert b"".join(metric_answer._canonical(answer, spool)) == canonical.dumps(json.loads(body))


@pytest.mark.parametrize("whole_bytes", [metric_columns.WHOLE_BYTES, 0], ids=["parsed-whole", "streamed"])
def test_an_answer_whose_metrics_are_null_holds_no_points(whole_bytes, tmp_path, monkeypatch):
    """The shape lets `metrics` be null: stored as sent, counted and read as no points either way."""
    import types
    from cometx_mirror.store.objects import ObjectStore
    monkeypatch.setattr(metric_columns, "WHOLE_BYTES", whole_bytes)
    objects = ObjectStore(tmp_path / "objects")
    reader = types.SimpleNamespace(creds=types.SimpleNamespace(shown_url="http://127.0.0.1:1"))
    ref, counts = metric_answer._Stored(reader, objects)(iter([b'{"metrics": null, "x": 1}']))
    assert counts == {} and objects.get_bytes(ref["object"]) == b'{"metrics":null,"x":1}'
    assert list(metric_stream.batches(metric_answer.points(objects, ref))) in ([], [model.Metrics()])

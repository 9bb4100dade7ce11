"""Neptune float series stream to the index in batches; a 1.x fetch decodes each op-log line twice.

The live route is read from the loopback Neptune server in small pages, so the
stream crosses both page and batch boundaries; a 1.x queue with values JSON alone
can spell (NaN, Infinity, integers past 64 bits) is fetched with its decodes counted.
"""
from __future__ import annotations

import json
import math
import uuid

import pytest
from neptune_fixtures import q

from cometx_mirror import metric_stream
from cometx_mirror.server.neptune import start_neptune_server
from cometx_mirror.server.neptune.seed import T0, seed
from cometx_mirror.sources import get_normalizer
from cometx_mirror.sources.neptune import live, offline_v1
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch

ODD = [math.nan, math.inf, -math.inf, -0.0, 2.0 ** 70]


def _expected(data) -> dict[str, list[tuple]]:
    """run key -> (name, floored step, ts, value repr) of every float point the server holds, in path order."""
    out = {}
    for run in data.projects["ws/proj"].runs.values():
        out[run.custom_run_id] = [(path, math.floor(step), ts, repr(value))
                                  for path in sorted(run.series) if run.series[path]["type"] == "float_series"
                                  for step, ts, value in run.series[path]["points"]]
    return out


def _streamed(mirror, batch: int) -> dict[str, tuple[list[int], list[tuple]]]:
    """run key -> (batch sizes, points) as the normalizer hands them to the index."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(metric_stream, "BATCH_POINTS", batch)
        for label, mid in mirror.current_manifests().items():
            if "experiment/" in label:
                manifest = mirror.get_json(mid)
                exp = get_normalizer(manifest["normalizer"])(mirror, manifest)
                sizes, points = [], []
                for b in metric_stream.batches(exp.metrics):
                    sizes.append(len(b.name))
                    points += zip(b.name, b.step, b.timestamp, map(repr, b.value))
                out[exp.key] = (sizes, points)
    return out


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    srv = start_neptune_server()
    seed(srv.data, points=150)
    odd = srv.data.run("ws/proj", "run-4", experiment="exp-c", created_ms=T0)
    for i in range(70):
        odd.log_metrics(i + (0.25 if i == 9 else 0), {"odd/v": ODD[i % len(ODD)]}, ts=T0 + i)
    mirror = Mirror.init(tmp_path_factory.mktemp("live"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(live, "FLOAT_PAGE", 40)          # several pages a series
        assert run_fetch(mirror, "neptune", "ws/proj", FetchOptions(api_key=srv.api_token)).errors == []
        for i in range(70, 95):                       # the run grows: new pages after the stored ones
            odd.log_metrics(i, {"odd/v": float(i)}, ts=T0 + i)
        again = run_fetch(mirror, "neptune", "ws/proj", FetchOptions(api_key=srv.api_token))
        assert (again.changed, again.errors) == (1, [])
    yield srv, mirror
    srv.stop()


def test_live_float_series_stream_across_pages_and_batches_as_the_server_holds_them(live_run):
    srv, mirror = live_run
    expected = _expected(srv.data)
    streamed = _streamed(mirror, batch=64)
    assert {k: v[1] for k, v in streamed.items()} == expected
    sizes = streamed["run-1"][0]                      # 151 + 150 points, in batches of 64
    assert sizes == [64, 64, 64, 64, 45]
    assert streamed["run-4"][0] == [64, 31]
    assert _streamed(mirror, batch=1 << 20) == {k: ([len(v)], v) for k, v in expected.items()}


def test_live_index_rows_are_the_servers_points_and_survive_reindex(live_run):
    srv, mirror = live_run
    sql = ("SELECT e.experiment_key, m.name, m.step, epoch_ms(m.timestamp), m.value FROM metrics m "
           "JOIN experiments e USING (exp_id) ORDER BY ALL")
    rows = lambda: [(k, n, s, t, repr(v)) for k, n, s, t, v in q(mirror, sql)]   # noqa: E731  (NaN != NaN)
    before = rows()
    assert sorted(before) == sorted((k, *p) for k, pts in _expected(srv.data).items() for p in pts)
    indexer.rebuild(mirror)
    assert rows() == before


# -- neptune 1.x: one decode at the store, one for the float stream ---------------------------------------
BIG = 2 ** 70 + 1


def _write_queue(root):
    run_uuid = str(uuid.UUID(int=15))
    run_dir = root / ".neptune" / "offline" / f"run__{run_uuid}__1__t"
    run_dir.mkdir(parents=True)
    (run_dir / "metadata.json").write_text(json.dumps({"mode": "offline", "containerType": "run",
                                                       "createdAt": "2024-01-01T00:00:00.000Z"}))
    ops = [{"type": "AssignInt", "path": ["parameters", "big"], "value": BIG},
           {"type": "AssignFloat", "path": ["parameters", "nan"], "value": math.nan},
           {"type": "AssignFloat", "path": ["parameters", "inf"], "value": -math.inf},
           {"type": "LogFloats", "path": ["m"], "values": [{"value": v, "step": float(i), "ts": 1.0 + i}
                                                           for i, v in enumerate(ODD)]},
           {"type": "LogFloats", "path": ["m"], "values": [{"value": BIG, "ts": 9.0}]},   # numbered: step 5
           {"type": "LogStrings", "path": ["notes"], "values": [{"value": "x", "ts": 9.5}]}]
    lines = [json.dumps({"obj": op, "version": n, "at": 10.0 + n}) for n, op in enumerate(ops)]
    (run_dir / "data-1.log").write_text("\n".join(lines) + "\n")
    return len(lines)


def test_v1_fetch_decodes_each_line_twice_and_keeps_exact_values(tmp_path, monkeypatch):
    lines = _write_queue(tmp_path / "src")
    decodes = []
    parse = offline_v1._parse
    monkeypatch.setattr(offline_v1, "_parse", lambda line: decodes.append(line) or parse(line))
    mirror = Mirror.init(tmp_path / "m")
    assert run_fetch(mirror, "neptune", str(tmp_path / "src"), FetchOptions()).errors == []
    # the store (which folds), the float stream; not four (both read the client-shaped many-point
    # LogFloats line as columns, without decoding it whole; a reindex's fold decodes it by json)
    assert len(decodes) == 2 * lines - 2
    params = dict(q(mirror, "SELECT name, value FROM params"))
    assert params == {"parameters/big": str(BIG), "parameters/nan": "NaN", "parameters/inf": "-Infinity"}
    assert json.loads(q(mirror, "SELECT raw FROM params WHERE name = 'parameters/big'")[0][0])["value"] == BIG
    points = lambda: [(s, repr(v)) for s, v in q(mirror, "SELECT step, value FROM metrics ORDER BY step")]  # noqa
    assert points() == list(enumerate(map(repr, ODD + [float(BIG)])))
    assert q(mirror, "SELECT file_name FROM assets") == [("notes.jsonl",)]
    sql = "SELECT name, value, raw FROM params ORDER BY name"
    before = (q(mirror, sql), points())
    decodes.clear()
    indexer.rebuild(mirror)                   # from the stored objects alone: the same rows
    assert (q(mirror, sql), points()) == before
    assert len(decodes) == 2 * lines - 1

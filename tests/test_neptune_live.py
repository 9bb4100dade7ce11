"""fetch --from neptune WORKSPACE[/PROJECT[/RUN]] against the loopback Neptune server."""
from __future__ import annotations

import datetime as dt
import json
import socket

import pytest
from neptune_fixtures import q, row, sanitize, write_part
from push_fixtures import cli, differences, fetch as comet_fetch, last_json, push

from cometx_mirror.server.neptune import NeptuneData, make_api_token, start_neptune_server
from cometx_mirror.server.neptune.seed import seed
from cometx_mirror.sources import SourceError
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch

FLOAT_SERIES = "POST /api/leaderboard/v1/proto/attributes/series/float"
SERIES = "POST /api/leaderboard/v1/proto/attributes/series"


@pytest.fixture(scope="module")
def neptune():
    srv = start_neptune_server()
    seed(srv.data)
    yield srv
    srv.stop()


def live_fetch(mirror, target, token, **options):
    return run_fetch(mirror, "neptune", target, FetchOptions(api_key=token, **options))


def endpoint_counts(srv) -> dict[str, int]:
    return {k: v["count"] for k, v in srv.counters()["endpoints"].items()}


# -- the same runs as neptune-exporter would write them --------------------------------------------
def _ts(ms):
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


def write_exporter_folder(data: NeptuneData, project: str, root):
    pdir, fdir = root / "data" / sanitize(project), root / "files" / sanitize(project)
    for run in data.projects[project].runs.values():
        rid, rows = run.custom_run_id, []
        for path, (kind, value) in run.attrs.items():
            field = {"float": "float_value", "int": "int_value", "bool": "bool_value", "string": "string_value",
                     "datetime": "datetime_value", "string_set": "string_set_value"}[kind]
            rows.append(row(rid, path, kind, project=project, **{field: _ts(value) if kind == "datetime" else value}))
        for path, s in run.series.items():
            for step, ts, value in s["points"]:
                kind = s["type"]
                values = {"float_series": {"float_value": value}, "string_series": {"string_value": value},
                          "histogram_series": {"histogram_value": value}}.get(kind)
                if kind == "file_series":
                    rel = f"{sanitize(rid)}/{path}/{value['path'].rsplit('/', 1)[-1]}"
                    (fdir / rel).parent.mkdir(parents=True, exist_ok=True)
                    (fdir / rel).write_bytes(data.blobs[value["path"]])
                    values = {"file_value": {"path": rel}}
                rows.append(row(rid, path, kind, project=project, step=step, ts=_ts(ts), **values))
        for path, f in run.files.items():
            rel = f"{sanitize(rid)}/{path}/{f['path'].rsplit('/', 1)[-1]}"
            (fdir / rel).parent.mkdir(parents=True, exist_ok=True)
            (fdir / rel).write_bytes(data.blobs[f["path"]])
            rows.append(row(rid, path, "file", project=project, file_value={"path": rel}))
        write_part(pdir, rid, 0, rows)
    return root


# -- tests ------------------------------------------------------------------------------------------
def test_live_fetch_equals_the_exporter_folder_of_the_same_runs(neptune, tmp_path):
    live = Mirror.init(tmp_path / "live")
    result = live_fetch(live, "ws/proj", neptune.api_token)
    assert (result.new, result.failed, result.errors) == (3, 0, [])
    exported = Mirror.init(tmp_path / "exported")
    run_fetch(exported, "neptune", str(write_exporter_folder(neptune.data, "ws/proj", tmp_path / "exp")),
              FetchOptions())
    assert differences(tmp_path / "live", tmp_path / "exported") == {}
    # every point, the decimal step floored, the fork's own points with its parent recorded
    assert q(live, "SELECT count(*) FROM metrics m JOIN experiments e USING (exp_id) "
                   "WHERE e.experiment_key = 'run-1' AND m.name = 'train/loss'") == [(301,)]
    assert q(live, "SELECT min(step), count(*) FROM metrics m JOIN experiments e USING (exp_id) "
                   "WHERE e.experiment_key = 'run-2'") == [(11, 9)]
    assert q(live, "SELECT value FROM system_details s JOIN experiments e USING (exp_id) "
                   "WHERE e.experiment_key = 'run-2' AND s.name = 'sys/forking/parent'") == [('"run-1"',)]
    sizes = dict(q(live, "SELECT file_name, size FROM assets WHERE object_id IS NOT NULL"))
    assert sizes["files/model.bin"] == 11 and sizes["images/pred/1.png"] == 8


def test_unchanged_run_costs_no_series_request_and_a_grown_one_reads_only_new_points(tmp_path):
    srv = start_neptune_server()
    try:
        seed(srv.data, points=50)
        mirror = Mirror.init(tmp_path / "m")
        live_fetch(mirror, "ws/proj", srv.api_token)
        srv.reset_counters()
        again = live_fetch(mirror, "ws/proj", srv.api_token)
        assert (again.unchanged, again.new, again.changed) == (3, 0, 0)
        calls = endpoint_counts(srv)
        assert FLOAT_SERIES not in calls and SERIES not in calls and calls.get(
            "POST /api/leaderboard/v1/proto/leaderboard/attributes/query") is None
        srv.data.projects["ws/proj"].by_custom_id("run-2").log_metrics(20, {"train/loss": 0.01})
        srv.reset_counters()
        grown = live_fetch(mirror, "ws/proj", srv.api_token)
        assert (grown.changed, grown.unchanged) == (1, 2)
        assert endpoint_counts(srv)[FLOAT_SERIES] == 1 and SERIES not in endpoint_counts(srv)
        bodies = [r for r in srv.requests() if r["endpoint"] == FLOAT_SERIES]
        assert bodies[0]["bytes_out"] < 100          # one point came back, not the ten
        assert q(mirror, "SELECT count(*), max(step) FROM metrics m JOIN experiments e USING (exp_id) "
                         "WHERE e.experiment_key = 'run-2'") == [(10, 20)]
    finally:
        srv.stop()


def test_one_run_and_a_whole_workspace(neptune, tmp_path):
    mirror = Mirror.init(tmp_path / "m")
    assert live_fetch(mirror, "ws/proj/run-3", neptune.api_token).new == 1
    assert q(mirror, "SELECT experiment_key FROM experiments") == [("run-3",)]
    listed = live_fetch(mirror, "ws", neptune.api_token, list_only=True).listing
    assert sorted(r["key"] for r in listed) == ["run-1", "run-2", "run-3"]


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_bad_input_is_one_line(neptune, tmp_path, monkeypatch):
    mirror = Mirror.init(tmp_path / "m")
    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)
    cases = {
        None: "needs NEPTUNE_API_TOKEN",
        "not-a-token": "not a Neptune API token",
        make_api_token(neptune.url, "wrong-secret"): "rejected the API token",
        make_api_token(f"http://127.0.0.1:{_free_port()}", "secret-x"): "no Neptune server reachable",
    }
    for token, expected in cases.items():
        with pytest.raises(SourceError) as err:
            live_fetch(mirror, "ws/proj", token)
        assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)
        assert "secret" not in str(err.value)
    for target, expected in (("ws/nope", "project ws/nope not found"), ("ws/proj/run-9", "run run-9 not found")):
        with pytest.raises(SourceError, match=expected):
            live_fetch(mirror, target, neptune.api_token)
    out = cli("fetch", "--mirror", tmp_path / "m", "--from", "neptune", "--api-key", neptune.api_token,
              "ws/nope", expect=None)
    assert out.exit_code != 0 and "project ws/nope not found" in out.output and "Traceback" not in out.output


def test_live_fetched_project_pushes_to_comet_and_reads_back_equal(neptune, server_b, tmp_path):
    path = tmp_path / "m"
    live_fetch(Mirror.init(path), "ws/proj", neptune.api_token)
    result = last_json(push(server_b, path, "ws/proj", f"{server_b.workspace}/from-neptune"))
    assert (result["new"], result["failed"]) == (3, 0), result
    back = tmp_path / "back"
    comet_fetch(server_b, back, f"{server_b.workspace}/from-neptune")
    assert differences(path, back, ("metrics", "tags")) == {}
    got = sorted(q(Mirror.open(back), "SELECT name, value FROM params"))
    assert got and got == sorted(q(Mirror.open(path), "SELECT name, value FROM params"))
    assert json.loads(push(server_b, path, "ws/proj", f"{server_b.workspace}/from-neptune")
                      .stdout.strip().splitlines()[-1])["unchanged"] == 3

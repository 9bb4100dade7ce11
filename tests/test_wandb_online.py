"""`fetch --from wandb ENTITY[/PROJECT[/RUN]]` through the real wandb.Api against a local emulator."""
from __future__ import annotations

import re
import socket

import pytest
from click.testing import CliRunner
from wandb_fixtures import API_KEY

from cometx_mirror.cli import main

from cometx_mirror.index.db import open_read
from cometx_mirror.sources import SourceError
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch
from cometx_mirror.sources.options import FetchOptions


pytestmark = pytest.mark.usefixtures("wandb_env")     # wandb_fixtures.wandb_env


def fetch(mirror, path, server_url, key=API_KEY):
    return run_fetch(mirror, "wandb", path, FetchOptions(api_key=key, url=server_url, parallel=2))


def rows(mirror, sql, *params):
    with open_read(mirror.index_path) as con:
        return con.execute(sql, list(params)).fetchall()


COMPARE = {
    "params": "SELECT name, value FROM params WHERE exp_id=? ORDER BY name",
    "metrics": "SELECT name, step, epoch, value, timestamp FROM metrics WHERE exp_id=? ORDER BY name, step, timestamp",
    "others": "SELECT name, value FROM others WHERE exp_id=? AND name NOT LIKE 'wandb.%' ORDER BY name",
    "tags": "SELECT tag FROM tags WHERE exp_id=? ORDER BY tag",
    "assets": "SELECT file_name, type, step, size, object_id FROM assets WHERE exp_id=? ORDER BY file_name",
    "texts": "SELECT kind, object_id FROM texts WHERE exp_id=? ORDER BY kind",
}


def test_online_equals_offline(wandb_runs, wandb_server, tmp_path, monkeypatch):
    wandb_dir, runs = wandb_runs
    online, offline = Mirror.init(tmp_path / "on"), Mirror.init(tmp_path / "off")
    # wandb's terminal as a user has it (not silent): its "N of N files downloaded." must not show
    import wandb
    monkeypatch.delenv("WANDB_SILENT")
    wandb.termsetup(wandb.Settings(silent=False), None)
    r = CliRunner().invoke(main, ["fetch", "--from", "wandb", "ent-y/proj-x", "--api-key", API_KEY,
                                  "--url-override", wandb_server.url, "-j", "2", "-q", "--mirror", str(online.root)])
    assert r.exit_code == 0 and r.stderr == "", r.output
    [line] = r.stdout.splitlines()           # only our summary; every request counted, most by wandb-core
    m = re.fullmatch(r"2 new, 0 changed, 0 unchanged, 0 failed; .* in (\d+) requests "
                     r"\((\d+) of them sent by wandb-core; its retries are not seen\)", line)
    assert m and int(m[1]) == len(wandb_server.requests) and 0 < int(m[2]) < int(m[1]), (line, wandb_server.requests)
    run_fetch(offline, "wandb", str(wandb_dir), FetchOptions())
    assert wandb_server.requests.count("Runs") == 2           # page size 1: two pages
    assert "RunFullHistory" in wandb_server.requests           # the system stream only
    for which in ("A", "B"):
        exp = f"wandb:ent-y/proj-x/{runs[which]['id']}"
        for table, sql in COMPARE.items():
            assert rows(online, sql, exp) == rows(offline, sql, exp), (which, table)
    got = rows(online, "SELECT name, state, experiment_key FROM experiments ORDER BY name")
    assert got == [("first-run", "finished", runs["A"]["id"]), ("second-run", "finished", runs["B"]["id"])]
    sql = ("SELECT v.version, list_sort(v.aliases), v.experiment_key, f.path, f.size, f.object_id "
           "FROM artifact_versions v JOIN artifact_files f USING (artifact, version) "
           "WHERE v.artifact='my-ds' ORDER BY v.version")
    assert rows(online, sql) == rows(offline, sql)
    assert [r[:2] for r in rows(online, sql)] == [("v0", ["best"]), ("v1", ["latest"])]


def test_incremental_unchanged_and_growing_run(wandb_runs, wandb_server, tmp_path):
    _, runs = wandb_runs
    mirror = Mirror.init(tmp_path / "m")
    fetch(mirror, "ent-y/proj-x", wandb_server.url)
    wandb_server.requests.clear()
    before = set(mirror.objects.ids())
    result = fetch(mirror, "ent-y/proj-x", wandb_server.url)
    assert (result.unchanged, result.new, result.changed, result.snapshots) == (2, 0, 0, [])
    assert set(wandb_server.requests) <= {"Viewer", "GetDefaultEntity", "Runs"}
    assert result.requests == len(wandb_server.requests)
    assert set(mirror.objects.ids()) == before

    run_b = next(r for r in wandb_server.runs if r["id"] == runs["B"]["id"])
    last = run_b["history"][-1]
    for step in (30, 40):
        run_b["history"].append({"_step": step, "loss": -step / 10, "_timestamp": last["_timestamp"] + step,
                                 "_runtime": 1.0})
    run_b["heartbeat"] = "2099-01-01T00:00:00"
    wandb_server.requests.clear()
    result = fetch(mirror, "ent-y/proj-x", wandb_server.url)
    assert (result.unchanged, result.changed, result.errors) == (1, 1, [])
    assert not any(r.startswith("GET /files/") for r in wandb_server.requests)   # md5 unchanged
    assert result.requests == len(wandb_server.requests)
    exp = f"wandb:ent-y/proj-x/{runs['B']['id']}"
    got = rows(mirror, "SELECT step, value FROM metrics WHERE exp_id=? AND name='loss' ORDER BY step", exp)
    assert got == [(0, 2.0), (10, 1.0), (20, 0.0), (30, -3.0), (40, -4.0)]
    manifest = mirror.get_json(mirror.snapshot(mirror.refs.get(next(mirror.refs.names()))).manifests[
        f"experiment/ent-y/proj-x/{runs['B']['id']}"])
    assert [p["first_step"] for p in manifest["history"]] == [0, 30]     # only the new rows were pulled
    assert rows(mirror, "SELECT epoch_ms(updated_at) FROM experiments WHERE exp_id=?", exp) == [(4070908800000,)]


def test_entity_and_single_run_paths(wandb_runs, wandb_server, tmp_path):
    _, runs = wandb_runs
    mirror = Mirror.init(tmp_path / "m")
    result = fetch(mirror, f"ent-y/proj-x/{runs['B']['id']}", wandb_server.url)
    assert result.new == 1
    assert rows(mirror, "SELECT name FROM experiments") == [("second-run",)]
    result = fetch(mirror, "ent-y", wandb_server.url)
    assert "GetProjects" in wandb_server.requests
    assert (result.new, result.unchanged) == (1, 1)
    assert rows(mirror, "SELECT count(*) FROM experiments") == [(2,)]
    assert list(mirror.refs.names()) == [f"wandb/127.0.0.1_{wandb_server.url.rsplit(':', 1)[1]}/ent-y/proj-x"]


def test_bad_key(wandb_server, tmp_path):
    mirror = Mirror.init(tmp_path / "m")
    with pytest.raises(SourceError, match="rejected the API key") as e:
        fetch(mirror, "ent-y/proj-x", wandb_server.url, key="local-" + "y" * 40)
    assert "y" * 40 not in str(e.value)


def test_no_key(wandb_server, tmp_path):
    with pytest.raises(SourceError, match="no W&B API key"):
        fetch(Mirror.init(tmp_path / "m"), "ent-y/proj-x", wandb_server.url, key=None)


def test_server_down(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match="cannot reach W&B at 127.0.0.1"):
        fetch(Mirror.init(tmp_path / "m"), "ent-y/proj-x", f"http://127.0.0.1:{port}")


def test_bad_path(wandb_server, tmp_path):
    with pytest.raises(SourceError, match="expected ENTITY"):
        fetch(Mirror.init(tmp_path / "m"), "a/b/c/d", wandb_server.url)

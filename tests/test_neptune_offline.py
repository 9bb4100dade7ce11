"""fetch --from neptune on folders written by the real clients offline: neptune 1.x op logs, neptune-scale SQLite."""
from __future__ import annotations

import json
import shutil

import pytest
from neptune_fixtures import q

from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch
from cometx_mirror.sources.options import FetchOptions


def fetch(mirror, path):
    return run_fetch(mirror, "neptune", str(path), FetchOptions())


@pytest.fixture
def mirror(tmp_path):
    return Mirror.init(tmp_path / "mirror")


@pytest.fixture
def v1_copy(neptune_v1_offline, tmp_path):
    """A private copy of the 1.x run folder (tests edit it); uploaded files stay where they were logged."""
    shutil.copytree(neptune_v1_offline / ".neptune", tmp_path / "queue" / ".neptune")
    run_dir = next((tmp_path / "queue" / ".neptune" / "offline").iterdir())
    return tmp_path / "queue", run_dir


def test_v1_offline_run(mirror, neptune_v1_offline, monkeypatch):
    monkeypatch.setenv("NEPTUNE_PROJECT", "ws/proj")
    result = fetch(mirror, neptune_v1_offline)
    assert (result.new, result.failed) == (1, 0)
    assert len(result.errors) == 1 and "missing.txt (uploaded as files/gone)" in result.errors[0]
    [(exp_id, ws, proj, key, name, state)] = q(
        mirror, "SELECT exp_id, workspace, project, experiment_key, name, state FROM experiments")
    assert (ws, proj, name, state) == ("ws", "proj", "my-run", None)
    assert len(key) == 36                                   # the container UUID: offline runs have no sys/id
    assert q(mirror, "SELECT tag FROM tags ORDER BY 1") == [("t1",), ("t3",)]
    assert dict(q(mirror, "SELECT name, value FROM params")) == {
        "parameters/lr": "0.01", "parameters/batch": "32", "parameters/flag": "true",
        "parameters/nested/a": "1", "parameters/nested/b": "x"}
    others = dict(q(mirror, "SELECT name, value FROM others"))
    assert others["info/when"] == "2024-01-02T03:04:05.000Z" and others["info/note"] == "hello"
    loss = q(mirror, "SELECT step, value FROM metrics WHERE name = 'train/loss' ORDER BY step")
    assert loss == [(10 + i, 1.0 / (i + 1)) for i in range(5)]
    acc = q(mirror, "SELECT step, value FROM metrics WHERE name = 'train/acc' ORDER BY step")
    assert acc == [(i, pytest.approx(0.1 * i)) for i in range(5)]   # no step logged: numbered in order
    assert q(mirror, "SELECT count(*) FROM metrics WHERE timestamp IS NULL") == [(0,)]
    [(kind, content)] = q(mirror, "SELECT kind, content FROM texts WHERE kind = 'output'")
    assert "to stdout" in content
    assets = {r[0]: r[1:] for r in q(mirror, "SELECT file_name, object_id, size FROM assets")}
    assert mirror.objects.get_bytes(assets["files/a.txt"][0]) == b"hello a\n"
    assert assets["files/gone.txt"][0] is None
    assert mirror.objects.get_bytes(assets["fs/y.txt"][0]) == b"yy\n"
    lines = mirror.objects.get_bytes(assets["log/msg.jsonl"][0]).decode().splitlines()
    assert [json.loads(x)["value"] for x in lines] == [f"line {i}" for i in range(5)]
    assert q(mirror, "SELECT artifact, path FROM artifact_files") == [("proj/dataset", "a.txt")]


def test_v1_default_project_without_env(mirror, v1_copy, monkeypatch):
    monkeypatch.delenv("NEPTUNE_PROJECT", raising=False)
    fetch(mirror, v1_copy[0])
    assert q(mirror, "SELECT workspace, project FROM experiments") == [("neptune-offline", "default")]


def test_v1_malformed_line_named_rest_fetched(mirror, v1_copy):
    root, run_dir = v1_copy
    log = run_dir / "data-1.log"
    lines = log.read_text().splitlines(keepends=True)
    lines.insert(4, '{"obj": {"type": "AssignFloat", "path": ["x"\n')   # becomes line 5
    log.write_text("".join(lines))
    result = fetch(mirror, root)
    assert any(f"{run_dir.name}/data-1.log line 5: malformed operation" in e for e in result.errors)
    assert result.new == 1
    assert q(mirror, "SELECT count(*) FROM params") == [(5,)]
    assert q(mirror, "SELECT count(*) FROM metrics") == [(10,)]


def test_v1_incremental_adds_only_new_operations(mirror, v1_copy):
    root, run_dir = v1_copy
    fetch(mirror, root)
    before = set(mirror.objects.ids())
    again = fetch(mirror, root)
    assert (again.unchanged, again.snapshots) == (1, []) and set(mirror.objects.ids()) == before

    log = run_dir / "data-1.log"
    op = {"obj": {"type": "LogFloats", "path": ["train", "loss"],
                  "values": [{"value": 0.01, "step": 99, "ts": 1795771277.5}]}, "version": 1000, "at": 1795771277.5}
    with log.open("a") as f:
        f.write(json.dumps(op) + "\n")
        f.write('{"obj": {"type": "LogFl')            # a torn tail: left for the next fetch
    third = fetch(mirror, root)
    assert third.changed == 1 and not any("line" in e for e in third.errors)
    assert len(set(mirror.objects.ids()) - before) <= 3   # last segment, manifest, snapshot
    assert q(mirror, "SELECT max(step) FROM metrics WHERE name = 'train/loss'") == [(99,)]


def test_scale_offline_run(mirror, neptune_scale_offline):
    result = fetch(mirror, neptune_scale_offline)
    assert (result.new, result.failed, result.errors) == (1, 0, [])
    [(exp_id, ws, proj, key, name, created)] = q(
        mirror, "SELECT exp_id, workspace, project, experiment_key, name, created_at FROM experiments")
    assert (ws, proj, key, name) == ("ws", "scaleproj", "scale-run-1", "exp-a")
    assert created is not None
    assert q(mirror, "SELECT tag FROM tags ORDER BY 1") == [("a",), ("b",)]
    assert dict(q(mirror, "SELECT name, value FROM params")) == {
        "params/lr": "0.001", "params/layers": "4", "params/flag": "false", "params/opt": "adam"}
    assert dict(q(mirror, "SELECT name, value FROM others")) == {"info/when": "2024-05-06T07:08:09.000Z"}
    assert q(mirror, "SELECT step, value FROM metrics WHERE name = 'train/loss' ORDER BY step") == \
        [(i, 2.0 - i * 0.5) for i in range(4)]
    assert q(mirror, "SELECT count(*) FROM metrics WHERE name = 'eval/acc'") == [(4,)]
    assets = {r[0]: r[1:] for r in q(mirror, "SELECT file_name, type, object_id FROM assets")}
    assert mirror.objects.get_bytes(assets["files/cfg.yaml"][1]) == b"lr: 0.001\n"
    hist = json.loads(mirror.objects.get_bytes(assets["weights/h.json"][1]))
    assert hist[0]["edges"] == [0.0, 1.0, 2.0] and hist[0]["values"] == [3.0, 4.0] and hist[0]["step"] == 1
    notes = mirror.objects.get_bytes(assets["notes/log.jsonl"][1]).decode().splitlines()
    assert [json.loads(x)["value"] for x in notes] == ["first", "second"]
    again = fetch(mirror, neptune_scale_offline)
    assert (again.unchanged, again.snapshots) == (1, [])


def test_mixed_folder_fetches_every_kind(mirror, neptune_v1_offline, neptune_scale_offline, tmp_path):
    mixed = tmp_path / "mixed" / ".neptune"
    shutil.copytree(neptune_v1_offline / ".neptune", mixed, dirs_exist_ok=True)
    shutil.copytree(neptune_scale_offline / ".neptune", mixed, dirs_exist_ok=True)
    result = fetch(mirror, mixed.parent)
    assert result.new == 2
    refs = sorted(r for r, _ in mirror.refs.items())
    assert refs[0].startswith("neptune/offline/") and refs[1] == "neptune/scale-offline/ws/scaleproj"
    # the normalizers are pure: a rebuilt index has the same rows
    tables = ("experiments", "params", "others", "tags", "metrics", "texts", "assets", "artifact_files")
    before = {t: sorted(map(str, q(mirror, f"SELECT * FROM {t}"))) for t in tables}
    indexer.rebuild(mirror)
    assert {t: sorted(map(str, q(mirror, f"SELECT * FROM {t}"))) for t in tables} == before


def test_online_without_reachable_server_is_one_line(mirror, monkeypatch):
    import base64
    import socket

    from cometx_mirror.sources import SourceError
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                   # a port nobody listens on
    token = base64.b64encode(json.dumps({"api_address": f"http://127.0.0.1:{port}",
                                         "api_key": "secret-key"}).encode()).decode()
    monkeypatch.setenv("NEPTUNE_API_TOKEN", token)
    with pytest.raises(SourceError) as err:
        fetch(mirror, "ws/proj")
    message = str(err.value)
    assert "no Neptune server reachable" in message and "\n" not in message and "secret" not in message
    monkeypatch.delenv("NEPTUNE_API_TOKEN")
    with pytest.raises(SourceError, match="NEPTUNE_API_TOKEN"):
        fetch(mirror, "ws/proj")

"""serve --mirror: the real comet_ml API and the real `cometx download` read a mirror of Comet,
W&B and Neptune data back from the read-only server; writes are refused; keys are enforced."""
from __future__ import annotations

import json
from collections import Counter
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from cometx_mirror import model
from cometx_mirror.server.mirror_access import KeyRequired
from cometx_mirror.server.mirror_serve import serve_mirror
from serve_mirror_fixtures import build_mixed_mirror, index

COMETX = str(Path(sys.executable).parent / "cometx")


@pytest.fixture(scope="module")
def mixed(seeded, tmp_path_factory):
    return build_mixed_mirror(seeded, tmp_path_factory.mktemp("serve-mirror"))


@pytest.fixture(scope="module")
def served(mixed):
    handle = serve_mirror(str(mixed))
    yield handle
    handle.stop()


@pytest.fixture
def api(served, tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("COMET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("COMET_URL_OVERRIDE", served.clientlib_url)
    monkeypatch.setenv("COMET_API_KEY", "any-key")
    monkeypatch.setenv("COMET_ERROR_TRACKING_ENABLE", "false")
    import comet_ml
    return comet_ml.API(cache=False)


def test_every_resource_reads_back_equal_to_the_index(mixed, api):
    sources = {r[0] for r in index(mixed, "SELECT DISTINCT source FROM experiments")}
    assert {"comet", "wandb", "neptune"} <= sources
    workspaces = sorted({r[0] for r in index(mixed, "SELECT workspace FROM experiments")})
    assert sorted(api.get_workspaces()) == workspaces
    rows = index(mixed, "SELECT exp_id, workspace, project, experiment_key, name FROM experiments")
    archived = {r[0] for r in index(mixed, "SELECT experiment_key FROM experiments WHERE archived")}
    for ws in workspaces:
        projects = sorted({r[2] for r in rows if r[1] == ws})
        assert sorted(api.get_projects(ws)) == projects
        for proj in projects:
            want = sorted(r[3] for r in rows if r[1] == ws and r[2] == proj and r[3] not in archived)
            got = api.get_experiments(ws, proj)
            assert sorted(e.key for e in got) == want
    for exp_id, ws, proj, key, name in rows:
        e = api.get_experiment_by_key(key)
        assert (e.workspace, e.project_name) == (ws, proj)
        params = dict(index(mixed, "SELECT name, value FROM params WHERE exp_id = ?", [exp_id]))
        assert {p["name"]: p["valueCurrent"] for p in e.get_parameters_summary()} == params
        others = dict(index(mixed, "SELECT name, value FROM others WHERE exp_id = ?", [exp_id]))
        assert {o["name"]: o["valueCurrent"] for o in e.get_others_summary()} == others
        assert sorted(e.get_tags()) == sorted(r[0] for r in index(mixed, "SELECT tag FROM tags WHERE exp_id = ?",
                                                                  [exp_id]))
        points = index(mixed, "SELECT name, step, text, value FROM metrics WHERE exp_id = ?", [exp_id])
        # each point by its exact text: the text column, else the double's canonical text
        want = sorted((n, s, t if t is not None else None if v is None else model.double_text(v), )
                      for n, s, t, v in points)
        got = sorted((p["metricName"], p["step"], p["metricValue"]) for p in e.get_metrics())
        assert got == want
        assets = index(mixed, "SELECT asset_id, file_name, object_id, size, remote FROM assets WHERE exp_id = ?",
                       [exp_id])
        listed = e.get_asset_list()
        assert sorted((a["assetId"], a["fileName"]) for a in listed) == sorted((a[0], a[1]) for a in assets)
        for asset_id, file_name, object_id, size, remote in assets:
            if not remote and object_id:
                data = e.get_asset(asset_id, return_type="binary")
                assert len(data) == size
        html = index(mixed, "SELECT object_id FROM texts WHERE exp_id = ? AND kind = 'html'", [exp_id])
        if html:
            assert e.get_html()
        system = dict(index(mixed, "SELECT name, value FROM system_details WHERE exp_id = ?", [exp_id]))
        details = e.get_system_details()
        for k, v in system.items():
            assert details[k] == (None if v is None else json.loads(v)), k


def test_output_and_asset_bytes_are_the_stored_ones(mixed, api, seeded):
    key = seeded.keys[0]
    e = api.get_experiment_by_key(key)
    assert "hello 0" in e.get_output()
    (asset_id, object_id), = index(mixed, "SELECT a.asset_id, a.object_id FROM assets a JOIN experiments x "
                                          "USING (exp_id) WHERE x.experiment_key = ? AND file_name = 'model.ckpt'",
                                   [key])
    assert e.get_asset(asset_id, return_type="binary") == b"\x00\x01" * 500


def test_every_write_is_refused_with_403(served, api, seeded):
    e = api.get_experiment_by_key(seeded.keys[0])
    with pytest.raises(Exception):
        e.log_other("intruder", "1")
    assert "intruder" not in {o["name"] for o in e.get_others_summary()}
    for path, body in [("/api/rest/v2/write/experiment/log-other", {"experimentKey": seeded.keys[0]}),
                       ("/clientlib/batch/logger/experiment/metric", {}),
                       ("/api/rest/v2/write/project/create", {"projectName": "x"})]:
        r = requests.post(served.url + path, json=body, headers={"Authorization": "k"}, timeout=10)
        assert r.status_code == 403 and "read-only" in r.json()["msg"], path
    r = requests.post(served.url + "/_admin/settings", json={"sampling": True}, timeout=10)
    assert r.status_code == 403


def test_cometx_download_writes_a_complete_folder(served, mixed, tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    env.update(HOME=str(tmp_path), COMET_URL_OVERRIDE=served.clientlib_url, COMET_API_KEY="any",
               COMET_ERROR_TRACKING_ENABLE="false", COMET_DISABLE_ANNOUNCEMENT="true")
    rows = index(mixed, "SELECT workspace, project, experiment_key, exp_id FROM experiments WHERE NOT archived")
    for ws in sorted({r[0] for r in rows}):
        done = subprocess.run([COMETX, "download", ws, "-o", str(out), "-j", "1"], env=env, cwd=str(tmp_path),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for ws, proj, key, exp_id in rows:
        folder = out / ws / proj / key
        assert json.loads((folder / "metadata.json").read_text())["experimentKey"] == key
        n_points = index(mixed, "SELECT count(*) FROM metrics WHERE exp_id = ?", [exp_id])[0][0]
        lines = (folder / "metrics.jsonl").read_text().splitlines() if n_points else []
        assert len(lines) == n_points
        stored = index(mixed, "SELECT file_name, size FROM assets WHERE exp_id = ? AND NOT remote "
                              "AND object_id IS NOT NULL", [exp_id])
        on_disk = sorted(p.stat().st_size for p in (folder / "assets").rglob("*")
                         if p.is_file() and p.name != "assets_metadata.jsonl") if stored else []
        # every stored asset is on disk (cometx may add files of its own, e.g. its notes of text assets)
        assert not Counter(s for _, s in stored) - Counter(on_disk), (key, stored, on_disk)


def test_beyond_loopback_only_the_key_is_answered(mixed, monkeypatch):
    monkeypatch.delenv("COMETX_MIRROR_API_KEY", raising=False)
    with pytest.raises(KeyRequired):
        serve_mirror(str(mixed), host="127.0.0.2")
    handle = serve_mirror(str(mixed), host="127.0.0.2", api_key="s3cret-key")
    try:
        base = handle.url
        for path in ("/api/rest/v2/workspaces", "/clientlib/isAlive/ver", "/ui/api/tree", "/_admin/counters"):
            assert requests.get(base + path, timeout=10).status_code == 401, path
            assert requests.get(base + path, headers={"Authorization": "wrong"}, timeout=10).status_code == 401
        r = requests.get(base + "/api/rest/v2/workspaces", headers={"Authorization": "s3cret-key"}, timeout=10)
        assert r.status_code == 200 and r.json()["workspaceNames"]
        assert requests.get(base + "/", timeout=10).status_code == 200       # the page asks for the key
        s = requests.Session()
        assert s.post(base + "/ui/login", json={"apiKey": "nope"}, timeout=10).status_code == 401
        assert s.post(base + "/ui/login", json={"apiKey": "s3cret-key"}, timeout=10).status_code == 200
        assert "s3cret-key" not in str(s.cookies.get_dict())
        assert s.get(base + "/ui/api/tree", timeout=10).status_code == 200
    finally:
        handle.stop()
    open_handle = serve_mirror(str(mixed))      # loopback: no key needed
    try:
        assert requests.get(open_handle.url + "/ui/api/tree", timeout=10).status_code == 200
    finally:
        open_handle.stop()


def test_plot_writes_png_and_svg(mixed, seeded, tmp_path):
    from click.testing import CliRunner
    from cometx_mirror.cli import main
    out = tmp_path / "loss.svg"
    r = CliRunner().invoke(main, ["plot", "--mirror", str(mixed), seeded.keys[0], "loss", "--exp", seeded.keys[1],
                                  "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "2 series" in r.output and out.read_text().count("<path") > 2
    png = tmp_path / "loss.png"
    assert CliRunner().invoke(main, ["plot", "--mirror", str(mixed), seeded.keys[0], "loss", "-o", str(png)]).exit_code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(main, ["plot", "--mirror", str(mixed), seeded.keys[0], "no-such-metric", "-o", str(png)])
    assert bad.exit_code == 1 and "no points" in bad.output and "Traceback" not in bad.output

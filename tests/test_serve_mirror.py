"""serve --mirror: the real comet_ml API and the real `cometx download` read a mirror of Comet,
W&B and Neptune data back from the read-only server; writes are refused; keys are enforced."""
from __future__ import annotations

import io
import json
from collections import Counter
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from cometx_mirror import model
from cometx_mirror.server.mirror_access import KeyRequired
from cometx_mirror.server.mirror_serve import serve_mirror
from serve_mirror_fixtures import build_mixed_mirror, index

SEMVER = re.compile(r"\d+\.\d+\.\d+")
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


def _cometx_env(served, tmp_path, api_key="any") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    env.update(HOME=str(tmp_path), COMET_URL_OVERRIDE=served.clientlib_url, COMET_API_KEY=api_key,
               COMET_ERROR_TRACKING_ENABLE="false", COMET_DISABLE_ANNOUNCEMENT="true")
    return env


def _stored(mixed, object_id) -> bytes:
    from cometx_mirror.store.mirror import Mirror
    return Mirror.open(mixed).objects.get_bytes(object_id)


def test_artifacts_registry_models_and_panels_read_back_equal_to_the_index(mixed, api, tmp_path):
    import zipfile
    from cometx.api import API as CometxAPI
    artifacts = index(mixed, "SELECT workspace, name, type FROM artifacts")
    assert artifacts, "the fixture holds an artifact"
    for ws, name, kind in artifacts:
        listed = {a["name"]: a for a in api.get_artifact_list(ws)["artifacts"]}
        assert listed[name]["type"] == kind
        versions = index(mixed, "SELECT version, aliases, tags, metadata, experiment_key FROM artifact_versions "
                                "WHERE workspace = ? AND artifact = ?", [ws, name])
        details = api._client.get_artifact_details(workspace=ws, name=name)
        assert sorted((v["version"], frozenset(v["alias"]), v["experimentKey"]) for v in details["versions"]) == \
            sorted((v, frozenset(a), k) for v, a, _, _, k in versions)
        for version, aliases, tags, metadata, key in versions:
            if not SEMVER.fullmatch(version):
                continue    # a W&B version (a digest): comet_ml's Artifact reads only x.y.z, the listing has it
            art = api.get_artifact(ws, name, version=version)
            assert (art.aliases, art.version_tags) == (frozenset(aliases), frozenset(tags))
            assert art.metadata == (json.loads(metadata) if metadata else {})
            assert art.source_experiment_key == key
            files = index(mixed, "SELECT path, size, object_id, remote, link FROM artifact_files "
                                 "WHERE workspace = ? AND artifact = ? AND version = ?", [ws, name, version])
            assert sorted((a.logical_path, bool(a.remote), a.link if a.remote else None) for a in art.assets) == \
                sorted((p, r, lk if r else None) for p, _, _, r, lk in files)
            out = tmp_path / "art" / version
            art.download(str(out), sync_mode=False)     # its remote file failed to sync when logged
            for path, size, object_id, remote, _ in files:
                if not remote:
                    assert (out / path).read_bytes() == _stored(mixed, object_id)

    models = index(mixed, "SELECT workspace, name, description FROM registry_models")
    assert models, "the fixture holds a registry model"
    for ws, name, description in models:
        assert name in api.get_registry_model_names(ws)
        details = api.get_registry_model_details(ws, name)
        assert details["description"] == (description or "")
        want = index(mixed, "SELECT version, stages, object_id FROM registry_versions WHERE workspace = ? "
                            "AND model = ? ORDER BY version", [ws, name])
        assert [(v["version"], v["stages"]) for v in details["versions"]] == [(v, s) for v, s, _ in want]
        for version, _, zip_id in want:
            out = tmp_path / "model" / version
            api.download_registry_model(ws, name, version=version, output_path=str(out))
            with zipfile.ZipFile(io.BytesIO(_stored(mixed, zip_id))) as zf:
                for member in zf.namelist():
                    assert (out / member).read_bytes() == zf.read(member)

    panels = index(mixed, "SELECT workspace, panel_id, name, object_id FROM panels")
    assert panels, "the fixture holds a panel"
    cx = CometxAPI(cache=False)
    for ws, panel_id, name, object_id in panels:
        rows = {p["templateId"]: p for p in cx.get_panels(ws)}
        assert rows[panel_id]["templateName"] == name
        path = cx.download_panel_zip(panel_id, str(tmp_path / f"{panel_id}.zip"))
        assert Path(path).read_bytes() == _stored(mixed, object_id)
        assert cx.get_panel(panel_id)["templateName"] == name


def _cometx_download(path: str, out: Path) -> None:
    """What `cometx download PATH -o OUT -j 1` runs, in this process (a cometx process costs
    seconds of imports); the server is the one the environment names."""
    from cometx.framework.comet import DownloadManager
    manager = DownloadManager()
    manager.download(comet_path=path, output=str(out), max_workers=1)
    manager.end()


def test_cometx_download_writes_models_and_panels(api, mixed, tmp_path):
    import zipfile
    out = tmp_path / "out"
    for ws, name in index(mixed, "SELECT workspace, name FROM registry_models"):
        _cometx_download(f"{ws}/model-registry/{name}", out)
    for ws in sorted({ws for (ws,) in index(mixed, "SELECT workspace FROM panels")}):
        _cometx_download(f"{ws}/panels", out)
    for ws, name, zip_id in index(mixed, "SELECT workspace, model, object_id FROM registry_versions"):
        with zipfile.ZipFile(io.BytesIO(_stored(mixed, zip_id))) as zf:
            assert zf.namelist()
            for member in zf.namelist():
                assert (out / ws / "model-registry" / name / member).read_bytes() == zf.read(member)
    for ws, panel_id, object_id in index(mixed, "SELECT workspace, panel_id, object_id FROM panels"):
        assert (out / ws / "panels" / f"panel-{panel_id}.zip").read_bytes() == _stored(mixed, object_id)


def test_cometx_download_of_an_artifact_stops_where_comet_stops(api, seeded, mixed, tmp_path, monkeypatch):
    """The seeded artifact's remote file failed to sync when it was logged, and cometx download
    stops at it: the served mirror answers as the server it was fetched from does."""
    (ws, name), = index(mixed, "SELECT workspace, name FROM artifacts WHERE source = 'comet'")
    said = []
    for url, key in ((None, None), (seeded.clientlib_url, seeded.api_key)):
        if url:
            monkeypatch.setenv("COMET_URL_OVERRIDE", url)
            monkeypatch.setenv("COMET_API_KEY", key)
        with pytest.raises(Exception) as stop:
            _cometx_download(f"{ws}/artifacts/{name}", tmp_path / f"out-{len(said)}")
        said.append(str(stop.value))
    assert "big.parquet" in said[0] and said[0] == said[1]


def test_an_older_snapshot_is_served_with_its_values(mixed, tmp_path):
    """A value changed by a later fetch: --snapshot of the earlier fetch serves the old value."""
    import shutil
    from cometx_mirror.store.mirror import Mirror
    from cometx_mirror.sync.fetch import FetchOptions, run_fetch
    from serve_mirror_fixtures import write_run2
    path = tmp_path / "mirror"
    shutil.copytree(mixed, path)
    exports = mixed.parent / "exports"
    before = [e["new"] for e in Mirror.open(path).refs.log_entries() if "neptune" in e.get("ref", "")]
    shutil.copytree(exports, tmp_path / "exports")
    write_run2(tmp_path / "exports", seed=43)
    run_fetch(Mirror.open(path), "neptune", str(tmp_path / "exports"), FetchOptions())
    (key, param, value), = index(path, "SELECT experiment_key, p.name, p.value FROM experiments JOIN params p "
                                       "USING (exp_id) WHERE source = 'neptune' AND p.name LIKE '%seed'")
    assert value == "43"

    def seed_served(**kw) -> str:
        handle = serve_mirror(str(path), **kw)
        try:
            r = requests.get(handle.url + "/api/rest/v2/experiment/parameters", params={"experimentKey": key},
                             headers={"Authorization": "k"}, timeout=10)
            return {p["name"]: p["valueCurrent"] for p in r.json()["values"]}[param]
        finally:
            handle.stop()
    assert seed_served() == "43"
    assert seed_served(snapshot=before[-1][:12]) == "42"


def test_a_bad_snapshot_id_is_one_line_and_a_non_zero_exit(mixed):
    from click.testing import CliRunner
    from cometx_mirror.cli import main
    r = CliRunner().invoke(main, ["serve", "--mirror", str(mixed), "--snapshot", "0000nosuch"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert r.output.strip().count("\n") == 0 and "no such snapshot" in r.output, r.output


def test_plain_serve_answers_the_same_page_reads_as_its_mirror(served, seeded):
    """The page over the in-memory server (plain `serve`) and over the mirror fetched from it:
    the same table, metric names and series, thinned the same way."""
    def page(handle, read, **params):
        r = requests.get(f"{handle.url}/ui/api/{read}", params=params, timeout=30)
        assert r.status_code == 200, (read, r.text[:300])
        return r.json()
    assert "<html" in requests.get(seeded.url + "/", timeout=10).text.lower()
    tree = page(seeded, "tree")
    assert {p["project"]: p["experiments"] for w in tree["workspaces"] if w["workspace"] == seeded.workspace
            for p in w["projects"]} == {"proj-a": 2}
    table = {r["key"]: r for r in page(seeded, "experiments", workspace=seeded.workspace, project="proj-a")
             ["experiments"]}
    assert set(table) == set(seeded.keys) and table[seeded.keys[0]]["metrics"]["loss"]["points"] == 401
    mirror_table = {r["key"]: r for r in page(served, "experiments", workspace=seeded.workspace,
                                              project="proj-a")["experiments"]}
    for key in seeded.keys:
        for field in ("name", "state", "tags", "params", "metrics"):
            assert table[key][field] == mirror_table[key][field], (key, field)
    keys = ",".join(seeded.keys)
    assert page(seeded, "metrics", keys=keys) == page(served, "metrics", keys=keys)
    for buckets in (10, 4000):        # thinned to a min and a max per bucket; then every point
        memory = page(seeded, "series", keys=keys, metric="loss", buckets=buckets)
        assert memory == page(served, "series", keys=keys, metric="loss", buckets=buckets)
        assert [s["points"] for s in memory["series"]] == [401, 401]
        # the last point opens one more bucket: at most 2 * (buckets + 1) points drawn
        assert all(len(s["x"]) == (22 if buckets == 10 else 401) for s in memory["series"])

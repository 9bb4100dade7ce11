"""`fetch` from Comet against the local server, data logged through the real comet_ml SDK."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import duckdb
import pytest
from click.testing import CliRunner

from cometx_mirror.cli import main
from cometx_mirror.index.db import open_write
from cometx_mirror.server.runner import start_server

SDK_QUIET = dict(auto_output_logging=False, log_env_details=False, log_code=False, log_git_metadata=False,
                 log_git_patch=False, log_env_gpu=False, log_env_cpu=False, log_env_host=False,
                 display_summary_level=0)
CHECKPOINT = os.urandom(50_000)      # the same bytes logged by both experiments


@pytest.fixture(scope="module")
def comet(tmp_path_factory):
    """A server holding two experiments in `proj-a` logged through the real SDK."""
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    server = start_server()
    os.environ.update(server.env(), HOME=str(home), COMET_ERROR_TRACKING_ENABLE="false",
                      COMET_DISABLE_ANNOUNCEMENT="true")
    import comet_ml
    logged = []
    for n in range(2):
        exp = comet_ml.Experiment(project_name="proj-a", **SDK_QUIET)
        exp.set_name(f"run-{n}")
        for step in range(300):
            exp.log_metric("loss", 1.0 / (step + 1), step=step, epoch=step // 100)
        with exp.train():
            exp.log_metric("acc", 0.5 + n / 10, step=1)
        exp.log_parameters({"lr": 0.01 * (n + 1), "optimizer": {"name": "adam", "beta1": 0.9}})
        exp.log_other("dataset", "mnist")
        exp.add_tags(["baseline", f"n{n}"])
        exp.log_html(f"<p>report {n}</p>")
        exp.log_asset_data(CHECKPOINT, name="model.ckpt")
        exp.log_asset_data(f"notes {n}", name="notes.txt", step=n)
        exp.log_asset_data(f"second notes {n}", name="notes.txt")     # a duplicate name, other bytes
        exp.log_text(f"sample {n}", step=3)
        exp.end()
        logged.append({"key": exp.get_key(), "name": f"run-{n}", "n": n})
    server.logged = logged
    yield server
    server.stop()
    os.environ.clear()
    os.environ.update(saved)


def run(*args, expect=0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == expect, (result.output, result.exception)
    return result


def fetch(comet, mirror, *args, expect=0):
    return run("fetch", "--mirror", str(mirror), "--api-key", comet.api_key, "--url-override",
               comet.clientlib_url, "--json", *args, expect=expect)


def summary(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def index(mirror):
    return duckdb.connect(str(mirror / "index.duckdb"), read_only=True)


def per_endpoint(comet) -> dict[str, int]:
    return {k.split(" ", 1)[1].removeprefix("/api/rest/v2/"): v["count"]
            for k, v in comet.counters()["endpoints"].items()}


def test_first_fetch_stores_what_the_sdk_logged(comet, tmp_path):
    mirror = tmp_path / "m"
    out = summary(fetch(comet, mirror, f"{comet.workspace}/proj-a"))
    assert out["new"] == 2 and out["failed"] == 0
    con = index(mirror)
    for exp in comet.logged:
        eid = con.execute("SELECT exp_id FROM experiments WHERE experiment_key = ?", [exp["key"]]).fetchone()[0]
        assert con.execute("SELECT name, state, archived FROM experiments WHERE exp_id=?", [eid]).fetchone() \
            == (exp["name"], "finished", False)
        loss = con.execute("SELECT step, epoch, value FROM metrics WHERE exp_id=? AND name='loss' ORDER BY step",
                           [eid]).fetchall()
        assert [r[0] for r in loss] == list(range(300))          # unsampled
        assert loss[250] == (250, 2, pytest.approx(1 / 251))
        assert con.execute("SELECT count(*) FROM metrics WHERE exp_id=? AND timestamp IS NULL",
                           [eid]).fetchone()[0] == 0
        assert con.execute("SELECT context FROM metrics WHERE exp_id=? AND name LIKE '%acc'",
                           [eid]).fetchone()[0] == "train"
        params = dict(con.execute("SELECT name, value FROM params WHERE exp_id=?", [eid]).fetchall())
        assert float(params["lr"]) == pytest.approx(0.01 * (exp["n"] + 1))
        assert any("beta1" in k for k in params)
        assert ("dataset", "mnist") in con.execute("SELECT name, value FROM others WHERE exp_id=?", [eid]).fetchall()
        assert {t for (t,) in con.execute("SELECT tag FROM tags WHERE exp_id=?", [eid]).fetchall()} \
            == {"baseline", f"n{exp['n']}"}
        assert con.execute("SELECT content FROM texts WHERE exp_id=? AND kind='html'", [eid]).fetchone()[0] \
            == f"<p>report {exp['n']}</p>"
        notes = con.execute("SELECT count(DISTINCT asset_id), count(DISTINCT object_id) FROM assets "
                            "WHERE exp_id=? AND file_name='notes.txt'", [eid]).fetchone()
        assert notes == (2, 2)                                     # duplicate names kept apart
    # the checkpoint both experiments logged is stored once
    ckpt = con.execute("SELECT DISTINCT object_id FROM assets WHERE file_name='model.ckpt'").fetchall()
    assert len(ckpt) == 1
    key = comet.logged[0]["key"]
    got = run("cat", "--mirror", str(mirror), key, "model.ckpt").stdout_bytes
    assert got == CHECKPOINT


def test_refetch_of_unchanged_experiments_costs_three_requests_each(comet, tmp_path):
    mirror = tmp_path / "m"
    fetch(comet, mirror, f"{comet.workspace}/proj-a")
    index_file = (mirror / "index.duckdb").stat()
    comet.reset_counters()
    out = summary(fetch(comet, mirror, f"{comet.workspace}/proj-a"))
    assert out["unchanged"] == 2 and out["new"] == out["changed"] == 0
    assert out["objects_written"] == 0
    counts = per_endpoint(comet)
    per_experiment = sum(v for k, v in counts.items() if k.startswith("experiment/"))
    assert per_experiment <= 3 * 2
    assert "experiment/asset/get-asset" not in counts and "experiment/metrics/get-all" not in counts
    # the project, its two listings and its notes; no workspace list on a project path
    assert {k: v for k, v in counts.items() if not k.startswith("experiment/")} \
        == {"project": 1, "experiments": 2, "project/notes": 1}
    assert out["snapshots"] == []           # nothing changed: no new snapshot
    after = (mirror / "index.duckdb").stat()  # ... and the index was not even opened
    assert (after.st_mtime_ns, after.st_size) == (index_file.st_mtime_ns, index_file.st_size)

    comet.reset_counters()
    out = summary(fetch(comet, mirror, f"{comet.workspace}/proj-a", "--quick"))
    assert out["unchanged"] == 2
    assert per_endpoint(comet) == {"project": 1}


def test_a_missing_or_replaced_index_is_rebuilt_by_the_next_fetch(comet, tmp_path):
    mirror = tmp_path / "m"
    fetch(comet, mirror, f"{comet.workspace}/proj-a")
    (mirror / "index.duckdb").unlink()
    fetch(comet, mirror, f"{comet.workspace}/proj-a", "--quick")    # nothing new upstream
    with index(mirror) as con:
        assert con.execute("SELECT count(*) FROM experiments").fetchone()[0] == 2
    with open_write(tmp_path / "empty.duckdb"):                  # an empty index of the same schema
        pass
    shutil.copy(tmp_path / "empty.duckdb", mirror / "index.duckdb")
    fetch(comet, mirror, f"{comet.workspace}/proj-a", "--quick")
    with index(mirror) as con:
        assert con.execute("SELECT count(*) FROM experiments").fetchone()[0] == 2


def test_changes_are_fetched_and_shown_by_diff(comet, tmp_path):
    mirror = tmp_path / "m"
    fetch(comet, mirror, f"{comet.workspace}/proj-a")
    import comet_ml
    api = comet_ml.API(api_key=comet.api_key, cache=False)
    key = comet.logged[1]["key"]
    api.get_experiment_by_key(key).log_other("verdict", "promoted")
    out = summary(fetch(comet, mirror, f"{comet.workspace}/proj-a"))
    assert out["changed"] == 1 and out["unchanged"] == 1
    con = index(mirror)
    assert con.execute("SELECT value FROM others WHERE name='verdict'").fetchone()[0] == "promoted"
    con.close()
    snaps = [e["snapshot"] for e in json.loads(run("log", "--mirror", str(mirror), "--json").output)]
    diff = run("diff", "--mirror", str(mirror), snaps[1], snaps[0]).output
    assert key in diff and "others" in diff


@pytest.mark.parametrize("spec", [
    "500 path=experiment/asset/get-asset nth=1",
    "429 retry_after=0 path=experiment/metrics/get-all nth=1",
    "reset path=experiment/asset/get-asset nth=2",
    "truncate path=experiment/asset/get-asset nth=1",
    "truncate path=experiment/parameters nth=1",
    "503 path=experiment/tags every=2 times=2",
])
def test_faults_are_retried_and_the_mirror_stays_whole(comet, tmp_path, spec):
    mirror = tmp_path / "m"
    comet.set_faults(spec)
    try:
        out = summary(fetch(comet, mirror, f"{comet.workspace}/proj-a"))
    finally:
        comet.set_faults(None)
    assert out["new"] == 2 and out["failed"] == 0
    run("verify", "--mirror", str(mirror), "--read-data")
    con = index(mirror)
    assert con.execute("SELECT count(*) FROM assets WHERE object_id IS NULL").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM metrics WHERE name='loss'").fetchone()[0] == 600


def test_kill_during_fetch_then_resume_downloads_only_what_is_missing(comet, tmp_path):
    mirror = tmp_path / "m"
    env = dict(os.environ, COMETX_MIRROR_FAULT="before_ref_update")
    args = [sys.executable, "-m", "cometx_mirror", "fetch", "--mirror", str(mirror), "--api-key", comet.api_key,
            "--url-override", comet.clientlib_url, f"{comet.workspace}/proj-a"]
    killed = subprocess.run(args, env=env, capture_output=True, text=True)
    assert killed.returncode == 137
    comet.reset_counters()
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "experiment/asset/get-asset" not in per_endpoint(comet)   # the bytes were already stored
    run("verify", "--mirror", str(mirror))
    assert index(mirror).execute("SELECT count(*) FROM experiments").fetchone()[0] == 2


def test_filters(comet, tmp_path):
    ws = comet.workspace
    m1 = tmp_path / "filename"
    fetch(comet, m1, f"{ws}/proj-a", "--filename", "notes.txt")
    con = index(m1)
    assert con.execute("SELECT count(*) FROM assets WHERE object_id IS NOT NULL AND file_name != 'notes.txt'"
                       ).fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM assets WHERE file_name = 'notes.txt' AND object_id IS NOT NULL"
                       ).fetchone()[0] == 4
    assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] == 0

    m2 = tmp_path / "resources"
    fetch(comet, m2, f"{ws}/proj-a", "parameters", "others")
    con = index(m2)
    assert con.execute("SELECT count(*) FROM params").fetchone()[0] > 0
    assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM assets").fetchone()[0] == 0

    m3 = tmp_path / "ignore"
    fetch(comet, m3, f"{ws}/proj-a", "-i", "assets", "-i", "metrics")
    con = index(m3)
    assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM tags").fetchone()[0] == 4

    m4 = tmp_path / "query"
    out = summary(fetch(comet, m4, f"{ws}/proj-a", "--query", 'Tag("n1") & Parameter("lr") > 0.015'))
    assert out["new"] == 1
    assert index(m4).execute("SELECT name FROM experiments").fetchall() == [("run-1",)]

    m5 = tmp_path / "type"
    fetch(comet, m5, f"{ws}/proj-a", "--asset-type", "text-sample")
    con = index(m5)
    assert {t for (t,) in con.execute("SELECT DISTINCT type FROM assets WHERE object_id IS NOT NULL").fetchall()} \
        == {"text-sample"}

    m6 = tmp_path / "one"
    out = summary(fetch(comet, m6, f"{ws}/proj-a/run-0"))      # by name
    assert out["new"] == 1
    listing = run("fetch", "--mirror", str(m6), "--api-key", comet.api_key, "--url-override",
                  comet.clientlib_url, "--list", "-u", f"{ws}/proj-a").output.split()
    assert sorted(listing) == [f"{ws}/proj-a/run-0", f"{ws}/proj-a/run-1"]


@pytest.mark.parametrize("path,words", [
    ("nobody", "unknown workspace"),
    ("{ws}/no-such-project", "unknown project"),
    ("{ws}/proj-a/no-such-experiment", "unknown experiment"),
])
def test_unknown_paths_say_so_in_one_line(comet, tmp_path, path, words):
    result = fetch(comet, tmp_path / "m", path.format(ws=comet.workspace), expect=1)
    assert words in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_bad_input(comet, tmp_path):
    m = str(tmp_path / "m")
    bad_resource = fetch(comet, tmp_path / "m", f"{comet.workspace}/proj-a", "nonsense", expect=1)
    assert "unknown resource 'nonsense'" in bad_resource.stderr
    bad_query = fetch(comet, tmp_path / "m", f"{comet.workspace}/proj-a", "--query", "__import__('os')", expect=1)
    assert "--query" in bad_query.stderr
    bad_key = run("fetch", "--mirror", m, "--api-key", "wrong-key", "--url-override", comet.clientlib_url,
                  comet.workspace, expect=1)
    assert "rejected the API key" in bad_key.stderr and "wrong-key" not in bad_key.stderr
    down = run("fetch", "--mirror", m, "--api-key", comet.api_key, "--url-override", "http://127.0.0.1:9/clientlib/",
               comet.workspace, expect=1)
    assert "cannot reach" in down.stderr and comet.api_key not in down.stderr
    assert down.stderr.count("\n") == 1

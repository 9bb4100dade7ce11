"""fetch --from cometx: folders written by the real `cometx download` into the mirror.

The server is seeded through the real comet_ml SDK (push_fixtures.seeded); the real cometx
downloads it; the rows of `fetch --from cometx` are compared with a direct Comet fetch of the
same server, then pushed to a second server and read back.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from push_fixtures import IGNORED, cli, fetch, last_json, push, writes

COMETX = str(Path(sys.executable).parent / "cometx")
EXPERIMENT_TABLES = ("params", "metrics", "others", "tags", "system_details", "texts", "assets")
# columns that name the source or, for a text, its stored bytes (a Comet git patch is a zip,
# cometx unzips it: the same patch, another size)
SKIP = IGNORED | {"source"}


def cometx_download(server, out: Path, *paths: str) -> None:
    env = {**os.environ, **server.env(), "HOME": str(out.parent / "home"), "COMET_ERROR_TRACKING_ENABLE": "false",
           "COMET_DISABLE_ANNOUNCEMENT": "true"}
    (out.parent / "home").mkdir(exist_ok=True)
    for path in paths:
        done = subprocess.run([COMETX, "download", path, "-o", str(out), "-j", "1"], env=env, cwd=str(out.parent),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def fetch_folder(mirror: Path, folder: Path, *args, expect=0):
    return cli("fetch", "--from", "cometx", "--mirror", mirror, "--json", folder, *args, expect=expect)


def rows(mirror: Path, table: str, where: str = "true") -> list[tuple]:
    """A table's rows, keys, ids and the source aside, for experiments matching `where`."""
    con = duckdb.connect(str(mirror / "index.duckdb"), read_only=True)
    try:
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] not in SKIP]
        if table == "experiments":
            sql = f"SELECT {', '.join(cols)} FROM experiments e WHERE {where}"
        else:
            sql = (f"SELECT {', '.join('t.' + c for c in cols)} FROM {table} t JOIN experiments e "
                   f"ON t.exp_id = e.exp_id WHERE {where}")
        got = con.execute(sql).fetchall()
        if table == "others":
            got = [r for r in got if r[cols.index("name")] != "cometx-mirror.source"]
        if table == "texts":       # git_patch: Comet keeps the zip, cometx the patch in it
            got = [tuple(None if c == "size" and r[cols.index("kind")] == "git_patch" else v
                         for c, v in zip(cols, r)) for r in got]
        return sorted(tuple(json.dumps(v, sort_keys=True, default=str) for v in r) for r in got)
    finally:
        con.close()


def diff(a: Path, b: Path, where: str = "true", tables=("experiments", *EXPERIMENT_TABLES)) -> dict:
    out = {}
    for t in tables:
        ra, rb = rows(a, t, where), rows(b, t, where)
        if ra != rb:
            out[t] = (sorted(set(ra) - set(rb))[:5], sorted(set(rb) - set(ra))[:5])
    return out


@pytest.fixture(scope="module")
def downloaded(seeded, tmp_path_factory):
    """The seeded workspace as `cometx download` writes it (projects, panels, registry model)."""
    out = tmp_path_factory.mktemp("cometx") / "downloads"
    ws = seeded.workspace
    cometx_download(seeded, out, ws, f"{ws}/panels", f"{ws}/model-registry/mymodel")
    return out


@pytest.fixture(scope="module")
def from_folder(downloaded, tmp_path_factory):
    mirror = tmp_path_factory.mktemp("cx-mirror") / "m"
    first = last_json(fetch_folder(mirror, downloaded))
    assert (first["new"], first["failed"], first["errors"]) == (3, 0, [])   # 1 experiment, panel, model
    return mirror


NOT_ARCHIVED = "NOT e.archived"     # cometx download skips archived experiments


def test_rows_equal_a_comet_fetch_where_the_folder_holds_the_data(seeded, from_folder):
    assert rows(from_folder, "experiments", "e.archived") == []
    assert len(rows(from_folder, "experiments")) == 1
    assert diff(seeded.mirror, from_folder, NOT_ARCHIVED) == {}
    # exact text: metric values as the files hold them
    assert rows(from_folder, "metrics") and rows(from_folder, "metrics") == rows(seeded.mirror, "metrics", NOT_ARCHIVED)


def test_second_fetch_of_the_same_folder_is_unchanged(from_folder, downloaded):
    again = last_json(fetch_folder(from_folder, downloaded))
    assert (again["new"], again["changed"], again["unchanged"]) == (0, 0, 3)
    assert (again["snapshots"], again["objects_written"]) == ([], 0)


def test_push_of_the_folder_reads_back_equal_and_a_second_push_writes_nothing(seeded, from_folder, server_b,
                                                                               tmp_path):
    import shutil
    mirror = tmp_path / "m"
    shutil.copytree(from_folder, mirror)
    first = last_json(push(server_b, mirror, seeded.workspace, server_b.workspace))
    assert (first["new"], first["failed"], first["errors"]) == (1, 0, [])
    back = tmp_path / "back"
    fetch(server_b, back, server_b.workspace)
    assert diff(mirror, back) == {}
    server_b.reset_counters()
    again = last_json(push(server_b, mirror, seeded.workspace, server_b.workspace))
    assert (again["unchanged"], again["new"], again["updated"], again["failed"]) == (1, 0, 0, 0)
    assert writes(server_b) == {}


def test_any_level_of_the_folder_names_the_same_entities(seeded, downloaded, from_folder, tmp_path):
    ws = seeded.workspace
    (exp_dir,) = [d for d in (downloaded / ws / "proj-a").iterdir() if d.is_dir()]
    for level in (downloaded / ws, downloaded / ws / "proj-a", exp_dir):
        again = last_json(fetch_folder(from_folder, level))
        assert (again["new"], again["changed"], again["snapshots"]) == (0, 0, []), level.name
    single = tmp_path / "single"
    assert last_json(fetch_folder(single, exp_dir))["new"] == 1
    assert diff(from_folder, single) == {}
    assert rows(single, "experiments")[0] == rows(from_folder, "experiments")[0]


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_a_folder_that_is_not_a_cometx_download_is_one_line(tmp_path, make):
    target = tmp_path / "target"
    if make == "file":
        target.write_text("x")
    elif make == "empty":
        (target / "some" / "thing").mkdir(parents=True)
    result = cli("fetch", "--from", "cometx", "--mirror", tmp_path / "m", target, expect=None)
    assert result.exit_code != 0
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "cometx download folder" in result.output or "no such folder" in result.output


def test_workspace_entities_keep_what_the_folder_holds(seeded, downloaded, from_folder):
    con = duckdb.connect(str(from_folder / "index.duckdb"), read_only=True)
    try:
        panels = con.execute("SELECT name, kind, size FROM panels").fetchall()
        models = con.execute("SELECT model, version, size FROM registry_versions").fetchall()
        project = con.execute("SELECT project, description, public FROM projects").fetchall()
    finally:
        con.close()
    (zip_path,) = (downloaded / seeded.workspace / "panels").iterdir()
    assert panels == [("My panel", "code", zip_path.stat().st_size)]
    assert [(m, v) for m, v, _ in models] == [("mymodel", "1.0.0")] and models[0][2] > 0
    assert project == rows_projects(seeded.mirror)


def rows_projects(mirror: Path) -> list[tuple]:
    con = duckdb.connect(str(mirror / "index.duckdb"), read_only=True)
    try:
        return con.execute("SELECT project, description, public FROM projects").fetchall()
    finally:
        con.close()


def test_export_then_fetch_from_cometx_gives_equal_rows(seeded, tmp_path):
    out = tmp_path / "export"
    cli("export", "--mirror", seeded.mirror, seeded.workspace, out)
    second = tmp_path / "second"
    first = last_json(fetch_folder(second, out))
    assert (first["failed"], first["errors"]) == (0, [])
    assert len(rows(second, "experiments")) == 2          # export keeps the archived experiment too
    assert diff(seeded.mirror, second, tables=EXPERIMENT_TABLES) == {}
    assert rows(seeded.mirror, "experiments") == rows(second, "experiments")     # the crashed state too


def test_files_no_mapping_reads_are_kept_as_assets(tmp_path):
    # the shape cometx writes for --from wandb: metrics per file, code and artifacts beside assets
    run = tmp_path / "dl" / "ent" / "proj" / "run1"
    (run / "metrics").mkdir(parents=True)
    (run / "run" / "code").mkdir(parents=True)
    (run / "artifacts" / "a1").mkdir(parents=True)
    (run / "others.jsonl").write_text(json.dumps({"name": "Name", "valueCurrent": "my-run"}) + "\n")
    (run / "parameters.json").write_text(json.dumps([{"name": "lr", "valueCurrent": 0.1}]))
    (run / "metrics" / "metric_00000.jsonl").write_text(
        json.dumps({"metricName": "loss", "metricValue": 0.5, "step": 1, "timestamp": 1000, "epoch": None}) + "\n")
    (run / "run" / "code" / "train.py").write_text("print(1)\n")
    (run / "artifacts" / "a1" / "data.csv").write_text("a,b\n")
    mirror = tmp_path / "m"
    assert last_json(fetch_folder(mirror, tmp_path / "dl"))["new"] == 1
    con = duckdb.connect(str(mirror / "index.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT workspace, project, experiment_key, name FROM experiments").fetchall() == [
            ("ent", "proj", "run1", "my-run")]
        assert con.execute("SELECT name, value FROM params").fetchall() == [("lr", "0.1")]
        assert con.execute("SELECT name, step, value FROM metrics").fetchall() == [("loss", 1, 0.5)]
        assert sorted(con.execute("SELECT type, file_name, size FROM assets").fetchall()) == [
            ("asset", "artifacts/a1/data.csv", 4), ("source_code", "train.py", 9)]
    finally:
        con.close()


def _jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_export_writes_what_cometx_download_writes(seeded, downloaded, tmp_path):
    """For Comet data, export's files hold what the real cometx download wrote for the same
    experiment: the same JSON (cometx's version stamp aside), the same asset entries and
    names on disk, requirements and the git README."""
    out = tmp_path / "export"
    cli("export", "--mirror", seeded.mirror, seeded.workspace, out)
    theirs_root = downloaded / seeded.workspace / "proj-a"
    ours_root = out / seeded.workspace / "proj-a"
    keys = [p.name for p in theirs_root.iterdir() if p.is_dir()]
    assert keys, "cometx downloaded no experiment"
    unstamp = lambda d: {k: v for k, v in d.items() if k != "cometDownloadVersion"}   # noqa: E731
    project = [unstamp(json.loads((root / "project_metadata.json").read_text())) for root in (theirs_root, ours_root)]
    assert project[0] == project[1]
    for key in keys:
        theirs, ours = theirs_root / key, ours_root / key
        assert unstamp(json.loads((ours / "metadata.json").read_text())) == \
            unstamp(json.loads((theirs / "metadata.json").read_text()))
        for name in ("parameters.json", "system_details.json"):
            assert json.loads((ours / name).read_text()) == json.loads((theirs / name).read_text()), name
        assert _jsonl(ours / "others.jsonl") == _jsonl(theirs / "others.jsonl")
        # the same points; the order and the server's offsets are not part of the data
        points = lambda path: sorted(json.dumps({k: v for k, v in p.items() if k != "offset"}, sort_keys=True)  # noqa: E731
                                     for p in _jsonl(path))
        assert points(ours / "metrics.jsonl") == points(theirs / "metrics.jsonl")
        ours_assets = _jsonl(ours / "assets" / "assets_metadata.jsonl")
        theirs_assets = _jsonl(theirs / "assets" / "assets_metadata.jsonl")
        assert ours_assets == theirs_assets
        on_disk = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())  # noqa: E731
        assert on_disk(ours) == on_disk(theirs)
        for name in ("run/requirements.txt", "run/git_diff.patch", "run/output.txt"):
            if (theirs / name).exists():
                assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
        if (theirs / "run" / "git_metadata.json").exists():
            assert json.loads((ours / "run" / "git_metadata.json").read_text()) == \
                json.loads((theirs / "run" / "git_metadata.json").read_text())
        assert (ours / "run" / "README.md").exists() == (theirs / "run" / "README.md").exists()


def test_a_large_metrics_file_is_read_in_chunks_into_the_same_points(from_folder, monkeypatch):
    """metrics.jsonl past metric_columns.WHOLE_BYTES is never read whole: its lines come from the
    object's chunks (cut mid-line here) and become batches equal to the points read whole."""
    from cometx_mirror import metric_stream
    from cometx_mirror.sources.comet import metric_columns
    from cometx_mirror.sources.cometx import normalize as cometx_normalize
    from cometx_mirror.store import objects
    from cometx_mirror.store.mirror import Mirror
    mirror = Mirror(from_folder)
    manifests = [mirror.get_json(m) for m in mirror.current_manifests().values()]
    (manifest,) = [m for m in manifests if m.get("normalizer") == "cometx-experiment/1"]
    whole = cometx_normalize.experiment(mirror, manifest).metrics
    assert not isinstance(whole, metric_stream.MetricStream) and len(whole) > 400

    for name, value in (("WHOLE_BYTES", 0), ("HELD", 70), ("BATCH_POINTS", 300)):
        monkeypatch.setattr(metric_columns, name, value)
    monkeypatch.setattr(objects, "CHUNK", 997)
    metric_ids = {ref["object"] for path, ref in manifest["files"].items() if path.endswith(".jsonl")
                  and (path == "metrics.jsonl" or path.startswith("metrics/"))}
    read_whole, get_bytes = [], mirror.objects.get_bytes
    monkeypatch.setattr(mirror.objects, "get_bytes", lambda oid: read_whole.append(oid) or get_bytes(oid))
    streamed = cometx_normalize.experiment(mirror, manifest).metrics
    assert isinstance(streamed, metric_stream.MetricStream)
    sizes = [len(b) for b in metric_stream.batches(streamed)]
    assert len(sizes) > 1 and sum(sizes) == len(whole) and max(sizes) < 300 + 70
    for column in ("name", "value", "text", "step", "epoch", "timestamp", "context"):
        assert [x for b in metric_stream.batches(streamed) for x in getattr(b, column)] == getattr(whole, column)
    assert metric_ids and not metric_ids & set(read_whole)

"""push from mirrors of other origins: W&B runs land in Comet with their points and values intact."""
from __future__ import annotations

import json

import duckdb
from push_fixtures import differences, fetch, last_json, push, writes

from cometx_mirror.server.runner import start_server
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch
from cometx_mirror.sources.options import FetchOptions


def test_wandb_runs_push_to_comet_and_read_back_equal(wandb_runs, server_b, tmp_path):
    wandb_dir, _ = wandb_runs
    path = tmp_path / "m"
    run_fetch(Mirror.init(path), "wandb", str(wandb_dir), FetchOptions())
    con = duckdb.connect(str(path / "index.duckdb"), read_only=True)
    (ws, project, n), = con.execute("SELECT workspace, project, count(*) FROM experiments "
                                    "GROUP BY ALL").fetchall()
    con.close()
    result = last_json(push(server_b, path, f"{ws}/{project}", f"{server_b.workspace}/from-wandb"))
    assert (result["new"], result["failed"]) == (n, 0), result
    back = tmp_path / "back"
    fetch(server_b, back, f"{server_b.workspace}/from-wandb")
    fetch(server_b, back, f"{server_b.workspace}/artifacts")     # Comet keeps artifacts per workspace
    # W&B keeps the name, notes and package list elsewhere than Comet: those rows differ in shape
    assert differences(path, back, ("metrics", "tags", "assets")) == {}
    con = duckdb.connect(str(back / "index.duckdb"), read_only=True)
    packages = con.execute("SELECT value FROM system_details WHERE name = 'installedPackages'").fetchall()
    con.close()
    assert packages and all(len(json.loads(v)) > 10 for v, in packages)   # from requirements.txt
    for sql in ("SELECT artifact, version, aliases, metadata FROM artifact_versions",     # every version
                "SELECT artifact, version, path, size, object_id FROM artifact_files",    # and its bytes
                # Comet keeps text only: W&B's types (params.raw) do not travel, the exact text does
                "SELECT name, value, origin FROM params",
                "SELECT name, value FROM others WHERE name NOT IN ('Name', 'cometx-mirror.source')",
                "SELECT kind, content FROM texts WHERE kind IN ('output', 'requirements')"):
        assert rows(back, sql) == rows(path, sql), sql
    server_b.reset_counters()
    assert last_json(push(server_b, path, f"{ws}/{project}", f"{server_b.workspace}/from-wandb"))["unchanged"] == n
    assert writes(server_b) == {}


def rows(mirror_path, sql: str) -> list[tuple]:
    with duckdb.connect(str(mirror_path / "index.duckdb"), read_only=True) as con:
        return sorted(con.execute(sql).fetchall(), key=repr)


def test_long_metric_histories_are_never_sampled(tmp_path):
    """cometx's offline path keeps 15,000 points per metric; push sends every one.  The destination
    samples its metric reads like Comet, so it keeps every value as total-fidelity files (Comet's
    "Store metrics without sampling") and the read back takes them from there."""
    from core_fixtures import add_experiment, commit
    mirror = Mirror.init(tmp_path / "m")
    mid = add_experiment(mirror, "lab", "long", "0123456789abcdef0123456789abcdef", name="long-run",
                         n_points=50_000)
    commit(mirror, "lab", {"experiment/lab/long/0123456789abcdef0123456789abcdef": mid})
    dest = start_server(total_fidelity=True)
    try:
        result = last_json(push(dest, tmp_path / "m", "lab/long", f"{dest.workspace}/long"))
        assert (result["new"], result["failed"]) == (1, 0)
        stored, = [exp["metrics"] for exp in dest.state.data["experiments"].values()]
        assert len(stored) == 50_000                       # what the destination received, unsampled
        back = tmp_path / "back"
        fetch(dest, back, f"{dest.workspace}/long")
    finally:
        dest.stop()
    con = duckdb.connect(str(back / "index.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] == 50_000
    assert con.execute("SELECT count(*) FROM metric_status WHERE sampled").fetchone()[0] == 0
    con.close()
    # every point by its exact value; the total-fidelity CSV has no context column, so no context
    points = "SELECT name, step, epoch, timestamp, value, text FROM metrics"
    assert rows(back, points) == rows(tmp_path / "m", points)


def test_neptune_runs_push_to_comet(exporter_folder, server_b, tmp_path):
    path = tmp_path / "m"
    run_fetch(Mirror.init(path), "neptune", str(exporter_folder), FetchOptions())
    con = duckdb.connect(str(path / "index.duckdb"), read_only=True)
    rows = con.execute("SELECT workspace, project, count(*) FROM experiments GROUP BY ALL").fetchall()
    con.close()
    assert rows
    for ws, project, n in rows:
        result = last_json(push(server_b, path, f"{ws}/{project}", f"{server_b.workspace}/from-neptune"))
        assert (result["new"], result["failed"]) == (n, 0), result
    back = tmp_path / "back"
    fetch(server_b, back, f"{server_b.workspace}/from-neptune")
    assert differences(path, back, ("metrics", "tags")) == {}
    # the values read back are the ones shown at the source (Neptune's typed envelope stays in the mirror)
    con = duckdb.connect(str(back / "index.duckdb"), read_only=True)
    got = sorted(con.execute("SELECT name, value FROM params").fetchall())
    con.close()
    con = duckdb.connect(str(path / "index.duckdb"), read_only=True)
    assert got == sorted(con.execute("SELECT name, value FROM params").fetchall())
    con.close()

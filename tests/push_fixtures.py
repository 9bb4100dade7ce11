"""Fixtures for the push tests: a server seeded through the real comet_ml SDK, fetched into a mirror."""
from __future__ import annotations

import io
import json
import os
import shutil

import pytest
from click.testing import CliRunner

from cometx_mirror.cli import main
from cometx_mirror.server.runner import start_server

SDK_QUIET = dict(auto_output_logging=False, log_env_details=False, log_code=False, log_git_metadata=False,
                 log_git_patch=False, log_env_gpu=False, log_env_cpu=False, log_env_host=False,
                 display_summary_level=0)


def seed_experiment(comet_ml, project: str, n: int, points: int = 400):
    """One experiment with most kinds of data the SDK can log."""
    exp = comet_ml.Experiment(project_name=project, **SDK_QUIET)
    exp.set_name(f"run-{n}")
    for step in range(points):
        exp.log_metric("loss", 1.0 / (step + 1), step=step, epoch=step // 100)
    with exp.train():
        exp.log_metric("acc", 0.5 + n / 10, step=1)
    exp.log_metric("loss", 0.25, step=7)                     # the same step twice: both points kept
    exp.log_parameters({"lr": 0.01 * (n + 1), "epochs": 10 + n, "use_bn": True,
                        "optimizer": {"name": "adam", "beta1": 0.9}, "layers": [64, 32]})
    exp.log_other("dataset", "mnist")
    exp.log_other("seed", 42 + n)
    exp.add_tags(["baseline", f"n{n}"])
    exp.log_html(f"<p>report {n}</p>")
    exp.set_model_graph(f"graph-def-{n}")
    exp.log_asset_data(b"\x00\x01" * 500, name="model.ckpt")
    exp.log_asset_data(f"notes {n}", name="notes.txt", step=n, metadata={"kind": "notes", "n": n})
    exp.log_asset_data(f"second notes {n}", name="notes.txt")
    exp.log_text(f"sample {n}", step=3)
    exp.log_curve("roc", [0, 0.5, 1], [0, 0.8, 1], step=1)
    exp.log_confusion_matrix([1, 0, 1], [1, 1, 0], step=2)
    exp.log_model("mymodel", io.BytesIO(b"weights" * 100), file_name="weights.bin")
    exp.log_remote_asset("s3://bucket/data.csv", remote_file_name="data.csv", step=4)
    exp.log_system_info("gpu_count", 0)
    if n == 1:
        exp.log_artifact(_artifact(comet_ml))
    exp.end()
    api_exp = comet_ml.API(cache=False).get_experiment_by_key(exp.get_key())
    api_exp.set_code(f"print('experiment {n}')\n")
    api_exp.set_git_metadata("alice", "/src", "main", "abc", "git@x:y")
    api_exp.set_git_patch(b"diff --git a/x b/x\n+line\n")
    api_exp.log_output(f"hello {n}\nstep done\n")
    api_exp.log_output("a warning\n", stderr=True)
    if n == 1:
        api_exp.register_model("mymodel", version="1.0.0", stages=["production"], description="a model")
    return exp.get_key()


def _artifact(comet_ml):
    art = comet_ml.Artifact("dataset-a", "dataset", metadata={"rows": 3}, version_tags=["v-tag"],
                            aliases=["best"])
    art.add(io.BytesIO(b"a,b\n1,2\n"), logical_path="train.csv")
    art.add_remote("s3://bucket/big.parquet", logical_path="big.parquet")
    return art


@pytest.fixture(scope="session")
def seeded(tmp_path_factory):
    """Server A with two experiments in `proj-a` (one crashed, one archived), an artifact and a
    registry model, logged through the real SDK; `.mirror` is a mirror fetched from it."""
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    server = start_server()
    os.environ.update(server.env(), HOME=str(home), COMET_ERROR_TRACKING_ENABLE="false",
                      COMET_DISABLE_ANNOUNCEMENT="true")
    import comet_ml
    keys = [seed_experiment(comet_ml, "proj-a", n) for n in range(2)]
    api = comet_ml.API(cache=False)
    api.get_experiment_by_key(keys[0]).set_state("crashed")
    api.get_experiment_by_key(keys[1]).archive()
    from cometx.api import API as PanelAPI
    PanelAPI().upload_panel_code(server.workspace, "My panel", "from comet_ml import ui\nui.display('hi')\n")
    os.environ.clear()
    os.environ.update(saved)     # the SDK needed it; the CLI gets explicit keys
    server.keys = keys
    server.mirror = tmp_path_factory.mktemp("mirror-a") / "m"
    fetch(server, server.mirror, server.workspace)
    yield server
    server.stop()


@pytest.fixture
def mirror_a(seeded, tmp_path):
    """A private copy of the mirror fetched from server A (tests write ledgers into it)."""
    path = tmp_path / "mirror-a"
    shutil.copytree(seeded.mirror, path)
    return path


@pytest.fixture
def server_b():
    server = start_server()
    yield server
    server.stop()


def cli(*args, expect=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert expect is None or result.exit_code == expect, (result.output, result.exception)
    return result


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def fetch(server, mirror, path, *args, expect=0):
    return cli("fetch", "--mirror", mirror, "--api-key", server.api_key, "--url-override",
               server.clientlib_url, "--json", path, *args, expect=expect)


def push(server, mirror, src, dst, *args, expect=0, api_key=None):
    return cli("push", "--mirror", mirror, "--to-api-key", api_key or server.api_key, "--to-url-override",
               server.clientlib_url, "--json", src, dst, *args, expect=expect)


def writes(server) -> dict[str, int]:
    """Write requests per endpoint since the last reset (reads are GETs of non-write paths)."""
    out = {}
    for endpoint, c in server.counters()["endpoints"].items():
        method, path = endpoint.split(" ", 1)
        if method != "GET" or "/write/" in path:
            out[path] = c["count"]
    return out


# -- comparing two indexes, keys and ids aside -------------------------------------------------
# Columns that name keys or ids, or that the destination sets by its own clock.
IGNORED = {"exp_id", "experiment_key", "manifest_id", "asset_id", "object_id", "created_at", "updated_at",
           "extra", "link", "checksum", "workspace", "project", "snapshot_id"}
TABLES = ("projects", "experiments", "params", "metrics", "others", "tags", "system_details", "texts", "assets",
          "artifacts", "artifact_versions", "artifact_files", "registry_models", "registry_versions", "panels")


def index_rows(mirror_path, table: str, exclude_others=("cometx-mirror.source",)) -> list[tuple]:
    import duckdb
    con = duckdb.connect(str(mirror_path / "index.duckdb"), read_only=True)
    try:
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] not in IGNORED]
        rows = con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
        if table == "others":
            rows = [r for r in rows if r[cols.index("name")] not in exclude_others]
        if table == "experiments":
            rows = [r for r in rows]
        return sorted((tuple(json.dumps(v, sort_keys=True, default=str) for v in r) for r in rows))
    finally:
        con.close()


def differences(mirror_a, mirror_b, tables=TABLES) -> dict[str, tuple[list, list]]:
    out = {}
    for t in tables:
        a, b = index_rows(mirror_a, t), index_rows(mirror_b, t)
        if a != b:
            sa, sb = set(a), set(b)
            out[t] = (sorted(sa - sb)[:5], sorted(sb - sa)[:5])
    return out

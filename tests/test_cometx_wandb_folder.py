"""`fetch --from cometx` reads what the real `cometx download --from wandb` writes.

cometx runs as a user runs it (a subprocess, `-j 1`) against the loopback W&B server of the
online tests, serving the two offline runs of wandb_fixtures.  The folder it writes is then
fetched with `fetch --from cometx`; what the folder holds must be in the mirror, and equal
where comparable to a direct `fetch --from wandb` of the same server.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from wandb_fixtures import API_KEY, isolate_wandb, serving_runs

from cometx_mirror.cli import main
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch
from neptune_fixtures import q

COMETX = str(Path(sys.executable).parent / "cometx")     # the venv's cometx command


@pytest.fixture(scope="module")
def server(wandb_runs):
    with serving_runs(wandb_runs) as s:      # one for the module: cometx runs once
        yield s


@pytest.fixture(scope="module")
def downloaded(server, tmp_path_factory):
    """The folder `cometx download --from wandb ent-y/proj-x` wrote (ROOT, with ent-y/proj-x/<run id>)."""
    root = tmp_path_factory.mktemp("cometx-wandb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "COMET_"))}
    env.update(WANDB_BASE_URL=server.url, WANDB_API_KEY=API_KEY, WANDB_SILENT="true",
               WANDB_CONFIG_DIR=str(root / "cfg"), WANDB_CACHE_DIR=str(root / "cache"),
               WANDB_DATA_DIR=str(root / "data"), NETRC=str(root / "no-netrc"),
               # cometx builds a Comet API client before it looks at --from: a key it never uses,
               # and a loopback URL so not even its liveness probe leaves the machine
               COMET_API_KEY="unused", COMET_URL_OVERRIDE=server.url + "/clientlib/")
    # W&B reports are not downloaded by this cometx (its report step is commented out): no --ignore needed
    r = subprocess.run([COMETX, "download", "--from", "wandb", "ent-y/proj-x", "-j", "1",
                        "--output", str(root / "out"), "--debug"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Download aborted" not in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    return root / "out"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def mirrors(downloaded, server, tmp_path_factory, wandb_runs):
    """(mirror of the cometx folder, mirror of a direct wandb fetch of the same server)."""
    base = tmp_path_factory.mktemp("mirrors")
    r = CliRunner().invoke(main, ["fetch", "--from", "cometx", str(downloaded), "-q", "--mirror", str(base / "cx")])
    assert r.exit_code == 0 and r.stdout.startswith("2 new, 0 changed"), r.output
    direct = Mirror.init(base / "wb")
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb(mp, base)
        run_fetch(direct, "wandb", "ent-y/proj-x", FetchOptions(api_key=API_KEY, url=server.url, parallel=1))
    return Mirror.open(base / "cx"), direct


def test_experiments_params_others(mirrors, downloaded, wandb_runs):
    cx, wb = mirrors
    _, runs = wandb_runs
    ids = {w: runs[w]["id"] for w in "AB"}
    assert q(cx, "SELECT source, workspace, project, experiment_key, name FROM experiments ORDER BY name") == [
        ("cometx", "ent-y", "proj-x", ids["A"], "first-run"), ("cometx", "ent-y", "proj-x", ids["B"], "second-run")]
    for w in "AB":
        folder = downloaded / "ent-y" / "proj-x" / ids[w]
        # cometx writes the whole config as one parameter; the mirror keeps it whole
        [written] = json.loads((folder / "parameters.json").read_text())
        [(value,)] = q(cx, "SELECT value FROM params WHERE exp_id=? AND name='config'", f"cometx:ent-y/proj-x/{ids[w]}")
        assert json.loads(value) == written["valueCurrent"]
        # ... and it is the run's config as the direct fetch has it (flattened there, nested here)
        direct = dict(q(wb, "SELECT name, value FROM params WHERE exp_id=?", f"wandb:ent-y/proj-x/{ids[w]}"))
        assert direct and all(_same(_leaf(written["valueCurrent"], k), v) for k, v in direct.items()), direct
        others = dict(q(cx, "SELECT name, value FROM others WHERE exp_id=?", f"cometx:ent-y/proj-x/{ids[w]}"))
        assert others == {o["name"]: o["valueCurrent"] for o in _jsonl(folder / "others.jsonl")}
        assert others["wandb_runid"] == ids[w]


def _same(value, text: str) -> bool:
    """A config value equals a param's text (a string as is, anything else as JSON)."""
    return value == text if isinstance(value, str) else value == json.loads(text)


def _leaf(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def test_metric_points_by_exact_value(mirrors, downloaded, wandb_runs):
    cx, wb = mirrors
    _, runs = wandb_runs
    for w in "AB":
        rid = runs[w]["id"]
        folder = downloaded / "ent-y" / "proj-x" / rid
        written = sorted((p["metricName"], p["step"], (None if p["metricValue"] is None else float(p["metricValue"])), p["epoch"], p["timestamp"])
                         for f in sorted((folder / "metrics").glob("metric_*.jsonl")) for p in _jsonl(f))
        got = q(cx, "SELECT name, step, value, epoch, epoch_ms(timestamp) FROM metrics WHERE exp_id=? "
                    "ORDER BY ALL", f"cometx:ent-y/proj-x/{rid}")
        assert got == written
        assert any(name.startswith("system/") for name, *_ in got)     # the system metrics stream
        # the training metrics equal the direct fetch's, point by point
        sql = "SELECT name, step, value, epoch FROM metrics WHERE exp_id=? AND name IN ('loss', 'acc') ORDER BY ALL"
        direct = q(wb, sql, f"wandb:ent-y/proj-x/{rid}")
        if w == "A":
            assert q(cx, sql, f"cometx:ent-y/proj-x/{rid}") == direct and len(direct) == 10
            assert ("loss", 2, 1 / 3, 1) in direct
        else:
            # run B never logged `epoch`: cometx asks for rows holding loss, _step, _timestamp AND
            # epoch, W&B answers none, and cometx writes an empty metric file (docs/cometx.md)
            assert direct == [("loss", 0, 2.0, None), ("loss", 10, 1.0, None), ("loss", 20, 0.0, None)]
            assert q(cx, sql, f"cometx:ent-y/proj-x/{rid}") == []


def test_files_and_assets(mirrors, downloaded, wandb_runs):
    cx, wb = mirrors
    _, runs = wandb_runs
    for w in "AB":
        rid = runs[w]["id"]
        folder = downloaded / "ent-y" / "proj-x" / rid
        exp = f"cometx:ent-y/proj-x/{rid}"
        on_disk = {p.name: p.read_bytes() for p in (folder / "assets").rglob("*")
                   if p.is_file() and p.name != "assets_metadata.jsonl"}
        rows = q(cx, "SELECT file_name, object_id, size FROM assets WHERE exp_id=?", exp)
        stored = {name: cx.objects.get_bytes(obj) for name, obj, _ in rows}
        # cometx writes no fileSize for W&B files: the size is the file's
        assert [size for _, _, size in rows] == [len(stored[name]) for name, _, _ in rows]
        # every asset cometx wrote is in the mirror with its bytes (an image under its logged name)
        entries = {e["fileName"]: e for e in _jsonl(folder / "assets" / "assets_metadata.jsonl")}
        for name, data in on_disk.items():
            logged = (entries.get(name) or {}).get("logAsFileName") or name
            assert data in (stored.get(name), stored.get(logged)), (w, name, sorted(stored))
        # the run files the direct fetch has (assets and texts), byte for byte (by content id)
        wexp = f"wandb:ent-y/proj-x/{rid}"
        direct = {obj for (obj,) in q(wb, "SELECT object_id FROM assets WHERE exp_id=? AND "
                                          "(file_name='notes.txt' OR type='image')", wexp)}
        direct |= {obj for (obj,) in q(wb, "SELECT object_id FROM texts WHERE exp_id=? AND "
                                           "kind IN ('requirements', 'output')", wexp)}
        mine = {obj for (obj,) in q(cx, "SELECT object_id FROM assets WHERE exp_id=?", exp)}
        mine |= {obj for (obj,) in q(cx, "SELECT object_id FROM texts WHERE exp_id=?", exp)}
        assert direct and direct <= mine, (w, direct - mine)
        req = (folder / "run" / "requirements.txt").read_bytes()
        [(obj,)] = q(cx, "SELECT object_id FROM texts WHERE exp_id=? AND kind='requirements'", exp)
        assert cx.objects.get_bytes(obj).rstrip(b"\n") == req.rstrip(b"\n")
    out = downloaded / "ent-y" / "proj-x" / runs["A"]["id"] / "run" / "output.txt"
    [(obj,)] = q(cx, "SELECT object_id FROM texts WHERE exp_id=? AND kind='output'", f"cometx:ent-y/proj-x/{runs['A']['id']}")
    assert cx.objects.get_bytes(obj) == out.read_bytes() and b"hello stdout" in out.read_bytes()


def test_second_fetch_changes_nothing(mirrors, downloaded):
    cx, _ = mirrors
    r = CliRunner().invoke(main, ["fetch", "--from", "cometx", str(downloaded), "-q", "--mirror", str(cx.root)])
    assert r.exit_code == 0 and r.stdout.startswith("0 new, 0 changed, 2 unchanged"), r.output

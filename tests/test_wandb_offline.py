"""`fetch --from wandb <folder>`: offline runs written by the real wandb SDK → index."""
from __future__ import annotations

import math
import shutil

import pytest

from cometx_mirror.index.db import open_read
from cometx_mirror.sources import SourceError, get_normalizer
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch
from cometx_mirror.sources.options import FetchOptions


def fetch(mirror, path):
    return run_fetch(mirror, "wandb", str(path), FetchOptions())


def rows(mirror, sql, *params):
    with open_read(mirror.index_path) as con:
        return con.execute(sql, list(params)).fetchall()


@pytest.fixture(scope="module")
def fetched(wandb_runs, tmp_path_factory):
    wandb_dir, runs = wandb_runs
    mirror = Mirror.init(tmp_path_factory.mktemp("mirror"))
    result = fetch(mirror, wandb_dir)
    return mirror, runs, result


def exp_id(runs, which):
    return f"wandb:ent-y/proj-x/{runs[which]['id']}"


def test_runs_become_experiments(fetched):
    mirror, runs, result = fetched
    assert result.errors == [] and result.new == 2
    got = rows(mirror, "SELECT experiment_key, name, workspace, project, state, started_at IS NOT NULL, "
                       "ended_at >= started_at FROM experiments ORDER BY name")
    assert got == [(runs["A"]["id"], "first-run", "ent-y", "proj-x", "finished", True, True),
                   (runs["B"]["id"], "second-run", "ent-y", "proj-x", "finished", True, True)]
    assert rows(mirror, "SELECT tag FROM tags WHERE exp_id=? ORDER BY tag", exp_id(runs, "A")) == [("t1",), ("t2",)]


def test_config_becomes_flattened_params(fetched):
    mirror, runs, _ = fetched
    got = dict(rows(mirror, "SELECT name, value FROM params WHERE exp_id=?", exp_id(runs, "A")))
    assert got == {"lr": "0.01", "optimizer.name": "adam", "optimizer.betas": "[0.9, 0.99]",
                   "flag": "true", "late": "v"}
    got = dict(rows(mirror, "SELECT name, value FROM params WHERE exp_id=?", exp_id(runs, "B")))
    assert got == {"lr": "0.1", "layers": "[8, 4]"}


def test_history_becomes_metrics(fetched):
    mirror, runs, _ = fetched
    got = rows(mirror, "SELECT name, step, epoch, value, epoch_ms(timestamp) FROM metrics "
                       "WHERE exp_id=? AND name NOT LIKE 'sys.%' ORDER BY name, step", exp_id(runs, "A"))
    by_name = {}
    for name, step, epoch, value, ts in got:
        by_name.setdefault(name, []).append((step, epoch, value))
        assert ts > 1_600_000_000_000          # _timestamp (s) became epoch ms
    assert by_name["loss"] == [(i, i // 2, 1.0 / (i + 1)) for i in range(5)]
    assert [v for _, _, v in by_name["acc"]] == pytest.approx([i * 0.1 for i in range(5)])
    assert by_name["train.f1"] == [(i, i // 2, i * 0.25) for i in range(5)]
    assert [s for s, _, _ in by_name["epoch"]] == list(range(5))
    got = rows(mirror, "SELECT step, value FROM metrics WHERE exp_id=? AND name='loss' ORDER BY step",
               exp_id(runs, "B"))
    assert got == [(0, 2.0), (10, 1.0), (20, 0.0)]


def test_system_metrics(fetched):
    mirror, runs, _ = fetched
    got = rows(mirror, "SELECT count(*), count(timestamp), count(step) FROM metrics "
                       "WHERE exp_id=? AND name LIKE 'sys.%'", exp_id(runs, "A"))
    assert got[0][0] > 0 and got[0][1] == got[0][0] and got[0][2] == 0


def test_summary_and_run_fields_become_others(fetched):
    mirror, runs, _ = fetched
    got = dict(rows(mirror, "SELECT name, value FROM others WHERE exp_id=?", exp_id(runs, "A")))
    assert got["best"] == "0.99" and got["loss"] == "0.2" and got["train.f1"] == "1"   # wandb-core writes 1.0 as 1
    assert got["wandb.group"] == "g1" and got["wandb.job_type"] == "train" and got["wandb.notes"] == "some notes"
    assert not any(name.startswith("_") for name in got)


def test_files_become_assets_and_texts(fetched):
    mirror, runs, _ = fetched
    assets = {r[0]: r[1:] for r in rows(
        mirror, "SELECT file_name, type, step, size, object_id, metadata->>'caption' FROM assets WHERE exp_id=?",
        exp_id(runs, "A"))}
    image = next(k for k in assets if k.startswith("media/images/img_"))
    table = next(k for k in assets if k.startswith("media/table/tbl_"))
    assert assets[image][:2] == ("image", 5) and assets[image][4] == "black"
    assert assets[table][:2] == ("dataframe", 5)
    assert b'"columns"' in mirror.objects.get_bytes(assets[table][3])
    assert assets["notes.txt"][0] == "asset"                     # wandb.save() made a symlink: followed
    assert mirror.objects.get_bytes(assets["notes.txt"][3]) == b"saved file body\n"
    texts = dict(rows(mirror, "SELECT kind, content FROM texts WHERE exp_id=?", exp_id(runs, "A")))
    assert "hello stdout" in texts["output"]
    assert texts["notes"] == "some notes"
    assert "wandb==" in texts["requirements"]
    system = dict(rows(mirror, "SELECT name, value FROM system_details WHERE exp_id=?", exp_id(runs, "A")))
    assert "hostname" in system and "python_version" in system


def test_artifact_versions_and_aliases(fetched):
    mirror, runs, _ = fetched
    got = rows(mirror, "SELECT version, aliases, experiment_key, metadata FROM artifact_versions "
                       "WHERE artifact='my-ds' ORDER BY version")
    assert [(v, sorted(a), k) for v, a, k, _ in got] == [("v0", ["best"], runs["A"]["id"]),
                                                         ("v1", ["latest"], runs["B"]["id"])]
    files = rows(mirror, "SELECT version, path, size, object_id, checksum FROM artifact_files "
                         "WHERE artifact='my-ds' ORDER BY version")
    assert [(v, p, s) for v, p, s, _, _ in files] == [("v0", "data.txt", 11), ("v1", "data.txt", 19)]
    assert mirror.objects.get_bytes(files[1][3]) == b"version two, longer"
    assert files[0][4].startswith("md5:")
    assert rows(mirror, "SELECT type FROM artifacts WHERE name='my-ds'") == [("dataset",)]


def test_refetch_stores_nothing_new(fetched, wandb_runs):
    mirror, runs, _ = fetched
    before = set(mirror.objects.ids())
    result = fetch(mirror, wandb_runs[0])
    assert result.unchanged == 2 and result.new == 0 and result.snapshots == []
    assert set(mirror.objects.ids()) == before
    result = fetch(mirror, runs["A"]["folder"])        # one run folder: same manifests
    assert result.unchanged == 1 and result.snapshots == []


def test_normalizers_are_deterministic(fetched):
    mirror, _, _ = fetched
    for snap in mirror.head_snapshots():
        for manifest_id in snap.manifests.values():
            manifest = mirror.get_json(manifest_id)
            normalize = get_normalizer(manifest["normalizer"])
            assert repr(normalize(mirror, manifest)) == repr(normalize(mirror, manifest))


def test_not_a_wandb_folder(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.txt").write_text("hi")
    mirror = Mirror.init(tmp_path / "m")
    with pytest.raises(SourceError, match="not a W&B folder"):
        fetch(mirror, tmp_path / "src")
    with pytest.raises(SourceError, match="no such"):
        fetch(mirror, tmp_path / "missing")


def test_corrupt_log_is_reported_and_others_fetched(wandb_runs, tmp_path):
    _, runs = wandb_runs
    copy = tmp_path / "wandb"
    for info in runs.values():
        shutil.copytree(info["folder"], copy / info["folder"].name, symlinks=True)
    bad = next((copy / runs["B"]["folder"].name).glob("run-*.wandb"))
    data = bytearray(bad.read_bytes())
    data[600] ^= 0xFF
    bad.write_bytes(bytes(data))
    mirror = Mirror.init(tmp_path / "m")
    result = fetch(mirror, copy)
    assert result.new == 1 and result.failed == 1
    assert len(result.errors) == 1 and bad.name in result.errors[0] and "at byte" in result.errors[0]
    assert rows(mirror, "SELECT experiment_key FROM experiments") == [(runs["A"]["id"],)]


def test_live_run_torn_tail(wandb_runs, tmp_path):
    _, runs = wandb_runs
    folder = tmp_path / runs["A"]["folder"].name
    shutil.copytree(runs["A"]["folder"], folder, symlinks=True)
    log = next(folder.glob("run-*.wandb"))
    data = log.read_bytes()
    log.write_bytes(data[:len(data) * 2 // 3])             # cut mid-record, as a live run's reader sees it
    mirror = Mirror.init(tmp_path / "m")
    result = fetch(mirror, folder)
    assert result.errors == [] and result.new == 1
    assert rows(mirror, "SELECT state FROM experiments") == [("running",)]
    assert not math.isnan(rows(mirror, "SELECT count(*) FROM metrics")[0][0])


# Tiny runs committed under tests/data/wandb-<version>/ (paths in wandb-metadata.json scrubbed to
# /home/user/proj; logs/ dropped). Each logged config {"lr", "opt": {"m"}}, three steps of loss and
# train.acc, summary["best"] and one print(); 0.19.11 with x_disable_stats, so no system metrics.
COMMITTED_RUNS = {
    # the legacy Python writer: `key` items, wandb-metadata.json, no output.log
    "0.17.9": dict(name="old-run", project="proj-old", params={"lr": "0.5", "opt.m": "0.9"},
                   loss=[3.0, 2.0, 1.0], acc=[0.0, 0.25, 0.5], best="1.5", last_loss="1.0",
                   output="old stdout\n", system={"hostname": '"vm"', "user": '"root"'}),
    # wandb-core: `nested_key` items, no wandb-summary.json/config.yaml, an empty output.log
    "0.19.11": dict(name="mid-run", project="proj-mid", params={"lr": "0.25", "opt.m": "0.8"},
                    loss=[4.0, 3.0, 2.0], acc=[0.0, 0.125, 0.25], best="2.5", last_loss="2",
                    output="mid stdout\n", system={"hostname": '"vm"', "python_version": '"CPython 3.11.7"'}),
}


@pytest.mark.parametrize("version", sorted(COMMITTED_RUNS))
def test_wandb_committed_old_writer(tmp_path, version):
    """A run written by an older wandb (see COMMITTED_RUNS) reads into the same model."""
    from pathlib import Path
    want = COMMITTED_RUNS[version]
    folder = Path(__file__).parent / "data" / f"wandb-{version}" / "wandb"
    mirror = Mirror.init(tmp_path / "m")
    result = fetch(mirror, folder)
    assert result.errors == [] and result.new == 1
    exp = rows(mirror, "SELECT exp_id, name, state, workspace, project FROM experiments")
    assert [e[1:] for e in exp] == [(want["name"], "finished", "ent-y", want["project"])]
    exp_id = exp[0][0]
    assert dict(rows(mirror, "SELECT name, value FROM params WHERE exp_id=?", exp_id)) == want["params"]
    got = rows(mirror, "SELECT name, step, value FROM metrics WHERE exp_id=? ORDER BY name, step", exp_id)
    assert got == ([("loss", i, v) for i, v in enumerate(want["loss"])]
                   + [("train.acc", i, v) for i, v in enumerate(want["acc"])])
    others = dict(rows(mirror, "SELECT name, value FROM others WHERE exp_id=?", exp_id))
    assert others["best"] == want["best"] and others["loss"] == want["last_loss"]
    assert not any(name.startswith("_") for name in others)
    texts = dict(rows(mirror, "SELECT kind, content FROM texts WHERE exp_id=?", exp_id))
    assert texts["output"] == want["output"]                 # from output records, not an empty/absent output.log
    system = dict(rows(mirror, "SELECT name, value FROM system_details WHERE exp_id=?", exp_id))
    assert {k: system.get(k) for k in want["system"]} == want["system"]


def test_broken_saved_file_link_is_not_an_error(wandb_runs, tmp_path):
    _, runs = wandb_runs
    folder = tmp_path / runs["A"]["folder"].name
    shutil.copytree(runs["A"]["folder"], folder, symlinks=True)
    link = folder / "files" / "notes.txt"
    link.unlink()
    link.symlink_to(tmp_path / "deleted-original.txt")
    mirror = Mirror.init(tmp_path / "m")
    result = fetch(mirror, folder)
    assert result.errors == [] and result.new == 1
    assert ("notes.txt",) not in rows(mirror, "SELECT file_name FROM assets")
    snap = mirror.snapshot(mirror.refs.get(next(mirror.refs.names())))
    manifest = mirror.get_json(next(m for label, m in snap.manifests.items() if label.startswith("experiment/")))
    assert manifest["missing_files"] == ["notes.txt"]

"""Damage is never spread, and the next fetch heals it.

Every read of an object verifies it before a byte leaves (cat, export, reindex,
push); a damaged object fails its entity with one line naming it, is moved into
quarantine/, and the next fetch downloads it again.  A fetch never replaces a
stored entity with less of it unless told to.
"""
from __future__ import annotations

import json
import os
import shutil
import tracemalloc

import duckdb
import pytest
from click.testing import CliRunner

from core_fixtures import KEY1, KEY2, filled, mirror  # noqa: F401
from push_fixtures import cli, differences, fetch, last_json, push
from cometx_mirror.cli import main
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.store.objects import CHUNK, HEADER, VERIFY_IN_MEMORY, ObjectError
from cometx_mirror.sync.fetch import run_fetch


def flip(m: Mirror, oid: str, at: int = -1) -> None:
    path = m.objects.path(oid)
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[at if at >= 0 else len(raw) + at] ^= 0x20
    path.write_bytes(bytes(raw))


def run(m, *args):
    root = m.root if isinstance(m, Mirror) else m
    return CliRunner().invoke(main, [*args, "--mirror", str(root)])


def one_line(result) -> str:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


def asset_object(m: Mirror, exp_key: str, file_name: str) -> str:
    con = duckdb.connect(str(m.root / "index.duckdb"), read_only=True)
    try:
        return con.execute("SELECT object_id FROM assets WHERE exp_id LIKE ? AND file_name = ? ORDER BY step "
                           "NULLS LAST LIMIT 1", [f"%{exp_key}", file_name]).fetchone()[0]
    finally:
        con.close()


# -- the store: verified before the first byte, bounded memory, quarantine ------------------

def test_a_large_damaged_object_fails_at_open_and_goes_to_quarantine(mirror):
    data = os.urandom(VERIFY_IN_MEMORY + 3 * CHUNK)          # streamed, not held: the two-pass path
    oid = mirror.objects.put_bytes(data)
    flip(mirror, oid)                                        # the very last byte
    with pytest.raises(ObjectError, match=f"{oid} is corrupt.*fetch"):
        mirror.objects.read_chunks(oid)                      # raised at the call: no chunk exists
    assert not mirror.objects.exists(oid)
    assert [p.name for p in mirror.objects.quarantined()] == [oid]      # moved aside, never deleted
    with pytest.raises(ObjectError, match="missing.*quarantine"):
        mirror.objects.open(oid)
    mirror.objects.put_bytes(data)                           # what the next fetch does
    assert b"".join(mirror.objects.read_chunks(oid)) == data


def test_verified_streaming_of_a_large_object_holds_little_memory(mirror):
    block = os.urandom(CHUNK)
    oid, size = mirror.objects.put_stream(block for _ in range(24))
    tracemalloc.start()
    try:
        n = sum(len(c) for c in mirror.objects.read_chunks(oid))
        reader = mirror.objects.open(oid)
        while reader.read(CHUNK):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == size == 24 * CHUNK
    assert peak < 6 * CHUNK, peak


# -- cat, export, reindex, verify ----------------------------------------------------------

def test_cat_of_a_damaged_asset_writes_nothing(filled):
    oid = asset_object(filled, KEY1, "weights.bin")
    flip(filled, oid, HEADER.size + 10)
    r = run(filled, "cat", "first", "weights.bin")
    assert r.stdout_bytes == b""
    line = one_line(r)
    assert oid in line and KEY1 in line and "corrupt" in line
    assert filled.objects.in_quarantine(oid)
    r = run(filled, "verify")          # structural only, yet the quarantined copy is reported
    assert r.exit_code == 1
    lines = [x for x in r.stderr.splitlines() if oid in x]
    assert len(lines) == 1, r.stderr
    assert f"experiment/ws/proj/{KEY1}" in lines[0] and "fetch" in lines[0]


def test_verify_read_data_names_the_experiment_and_says_fetch(filled):
    oid = asset_object(filled, KEY2, "a.txt")
    flip(filled, oid)
    r = run(filled, "verify", "--read-data")
    assert r.exit_code == 1
    lines = [x for x in r.stderr.splitlines() if oid in x]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: damaged object {oid} of coretest:experiment/ws/proj/{KEY2}")
    assert "cometx-mirror fetch" in lines[0]
    assert filled.objects.in_quarantine(oid) and not filled.objects.exists(oid)
    again = json.loads(run(filled, "verify", "--read-data", "--json").stdout)
    assert again["damaged"] == [oid] and again["ok"] is False      # still damage until a fetch heals it


def test_export_fails_the_damaged_experiment_and_writes_the_others(filled, tmp_path):
    oid = asset_object(filled, KEY1, "weights.bin")
    flip(filled, oid)
    out = tmp_path / "out"
    r = run(filled, "export", "ws", str(out))
    line = one_line(r)
    assert oid in line and KEY1 in line
    assert (out / "ws" / "proj" / KEY2 / "assets").is_dir()                   # the others went on
    assert (out / "ws" / "other" / "runthree" / "metadata.json").is_file()
    written = [p for p in (out / "ws" / "proj" / KEY1).rglob("*") if p.is_file()]
    assert not any(p.name.startswith("weights.bin") for p in written)        # no damaged bytes, no .part


def test_reindex_leaves_out_the_damaged_experiment_only(filled):
    metrics = filled.get_json(filled.current_manifests()[f"coretest:experiment/ws/proj/{KEY1}"])["metrics"]
    flip(filled, metrics["object"])
    r = run(filled, "reindex")
    line = one_line(r)
    assert metrics["object"] in line and f"experiment/ws/proj/{KEY1}" in line
    con = duckdb.connect(str(filled.root / "index.duckdb"), read_only=True)
    try:
        keys = sorted(k for (k,) in con.execute("SELECT experiment_key FROM experiments").fetchall())
        assert keys == sorted([KEY2, "runthree"])
        assert con.execute("SELECT count(*) FROM projects").fetchone()[0] == 2
    finally:
        con.close()


def test_verify_after_a_kill_during_ingest_is_a_note_not_an_error(mirror):
    from core_fixtures import fill
    import subprocess
    import sys
    from pathlib import Path
    script = ("import sys; sys.path.insert(0, sys.argv[2]); import core_fixtures; "
              "from cometx_mirror.store.mirror import Mirror; m = Mirror.open(sys.argv[1]); "
              "core_fixtures.fill(m)")
    proc = subprocess.run([sys.executable, "-c", script, str(mirror.root), str(Path(__file__).parent)],
                          env=dict(os.environ, COMETX_MIRROR_FAULT="after_index_entity:2"),
                          capture_output=True, timeout=120)
    assert proc.returncode == 137, proc.stderr
    r = run(mirror, "verify")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert "index is behind the refs" in r.stdout
    assert "first" in run(mirror, "ls", "ws/proj").stdout       # the read healed it
    assert "index is behind" not in run(mirror, "verify").stdout
    del fill


# -- push and fetch against real servers ---------------------------------------------------

def test_push_refuses_a_damaged_asset_and_the_next_fetch_heals_it(seeded, mirror_a, server_b, tmp_path):
    ws = seeded.workspace
    m = Mirror.open(mirror_a)
    oid = asset_object(m, seeded.keys[0], "notes.txt")
    flip(m, oid)
    r = push(server_b, mirror_a, ws, server_b.workspace, expect=1)
    got = last_json(r)
    assert (got["failed"], got["new"]) == (1, 1), got          # the other experiment went on
    assert len(got["errors"]) == 1 and oid in got["errors"][0] and seeded.keys[0] in got["errors"][0]
    with server_b.state.lock:                                   # no damaged bytes reached the destination
        names = [a.get("fileName") for assets in server_b.state.data.get("assets", {}).values()
                 for a in (assets if isinstance(assets, list) else [assets]) if isinstance(a, dict)]
    assert names.count("notes.txt") <= 2                        # only the healthy experiment's two
    again = last_json(push(server_b, mirror_a, ws, server_b.workspace, expect=1))
    assert again["failed"] == 1 and again["unchanged"] == 1    # not recorded as complete

    healed = last_json(fetch(seeded, mirror_a, ws))             # the next fetch downloads it again
    assert healed["failed"] == 0 and m.objects.exists(oid)
    assert cli("verify", "--read-data", "--mirror", mirror_a).exit_code == 0
    done = last_json(push(server_b, mirror_a, ws, server_b.workspace))
    assert done["failed"] == 0 and done["updated"] + done["new"] == 1
    back = tmp_path / "back"
    fetch(server_b, back, server_b.workspace)
    assert differences(mirror_a, back) == {}


def test_fetch_downloads_again_what_is_missing_or_damaged(seeded, mirror_a):
    ws = seeded.workspace
    m = Mirror.open(mirror_a)
    label = next(k for k in m.current_manifests() if k.startswith("comet:experiment/"))
    manifest = m.get_json(m.current_manifests()[label])
    gone = {"metrics": manifest["resources"]["metrics"]["object"],          # a JSON resource
            "html": manifest["texts"]["html"]["object"],                    # a text cut from one
            "asset": next(iter(manifest["assets"].values()))["object"]}
    os.chmod(m.objects.path(gone["metrics"]), 0o644)
    os.unlink(m.objects.path(gone["metrics"]))
    flip(m, gone["html"])
    flip(m, gone["asset"])
    assert cli("verify", "--read-data", "--mirror", mirror_a, expect=1).exit_code == 1   # quarantines
    result = last_json(fetch(seeded, mirror_a, ws))
    assert result["failed"] == 0 and result["changed"] == 0, result
    for what, oid in gone.items():
        assert m.objects.exists(oid), what
    r = cli("verify", "--read-data", "--mirror", mirror_a)
    assert "no errors were found" in r.stdout
    again = last_json(fetch(seeded, mirror_a, ws))              # and the unchanged fetch writes nothing
    assert again["objects_written"] == 0


# -- never replace with less ---------------------------------------------------------------

def test_a_torn_wandb_log_does_not_replace_a_finished_run(wandb_runs, tmp_path):
    _, runs = wandb_runs
    folder = tmp_path / runs["A"]["folder"].name
    shutil.copytree(runs["A"]["folder"], folder, symlinks=True)
    m = Mirror.init(tmp_path / "m")
    first = run_fetch(m, "wandb", str(folder), FetchOptions())
    assert first.new == 1 and not first.errors

    def state():
        con = duckdb.connect(str(m.root / "index.duckdb"), read_only=True)
        try:
            return (con.execute("SELECT state FROM experiments").fetchone()[0],
                    con.execute("SELECT count(*) FROM metrics").fetchone()[0])
        finally:
            con.close()
    before = state()
    assert before[0] == "finished" and before[1] > 0
    log = next(folder.glob("run-*.wandb"))
    log.write_bytes(log.read_bytes()[:len(log.read_bytes()) // 3])      # torn, as a half-copied folder
    kept = run_fetch(m, "wandb", str(folder), FetchOptions())
    assert (kept.changed, kept.failed) == (0, 1)
    assert len(kept.errors) == 1 and "kept the stored version" in kept.errors[0] and "--allow-shrink" in kept.errors[0]
    assert state() == before
    r = cli("fetch", "--from", "wandb", "--mirror", m.root, str(folder), expect=1)
    assert "kept the stored version" in r.stderr
    replaced = run_fetch(m, "wandb", str(folder), FetchOptions(allow_shrink=True))
    assert replaced.changed == 1 and not replaced.errors
    assert state()[1] < before[1]

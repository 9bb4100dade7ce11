"""Every read-side command through click's CliRunner, and bad input: one line, non-zero, no traceback."""
from __future__ import annotations

import csv
import io
import json
import re
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from core_fixtures import KEY1, KEY2, age, filled, mirror  # noqa: F401
from cometx_mirror.cli import main
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.store.objects import HEADER


def run(m, *args, ok=True):
    result = CliRunner().invoke(main, [*args, "--mirror", str(m.root if isinstance(m, Mirror) else m)])
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def assert_one_line_error(result, text: str):
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert text in lines[0], lines[0]


def test_lazy_command_table_names_every_command_and_its_module():
    import importlib
    import subprocess
    import sys
    from cometx_mirror.cli.base import COMMAND_MODULES
    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"cometx_mirror.cli.{module}")
    registered = {name: cmd.callback.__module__.rsplit(".", 1)[1] for name, cmd in main.commands.items()}
    assert registered == COMMAND_MODULES
    # a read command loads neither the network stack nor the server
    probe = ("import sys; from click.testing import CliRunner; from cometx_mirror.cli import main; "
             "CliRunner().invoke(main, ['log', '--help']); "
             "print(sorted(m for m in ('requests', 'cometx_mirror.server.app') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_reading_the_mirror_loads_no_numpy(filled):
    """ls, show and query never need NumPy, which costs about as long to load as they take to run."""
    import subprocess
    import sys
    probe = ("import sys; from cometx_mirror.cli import main\n"
             "for args in (['ls'], ['ls', 'ws/proj'], ['query', 'SELECT count(*) FROM metrics']):\n"
             "    assert main([*args, '--mirror', sys.argv[1]], standalone_mode=False) in (0, None)\n"
             "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, str(filled.root)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-1] == "False"


def test_init_creates_and_reopens(tmp_path):
    r = CliRunner().invoke(main, ["init", "--mirror", str(tmp_path / "m")])
    assert r.exit_code == 0 and "mirror ready" in r.stdout
    assert (tmp_path / "m" / "config.json").exists()
    assert CliRunner().invoke(main, ["init", "--mirror", str(tmp_path / "m")]).exit_code == 0


def test_mirror_from_environment(filled):
    r = CliRunner().invoke(main, ["ls"], env={"COMETX_MIRROR": str(filled.root)})
    assert r.exit_code == 0 and "ws" in r.stdout


def test_ls_walks_the_tree(filled):
    top = run(filled, "ls").stdout.splitlines()
    assert top[0].split() == ["source", "origin", "workspace", "projects", "experiments"]
    assert top[2].split() == ["coretest", "test", "ws", "2", "3"]
    assert [line.split()[2] for line in run(filled, "ls", "ws").stdout.splitlines()[2:]] == ["other", "proj"]
    exps = json.loads(run(filled, "ls", "ws/proj", "--json").stdout)
    assert [(e["key"], e["name"], e["metric_points"]) for e in exps] == [(KEY1, "first", 40), (KEY2, "second", 20)]
    for path in (f"ws/proj/{KEY1}", "ws/proj/first"):
        res = json.loads(run(filled, "ls", path, "--json").stdout)
        assert [(r["kind"], r["name"]) for r in res] == [
            ("text", "code"), ("text", "html"), ("text", "output"),
            ("asset", "weights.bin"), ("asset", "img.png")]


def test_query_table_csv_json(filled):
    sql = "SELECT name, count(*) AS n FROM metrics GROUP BY name ORDER BY name"
    table = run(filled, "query", sql).stdout.splitlines()
    assert table[0].split() == ["name", "n"] and table[2].split() == ["acc", "30"]
    rows = list(csv.reader(io.StringIO(run(filled, "query", sql, "--csv").stdout)))
    assert rows == [["name", "n"], ["acc", "30"], ["loss", "30"]]
    assert json.loads(run(filled, "query", sql, "--json").stdout) == [{"name": "acc", "n": 30},
                                                                        {"name": "loss", "n": 30}]
    assert json.loads(run(filled, "query", "SELECT created_at FROM experiments LIMIT 1", "--json").stdout) \
        == [{"created_at": "2023-11-14T22:13:20"}]


def test_query_streams_long_results_and_a_table_shows_the_first_thousand(filled):
    sql = "SELECT i, 'row ' || i AS label FROM range(25000) t(i)"      # more than one fetch batch
    r = run(filled, "query", sql)
    assert len(r.stdout.splitlines()) == 2 + 1000
    assert "the first 1,000 of 25,000 rows" in r.stderr
    lines = run(filled, "query", sql, "--csv").stdout.splitlines()
    assert len(lines) == 25001 and lines[-1] == "24999,row 24999"
    text = run(filled, "query", sql, "--json").stdout
    rows = json.loads(text)
    assert len(rows) == 25000 and rows[-1] == {"i": 24999, "label": "row 24999"}
    assert text == json.dumps(rows, indent=2, ensure_ascii=False) + "\n"   # as if dumped whole
    assert run(filled, "query", "SELECT 1 AS x WHERE false", "--json").stdout == "[]\n"


def test_a_query_failing_while_its_rows_stream_is_one_line(filled):
    sql = "SELECT CASE WHEN i < 20000 THEN i ELSE error('boom at ' || i) END FROM range(30000) t(i)"
    r = run(filled, "query", sql, "--csv", ok=False)
    assert_one_line_error(r, "boom at")


def test_log_lists_snapshots_newest_first(filled):
    from core_fixtures import commit
    commit(filled, "ws2", {"project/ws2/p": filled.current_manifests()["coretest:project/ws/proj"]})
    entries = json.loads(run(filled, "log", "--json").stdout)
    assert [e["ref"] for e in entries] == ["coretest/test/ws2", "coretest/test/ws"]
    assert entries[1]["manifests"] == 5
    text = run(filled, "log", "-n", "1").stdout.splitlines()
    assert len(text) == 1 and text[0].startswith(entries[0]["snapshot"])


def test_show_summarizes(filled):
    s = json.loads(run(filled, "show", "first", "--json").stdout)
    assert (s["experiment_key"], s["project"], s["params"], s["metric_names"], s["metric_points"],
            s["assets"], s["asset_bytes"], s["tags"]) == (KEY1, "proj", 2, 2, 40, 2, 3200, ["core", "test"])
    assert s["texts"] == ["code", "html", "output"]
    # a key prefix works too, and plain output has one "field  value" line per field
    assert re.search(r"^metric_points +40$", run(filled, "show", KEY1[:8]).stdout, re.M)


def test_cat_streams_texts_and_assets(filled):
    assert run(filled, "cat", "first", "html").stdout_bytes == b"<b>hi</b>"
    assert run(filled, "cat", f"ws/proj/{KEY1}", "output").stdout_bytes == b"line 1\nline 2\n"
    weights = run(filled, "cat", "first", "weights.bin").stdout_bytes
    assert len(weights) == 3000
    assert run(filled, "cat", "first", f"{KEY1[:8]}a1").stdout_bytes == weights   # by asset id


def test_cat_refuses_an_ambiguous_name_and_reports_a_corrupt_object(filled):
    # experiment "second" has a.txt and b.txt with equal bytes: one object, two names
    assert run(filled, "cat", "second", "a.txt").stdout_bytes == b"same"
    oid = json.loads(run(filled, "ls", "ws/proj/first", "--json").stdout)[1]["object_id"]
    path = filled.objects.path(oid)
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    assert_one_line_error(run(filled, "cat", "first", "html", ok=False), f"object {oid} is corrupt")


def test_export_writes_cometx_download_layout(filled, tmp_path):
    out = tmp_path / "out"
    r = run(filled, "export", "ws", str(out))
    assert "exported 3 experiments, 2 projects" in r.stdout
    exp = out / "ws" / "proj" / KEY1
    meta = json.loads((exp / "metadata.json").read_text())
    assert (meta["experimentKey"], meta["experimentName"], meta["startTimeMillis"], meta["tags"]) == \
        (KEY1, "first", 1_700_000_000_000, ["core", "test"])
    metrics = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 40
    assert metrics[0] == {"metricName": "loss", "metricValue": "0.0", "timestamp": 1_700_000_000_000,
                          "step": 0, "epoch": 0, "runContext": None, "offset": 0}
    params = json.loads((exp / "parameters.json").read_text())
    assert {p["name"]: p["valueCurrent"] for p in params} == {"batch": "32", "lr": "0.01"}
    others = [json.loads(line) for line in (exp / "others.jsonl").read_text().splitlines()]
    assert {"name": "Name", "valueCurrent": "first"}.items() <= others[0].items()
    assert "installedPackages" not in json.loads((exp / "system_details.json").read_text())
    assert (exp / "run" / "output.txt").read_bytes() == b"line 1\nline 2\n"
    assert (exp / "run" / "script.py").read_bytes() == b"print('hi')\n"
    assert (exp / "assets" / "html" / "experiment.html").read_bytes() == b"<b>hi</b>"
    assets = [json.loads(line) for line in (exp / "assets" / "assets_metadata.jsonl").read_text().splitlines()]
    for a in assets:
        data = (exp / "assets" / a["type"] / a.get("diskFileName", a["fileName"])).read_bytes()
        assert len(data) == a["fileSize"] and json.loads(a["metadata"])["i"] in (0, 1)
    assert json.loads((out / "ws" / "proj" / "project_metadata.json").read_text())["projectDescription"] == "a project"
    assert (out / "ws" / "proj" / "project_notes.md").read_text() == "project notes"
    assert not (out / "ws" / "other" / "project_notes.md").exists()
    # one experiment only
    r = run(filled, "export", "ws/proj/second", str(tmp_path / "one"))
    assert "exported 1 experiment," in r.stdout
    second = tmp_path / "one" / "ws" / "proj" / KEY2 / "assets" / "asset"
    assert sorted(p.name for p in second.iterdir()) == ["a.txt", "b.txt"]


def test_export_numbers_repeated_file_names_like_cometx(tmp_path):
    from core_fixtures import add_experiment, commit
    from cometx_mirror.store.mirror import Mirror
    m = Mirror.init(tmp_path / "m")
    mid = add_experiment(m, "w", "p", "k1", assets={"x.bin": b"1"})
    manifest = m.get_json(mid)
    manifest["assets"].append(dict(manifest["assets"][0], asset_id="k1a9", type="image"))
    commit(m, "w", {"experiment/w/p/k1": m.put_json(manifest)})
    run(m, "export", "w/p/k1", str(tmp_path / "o"))
    assets = tmp_path / "o" / "w" / "p" / "k1" / "assets"
    assert (assets / "asset" / "x.bin").exists() and (assets / "image" / "x_1.bin").exists()


def _flip_a_byte(mirror, oid):
    path = mirror.objects.path(oid)
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[HEADER.size + 7] ^= 0x10
    path.write_bytes(bytes(raw))


def test_verify_clean_and_damaged(filled):
    r = run(filled, "verify", "--read-data")
    assert "no errors were found" in r.stdout
    oid = json.loads(run(filled, "ls", "ws/proj/first", "--json").stdout)[3]["object_id"]
    _flip_a_byte(filled, oid)
    assert run(filled, "verify").exit_code == 0             # structure is intact
    r = run(filled, "verify", "--read-data", ok=False)
    assert r.exit_code == 1
    assert f"error: damaged object {oid}" in r.stderr
    report = json.loads(run(filled, "verify", "--read-data", "--json", ok=False).stdout)
    assert report["damaged"] == [oid] and report["ok"] is False


def test_verify_read_data_subset_slices_cover_the_store_once(filled):
    total = sum(1 for _ in filled.objects.ids())
    damaged = json.loads(run(filled, "ls", "ws/proj/first", "--json").stdout)[3]["object_id"]
    _flip_a_byte(filled, damaged)
    read, caught = 0, []
    for n in (1, 2, 3):
        report = json.loads(run(filled, "verify", "--read-data-subset", f"{n}/3", "--json", ok=None).stdout)
        read += report["objects_checked"] + len(report["damaged"])
        caught += report["damaged"]
    assert read == total and caught == [damaged]     # each object in exactly one slice
    sample = json.loads(run(filled, "verify", "--read-data-subset", "100%", "--json", ok=None).stdout)
    assert sample["damaged"] == [damaged]
    for bad in ("0/3", "4/3", "half", "0%"):
        r = run(filled, "verify", "--read-data-subset", bad, ok=False)
        assert r.exit_code == 2 and "bad subset" in r.stderr


def test_gc_dry_run_then_sweep(filled):
    old = filled.objects.put_bytes(b"orphan" * 100)
    age(filled.objects.path(old))
    assert "would remove 1 unreferenced object (" in run(filled, "gc", "--dry-run").stdout
    assert filled.objects.exists(old)
    assert "removed 1 unreferenced object (" in run(filled, "gc").stdout
    assert not filled.objects.exists(old)
    young = filled.objects.put_bytes(b"young orphan")
    assert "removed 0" in run(filled, "gc").stdout and filled.objects.exists(young)
    assert "removed 1" in run(filled, "gc", "--grace", "0").stdout


def test_reindex(filled):
    assert run(filled, "reindex").stdout.strip() == "reindexed 5 entities"
    assert "first" in run(filled, "ls", "ws/proj").stdout


# -- bad input ---------------------------------------------------------------------

def test_missing_mirror(tmp_path):
    for cmd in (["ls"], ["query", "SELECT 1"], ["log"], ["show", "x"], ["cat", "x", "y"], ["verify"],
                ["gc"], ["reindex"], ["export", "ws", str(tmp_path / "o")]):
        assert_one_line_error(run(tmp_path / "nothing", *cmd, ok=False), "no mirror at")


def test_unwritable_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    assert_one_line_error(run(blocker / "m", "init", ok=False), "cannot create a mirror")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        r = run(ro / "m", "init", ok=False)
        if os.geteuid() != 0:            # root writes anywhere; the file case above covers it
            assert_one_line_error(r, "cannot create a mirror")
    finally:
        os.chmod(ro, 0o700)


def test_export_into_an_unwritable_place(filled, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run(filled, "export", "ws", str(blocker / "out"), ok=False), str(blocker))


@pytest.mark.parametrize("args,text", [
    (["ls", "nows"], "no workspace 'nows'"),
    (["ls", "ws/noproj"], "no project ws/noproj"),
    (["ls", "ws/proj/noexp"], "no experiment 'ws/proj/noexp'"),
    (["show", "nothing-like-it"], "no experiment"),
    (["cat", "first", "nope.bin"], "no resource or asset 'nope.bin'"),
    (["export", "nows", "out"], "nothing at nows"),
])
def test_unknown_paths(filled, args, text):
    assert_one_line_error(run(filled, *args, ok=False), text)


@pytest.mark.parametrize("sql,text", [
    ("SELEKT 1", "bad SQL"),
    ("SELECT * FROM no_such_table", "query failed: Catalog Error"),
    ("DELETE FROM metrics", "refused: query is read-only, and this is a DELETE statement"),
    ("DROP TABLE metrics", "DROP statement"),
    ("INSERT INTO tags VALUES ('x', 'y')", "INSERT statement"),
    ("COPY (SELECT 1) TO 'leak.csv'", "COPY statement"),
    ("COPY metrics TO 'leak.parquet'", "COPY statement"),
    ("ATTACH 'other.db'", "ATTACH statement"),
    ("INSTALL httpfs", "LOAD statement"),
    ("SELECT 1; DELETE FROM metrics", "exactly one statement"),
    ("SELECT * FROM read_csv('/etc/hostname')", "disabled by configuration"),
])
def test_query_refuses_writes_and_reports_bad_sql(filled, sql, text):
    assert_one_line_error(run(filled, "query", sql, ok=False), text)
    assert not Path("leak.csv").exists()
    assert "40" in run(filled, "query", "SELECT count(*) FROM metrics WHERE exp_id LIKE '%" + KEY1 + "'").stdout


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_missing_or_corrupt_index_is_rebuilt(filled, damage):
    if damage == "missing":
        filled.index_path.unlink()
    else:
        filled.index_path.write_bytes(b"\0garbage" * 1000)
    assert json.loads(run(filled, "query", "SELECT count(*) AS n FROM experiments", "--json").stdout) == [{"n": 3}]


def test_second_writer_gets_one_line(filled):
    with filled.write_lock("fetch comet"):
        assert_one_line_error(run(filled, "gc", ok=False), "the mirror is busy: fetch comet (pid")
        assert_one_line_error(run(filled, "reindex", ok=False), "holds its write lock")
        assert run(filled, "ls").exit_code == 0           # readers still read


def test_gc_refuses_on_a_damaged_store(filled):
    oid = json.loads(run(filled, "ls", "ws/proj/first", "--json").stdout)[3]["object_id"]
    os.chmod(filled.objects.path(oid), 0o644)
    filled.objects.path(oid).unlink()
    assert_one_line_error(run(filled, "gc", ok=False), "refusing to gc")


def test_export_takes_each_projects_own_latest_artifact_version(filled, tmp_path):
    # W&B artifacts belong to a project: "model" in p1 and "model" in p2 are two artifacts
    from core_fixtures import commit

    def artifact(project, versions):
        return filled.put_json({"type": "artifact", "normalizer": "coretest-artifact/1", "source": "coretest",
                                "workspace": "ws", "project": project, "name": "model", "versions": [
                                    {"version": v, "created_at": t, "files": [{
                                        "object": filled.objects.put_bytes(path.encode()), "size": len(path),
                                        "path": path}]} for v, t, path in versions]})
    labels = {k.split(":", 1)[1]: v for k, v in filled.current_manifests().items()}
    labels["artifact/ws/p1/model"] = artifact("p1", [("v1", 1, "p1-v1.bin"), ("v2", 2, "p1-v2.bin")])
    labels["artifact/ws/p2/model"] = artifact("p2", [("v1", 5, "p2-v1.bin")])
    commit(filled, "ws", labels)
    run(filled, "export", "ws/artifacts/model", str(tmp_path / "o"))
    got = sorted(p.name for p in (tmp_path / "o" / "ws" / "artifacts" / "model").iterdir())
    assert got == ["p1-v2.bin", "p2-v1.bin"]      # not p1's v1, which shares p2's latest version name


def test_bad_grace(filled):
    r = run(filled, "gc", "--grace", "soon", ok=False)
    assert r.exit_code == 2 and "bad duration" in r.stderr


def test_workspace_entities_list_and_export(filled, tmp_path):
    from core_fixtures import add_workspace_entities, commit
    labels = {k.split(":", 1)[1]: v for k, v in filled.current_manifests().items()}
    labels.update(add_workspace_entities(filled, "ws"))
    commit(filled, "ws", labels)
    names = [r["project"] for r in json.loads(run(filled, "ls", "ws", "--json").stdout)]
    assert names == ["other", "proj", "artifacts/ds", "model-registry/net", "panels/My panel"]
    run(filled, "export", "ws", str(tmp_path / "o"))
    ws = tmp_path / "o" / "ws"
    assert (ws / "artifacts" / "ds" / "data" / "train.csv").read_bytes() == b"v2 rows"   # latest version
    assert (ws / "artifacts" / "ds" / "meta.json").exists()
    assert (ws / "model-registry" / "net" / "model" / "weights.h5").read_bytes() == b"W" * 100
    assert (ws / "model-registry" / "net" / "evil.txt").exists()            # '..' cannot escape
    assert not (ws / "model-registry" / "evil.txt").exists()
    assert (ws / "panels" / "panel-p1.zip").read_bytes()[:2] == b"PK"
    assert (ws / "proj" / KEY1 / "metadata.json").exists()
    r = run(filled, "export", "ws/artifacts/ds", str(tmp_path / "a"))
    assert "2 files" in r.stdout
    assert sorted(p.name for p in (tmp_path / "a" / "ws").iterdir()) == ["artifacts"]
    assert run(filled, "verify", "--read-data").exit_code == 0

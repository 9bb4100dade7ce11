"""export-index: the index as Parquet, read in place by DuckDB, pyarrow and Polars.

A small mirror (three projects, one with a name that needs escaping in a folder) is
exported to a folder and to a bucket on moto's loopback server; every table read
back from the Parquet files equals the index, a filter on one project reads only
its files, and a second export writes nothing, or only the partition of the one
project that grew.
"""
from __future__ import annotations

import json
import math

import duckdb
import pytest
from click.testing import CliRunner

from cometx_mirror.cli import main
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import export_index as X
from core_fixtures import add_experiment, add_project, commit, fill

ODD = "odd name=1%é"       # a space, "=", "%" and a non-ASCII letter must survive the folder name


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def _grow(m: Mirror, labels: dict, project: str, key: str) -> dict:
    labels = dict(labels)
    labels[f"experiment/ws/{project}/{key}"] = add_experiment(m, "ws", project, key, name=key, n_points=12,
                                                              assets={})
    commit(m, "ws", labels)
    return labels


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A mirror with metrics in three projects, exported once to a folder."""
    root = tmp_path_factory.mktemp("export")
    m = Mirror.init(root / "m")
    labels = fill(m)
    labels[f"project/ws/{ODD}"] = add_project(m, "ws", ODD)
    labels = _grow(m, labels, "other", "otherrun")
    labels = _grow(m, labels, ODD, "oddrun")
    r = cli("export-index", str(root / "out"), "--mirror", str(m.root))
    assert r.exit_code == 0, r.output
    return m, labels, root / "out"


def _index_rows(m: Mirror, table: str) -> list:
    con = duckdb.connect(str(m.index_path), read_only=True)
    try:
        return _canon(con.execute(f'SELECT * FROM "{table}"').fetchall())
    finally:
        con.close()


def _canon(rows) -> list:
    """Rows sorted, NaN made comparable (NaN != NaN)."""
    fix = lambda v: "NaN" if isinstance(v, float) and math.isnan(v) else v   # noqa: E731
    return sorted((tuple(fix(v) for v in row) for row in rows), key=repr)


METRIC_COLS = "exp_id, name, step, epoch, timestamp, value, context, text"


def test_every_table_reads_back_equal_in_duckdb_pyarrow_and_polars(exported):
    import polars as pl
    import pyarrow.dataset as ds
    m, _, out = exported
    manifest = json.loads((out / X.MANIFEST).read_text())
    tables = {p["table"] for p in manifest["parts"]}
    assert {"experiments", "params", "metrics", "assets", "snapshots", "workspaces"} <= tables
    for table in tables - {"metrics"}:
        got = duckdb.sql(f"SELECT * FROM read_parquet('{out}/{table}/*.parquet')").fetchall()
        assert _canon(got) == _index_rows(m, table), table
    expected = _index_rows(m, "metrics")
    assert len({r[0] for r in expected}) == 4       # four runs with points, in three projects
    glob = f"{out}/metrics/**/*.parquet"
    in_duckdb = duckdb.sql(f"SELECT {METRIC_COLS} FROM read_parquet('{glob}', hive_partitioning = true)")
    assert _canon(in_duckdb.fetchall()) == expected
    arrow = ds.dataset(out / "metrics", format="parquet", partitioning="hive").to_table()
    assert _canon(zip(*[arrow[c].to_pylist() for c in METRIC_COLS.split(", ")])) == expected
    polars = pl.scan_parquet(glob, hive_partitioning=True).collect()
    assert _canon(polars.select(METRIC_COLS.split(", ")).iter_rows()) == expected
    # the partition columns decode back to the experiments' own values, escapes and all
    by_project = pl.scan_parquet(glob, hive_partitioning=True).filter(pl.col("project") == ODD).collect()
    assert set(by_project["exp_id"]) == {f"coretest:ws/{ODD}/oddrun"}


def test_a_filter_on_one_project_reads_only_its_files(exported, tmp_path):
    import shutil

    import pyarrow.dataset as ds
    _, _, out = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    d = ds.dataset(copy / "metrics", format="parquet", partitioning="hive")
    files = [f.path for f in d.get_fragments(filter=ds.field("project") == "proj")]
    assert files and all("/project=proj/" in f for f in files)
    # DuckDB prunes by the folder names before it opens a file: spoil every other
    # project's files and the filtered query still answers, the unfiltered one cannot.
    # (It reads the schema from the first file in name order, so the project kept is
    # the one whose folder sorts first.)
    first = sorted((copy / "metrics").rglob("*.parquet"))[0]
    assert f"project={X._encode(ODD)}" in str(first)
    for f in (copy / "metrics").rglob("*.parquet"):
        if f != first:
            f.chmod(0o600)
            f.write_bytes(b"not parquet")
    glob = f"{copy}/metrics/**/*.parquet"
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true) "
                   f"WHERE project = '{ODD}'").fetchall()[0][0]
    assert n == 12
    with pytest.raises(duckdb.Error):
        duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()


def test_a_second_export_writes_only_what_changed(exported):
    m, labels, out = exported
    dest = str(out)
    stamp = (out / X.MANIFEST).stat().st_mtime_ns
    again = X.export_index(m, dest)
    assert again.written == [] and again.removed == 0 and again.unchanged > 0
    assert (out / X.MANIFEST).stat().st_mtime_ns == stamp        # not even the manifest
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in (out / "metrics").rglob("*.parquet")}
    _grow(m, labels, "proj", "projrun")
    grown = X.export_index(m, dest)
    metric_files = [k for k in grown.written if k.startswith("metrics/")]
    assert len(metric_files) == 1 and "/project=proj/" in metric_files[0], grown.written
    assert grown.removed >= 1          # the grown partition's old file, and old table files
    after = {p.relative_to(out): p.stat().st_mtime_ns for p in (out / "metrics").rglob("*.parquet")}
    untouched = {k: v for k, v in before.items() if "project=proj" not in str(k)}
    assert untouched and all(after.get(k) == v for k, v in untouched.items())
    assert len(after) == len(before)     # the old file of the grown partition is gone
    glob = f"{out}/metrics/**/*.parquet"
    got = duckdb.sql(f"SELECT {METRIC_COLS} FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()
    assert _canon(got) == _index_rows(m, "metrics")
    m2 = json.loads((out / X.MANIFEST).read_text())
    named = {f for p in m2["parts"] for f in p["files"]}
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*.parquet")}
    assert named == on_disk


def test_export_into_a_bucket_is_read_in_place(exported, s3_env):
    from pyarrow import fs
    import pyarrow.dataset as ds
    m, _, _ = exported
    bucket = s3_env.new_bucket()
    r = cli("export-index", f"s3://{bucket}/idx", "--mirror", str(m.root))
    assert r.exit_code == 0 and f"to s3://{bucket}/idx" in r.stdout, r.output
    s3 = fs.S3FileSystem(endpoint_override=s3_env.endpoint, scheme="http", access_key="testing",
                         secret_key="testing-secret", region="us-east-1")
    d = ds.dataset(f"{bucket}/idx/metrics", format="parquet", partitioning="hive", filesystem=s3)
    arrow = d.to_table()
    assert _canon(zip(*[arrow[c].to_pylist() for c in METRIC_COLS.split(", ")])) == _index_rows(m, "metrics")
    keys = s3_env.keys(bucket, "idx/")
    assert "idx/_manifest.json" in keys and any(k.startswith("idx/experiments/") for k in keys)
    r = cli("export-index", f"s3://{bucket}/idx", "--mirror", str(m.root))
    assert r.exit_code == 0 and "wrote 0 files" in r.stdout, r.output
    assert s3_env.keys(bucket, "idx/") == keys


def test_a_folder_that_is_not_an_export_is_refused(exported, tmp_path):
    m, _, _ = exported
    (tmp_path / "notes.txt").write_text("mine")
    r = cli("export-index", str(tmp_path), "--mirror", str(m.root))
    assert r.exit_code == 1 and "is not empty and holds no index export" in r.output, r.output
    assert "Traceback" not in r.output and (tmp_path / "notes.txt").read_text() == "mine"

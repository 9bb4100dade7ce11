"""A scripted check that Spark reads an `export-index` folder in place (not a test: Spark needs
Java and pyspark, which the test extra leaves out).

    pip install pyspark      # Java 17+ on the PATH
    python bench/check_spark.py [--points 100000]

Generates metric points straight into an index (two projects, one with a name that needs
escaping in a folder), exports it, reads the metrics folder with Spark's Hive partition
discovery and compares per-project counts and sums, and every experiments row, with the
DuckDB index.  Prints OK or the difference and exits non-zero on a difference.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROJECTS = ("plain", "odd name=1%é")


def make_index(mirror, points: int) -> None:
    from cometx_mirror.index.db import open_write
    with open_write(mirror.index_path) as con:
        for i, project in enumerate(PROJECTS):
            con.execute("INSERT INTO experiments (exp_id, source, workspace, project, experiment_key, name) "
                        "VALUES (?, 'comet', 'ws', ?, ?, ?)", [f"comet:ws/{project}/k{i}", project, f"k{i}", f"run {i}"])
            con.execute("INSERT INTO metrics (exp_id, name, step, value, timestamp) "
                        "SELECT ?, ['loss', 'acc'][j % 2 + 1], j // 2, sin(j), TIMESTAMP '2026-01-01' + to_seconds(j) "
                        "FROM range(?) t(j)", [f"comet:ws/{project}/k{i}", points // len(PROJECTS)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    args = ap.parse_args()
    import duckdb
    from pyspark.sql import SparkSession
    from cometx_mirror.store.mirror import Mirror
    from cometx_mirror.sync.export_index import export_index
    work = Path(tempfile.mkdtemp(prefix="check-spark-"))
    try:
        mirror = Mirror.init(work / "m")
        make_index(mirror, args.points)
        dest = work / "parquet"
        export_index(mirror, str(dest))
        con = duckdb.connect(str(mirror.index_path), read_only=True)
        expected = sorted(con.execute(
            "SELECT e.project, count(*), round(sum(m.value), 6) FROM metrics m JOIN experiments e USING (exp_id) "
            "GROUP BY ALL").fetchall())
        expected_exps = sorted(con.execute("SELECT exp_id, project, name FROM experiments").fetchall())
        con.close()

        spark = SparkSession.builder.master("local[1]").appName("cometx-export-index").getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        metrics = spark.read.parquet(str(dest / "metrics"))        # source=/workspace=/project= folders
        got = sorted((r["project"], r["n"], round(r["total"], 6)) for r in
                     metrics.groupBy("project").agg({"*": "count", "value": "sum"})
                     .withColumnsRenamed({"count(1)": "n", "sum(value)": "total"}).collect())
        one = metrics.filter(metrics.project == PROJECTS[1]).count()
        exps = sorted(tuple(r) for r in spark.read.parquet(str(dest / "experiments"))
                      .select("exp_id", "project", "name").collect())
        spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = got == expected and exps == expected_exps and one == args.points // len(PROJECTS)
    print("OK: Spark reads the export equal to the index" if ok else
          f"DIFFERENT:\n  spark  {got}\n  index  {expected}\n  experiments {exps} vs {expected_exps}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()

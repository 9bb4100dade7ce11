"""Where one experiment's points cost memory on the index's side.

    python bench/bench_ingest.py [--points 1000000 4000000 10000000] [--fetch-points 100000 1000000]
                                 [--no-write-docs]

Ingest: one experiment of N points (2 metrics, step / timestamp / value as a long run logs
them), handed to index/ingest.py in metric_stream batches and written the way the indexer
writes it (one transaction, through index.db.open_write), into a fresh index, in a fresh
process.  Once as before the bound (DuckDB's default memory limit throughout), once with the
index's limit while the metric rows go in (index/db.bounded_memory), or with any other
limit given, so the rows show what the limit changes.
Reported: the process's peak RSS (/proc VmHWM) and what it was before the ingest began
(imports, DuckDB open), DuckDB's own count (duckdb_memory(), its largest sum seen after any
batch, and the BASE_TABLE share of it: blocks of the table kept loaded), and the bytes
DuckDB spilled to its temp folder.

Fetch: a W&B offline run of N points (bench/run_writers.py, 10 keys) fetched into a fresh
mirror (store + index) in a fresh process: its peak RSS from /proc.

The load average is recorded beside each figure (the machine is shared); memory is the
figure that matters here, and load does not change it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402

INGEST = r"""
import json, os, sys, time
from cometx_mirror import model
from cometx_mirror.index import ingest
from cometx_mirror.index.db import open_write
from cometx_mirror.metric_stream import BATCH_POINTS, MetricStream

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

import contextlib, types
from cometx_mirror.index import db
path, points, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if limit == "none":         # as before the bound: DuckDB's default limit throughout
    db.bounded_memory = lambda con: contextlib.nullcontext(types.SimpleNamespace(fit=lambda row_bytes: None))
elif limit != "ours":
    db.METRIC_MEMORY_LIMIT = int(limit) << 20
seen = {"duckdb": 0, "base_table": 0, "temp": 0}

def produce():
    done = 0
    while done < points:
        n = min(BATCH_POINTS, points - done)
        m = model.Metrics()
        r = range(done, done + n)
        m.name = ["loss" if i % 2 else "acc" for i in r]
        m.step = [i // 2 for i in r]
        m.epoch, m.context, m.text = [None] * n, [None] * n, [None] * n
        m.timestamp = [1_700_000_000_000 + i * 10 for i in r]
        m.value = [1.0 / (i + 1) for i in r]
        done += n
        yield m
        rows = con.execute("SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory()").fetchall()
        seen["duckdb"] = max(seen["duckdb"], sum(r[1] for r in rows))
        seen["base_table"] = max(seen["base_table"], sum(r[1] for r in rows if r[0] == "BASE_TABLE"))
        seen["temp"] = max(seen["temp"], sum(r[2] for r in rows))

exp = model.Experiment(source="bench", workspace="w", project="p", key="k")
exp.metrics = MetricStream(produce)
with open_write(path) as con:
    settings = {"limit": "DuckDB's default" if limit == "none" else f"{db.METRIC_MEMORY_LIMIT >> 20} MiB",
                "default": con.execute("SELECT current_setting('memory_limit')").fetchone()[0]}
    before = status("VmHWM:")
    t = time.perf_counter()
    con.execute("BEGIN")
    ingest.ingest_experiment(con, exp, "manifest")
    con.execute("COMMIT")
    seconds = time.perf_counter() - t
    rows = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
assert rows == points, rows
print(json.dumps({"before": before, "peak": status("VmHWM:"), "s": seconds, "settings": settings, **seen}))
"""

FETCH = r"""
import json, sys
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch
from cometx_mirror.sources.options import FetchOptions
result = run_fetch(Mirror.init(sys.argv[2]), sys.argv[3], sys.argv[1], FetchOptions())
assert not result.errors, result.errors
with open("/proc/self/status") as f:
    peak = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
print(json.dumps({"peak": peak}))
"""


def child(script: str, *args: str) -> dict:
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    out = json.loads(proc.stdout.split("\n")[-2])
    out["load"] = max(load, os.getloadavg()[0])
    return out


def ingest_row(tmp: Path, points: int, limit: str) -> dict:
    folder = tmp / f"ingest-{points}-{limit}"
    folder.mkdir()
    r = child(INGEST, str(folder / "index.duckdb"), str(points), limit)
    shutil.rmtree(folder)
    return {"points": points, **r}


def fetch_row(tmp: Path, points: int, metrics: int = 10) -> dict:
    from bench.run_writers import write_wandb_run
    src = tmp / f"wandb-{points}" / "wandb"
    write_wandb_run(src, points // metrics, metrics, run_id=f"i{points}")
    r = child(FETCH, str(src), str(tmp / f"mirror-{points}"), "wandb")
    shutil.rmtree(src.parent)
    shutil.rmtree(tmp / f"mirror-{points}")
    return {"points": points, **r}


def mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def report(ingests: list[dict], fetches: list[dict], note: str) -> str:
    lines = ["| points | memory limit while metric rows go in | peak RSS | before ingest | DuckDB's count (max) | of it BASE_TABLE "
             "| spilled | ingest s | load |", "|---|---|---|---|---|---|---|---|---|"]
    for r in ingests:
        s = r["settings"]
        which = s["limit"] + (f" ({s['default']})" if s["limit"] == "DuckDB's default" else "")
        lines.append(f"| {r['points']:,} | {which} | {mb(r['peak'])} | {mb(r['before'])} | {mb(r['duckdb'])} "
                     f"| {mb(r['base_table'])} | {mb(r['temp'])} | {r['s']:.1f} | {r['load']:.1f} |")
    if fetches:
        lines += ["", "| W&B offline run, fetched into a fresh mirror | peak RSS | load |", "|---|---|---|"]
        lines += [f"| {r['points']:,} points (10 keys) | {mb(r['peak'])} | {r['load']:.1f} |" for r in fetches]
    return ("One experiment of N points (2 metrics) ingested in batches of 65,536 in one transaction, into a "
            "fresh index, in a fresh process; peak RSS from /proc (VmHWM); DuckDB's count is the largest sum "
            "of duckdb_memory() seen after a batch; BASE_TABLE is the table's blocks DuckDB keeps loaded after "
            "writing them.\n\n" + "\n".join(lines) + ("\n\n" + note if note else ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, nargs="*", default=[1_000_000, 4_000_000, 10_000_000])
    ap.add_argument("--fetch-points", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--limits", nargs="+", default=["none", "ours"],
                    help="memory limits to compare: none (DuckDB's default, as before the bound), ours "
                         "(index.db.METRIC_MEMORY_LIMIT), or a DuckDB size such as 16MB")
    ap.add_argument("--note", default="")
    ap.add_argument("--no-write-docs", action="store_true")
    args = ap.parse_args()
    ingests, fetches = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for points in args.points:
            for limit in args.limits:
                ingests.append(ingest_row(Path(tmp), points, limit))
                print(json.dumps(ingests[-1]), flush=True)
        for points in args.fetch_points:
            fetches.append(fetch_row(Path(tmp), points))
            print(json.dumps(fetches[-1]), flush=True)
    body = report(ingests, fetches, args.note)
    print(body)
    if not args.no_write_docs:
        write_section("ingest-memory", "Index ingest memory (`bench/bench_ingest.py`)", body)


if __name__ == "__main__":
    main()

"""The mirror on object storage: fetch into a folder vs into a bucket, and the index as Parquet.

    python bench/bench_store_s3.py [--experiments 6] [--projects 2] [--steps 500] [--points 10000000]

1. Seeds a local Comet-compatible server through the real comet_ml SDK, starts moto's S3
   server on loopback in its own process (as a real store would be), then fetches every
   project into a local mirror and into a bucket mirror, first and again unchanged:
   wall time, the store operations the backend was asked for (by kind) and, for the
   bucket, the HTTP requests boto3 sent (by S3 operation).  Those counts decide whether
   packing small objects pays (docs/store.md).
2. Generates N metric points straight into an index (no server), exports it with
   export-index, and times the same queries on the DuckDB index and on the Parquet files.

Rewrites the "Object storage" section of docs/benchmarks.md (with the load average
beside each figure: the machine is shared).
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import disk_usage, write_section  # noqa: E402

BACKEND_OPS = ("stat", "read", "read_head", "reader", "put_file", "put_bytes", "list", "delete", "move",
               "load", "swap", "append", "lines")


def load() -> str:
    return "{:.1f}".format(os.getloadavg()[0])


# -- 1. fetch into a folder vs a bucket ---------------------------------------------------
def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto's server did not start")


def count_backend(mirror) -> collections.Counter:
    """Count each call the store makes on its backend (wrapping this one instance)."""
    calls = collections.Counter()
    backend = mirror.backend
    for name in BACKEND_OPS:
        inner = getattr(backend, name)

        def counted(*a, _inner=inner, _name=name, **k):
            calls[_name] += 1
            return _inner(*a, **k)
        setattr(backend, name, counted)
    return calls


def count_http(mirror) -> collections.Counter:
    ops = collections.Counter()
    client = getattr(mirror.backend, "client", None)
    if client is not None:
        client.meta.events.register("before-call.s3", lambda model, **_: ops.update([model.name]))
    return ops


def fetch_all(location: str, paths: list[str]) -> dict:
    from cometx_mirror.sources.options import FetchOptions
    from cometx_mirror.store.mirror import Mirror
    from cometx_mirror.sync.fetch import run_fetch
    mirror = Mirror.init(location)
    calls, http = count_backend(mirror), count_http(mirror)
    start = time.perf_counter()
    objects = 0
    for path in paths:
        result = run_fetch(mirror, "comet", path, FetchOptions(parallel=4))
        if result.failed:
            raise SystemExit(f"fetch {path} into {location} failed: {result.errors[:3]}")
        objects += result.objects_written
    return {"s": time.perf_counter() - start, "load": load(), "calls": calls, "http": http,
            "objects": objects, "requests": getattr(mirror.backend, "requests", 0)}


def bench_fetch(args, work: Path) -> tuple[list[str], dict]:
    from cometx_mirror.server.runner import start_server
    from cometx_mirror.server.seed import seed
    server = start_server()
    moto, endpoint = start_moto()
    saved = dict(os.environ)
    try:
        seeded = seed(server, size="large", experiments=args.experiments, projects=args.projects, steps=args.steps)
        ws = seeded["workspace"]
        paths = [f"{ws}/{p}" for p in sorted(seeded["projects"])]
        n_exp = sum(len(v) for v in seeded["projects"].values())
        os.environ.update(server.env(), HOME=str(work), COMET_ERROR_TRACKING_ENABLE="false",
                          COMET_DISABLE_ANNOUNCEMENT="true", AWS_ENDPOINT_URL=endpoint,
                          AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret",
                          AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                          COMETX_MIRROR_CACHE=str(work / "cache"))
        import boto3
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
        runs = {}
        for name, location in (("local", str(work / "local")), ("bucket", "s3://bench/mirror")):
            server.reset_counters()
            first = fetch_all(location, paths)
            first["source_requests"] = server.counters()["total"]
            server.reset_counters()
            again = fetch_all(location, paths)
            again["source_requests"] = server.counters()["total"]
            runs[name] = (first, again)
        local_bytes = disk_usage(work / "local" / "objects")
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()
        moto.kill()
        moto.wait()

    def ops(c: collections.Counter) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "none"

    lines = [
        f"Seeded through the real comet_ml SDK: {n_exp} experiments in {len(paths)} projects, {args.steps} "
        "points per metric, every asset type. Each project path fetched in turn (-j 4) into a local mirror and "
        "into a bucket on moto's S3 server (its own process on loopback, no added latency), first into an "
        f"empty mirror, then again with nothing changed. Objects stored: {runs['local'][0]['objects']} "
        f"({local_bytes / 1e6:.1f} MB on disk). \"Store calls\" are the backend operations the store asked "
        "for; \"HTTP\" is what boto3 sent to the bucket.",
        "",
        "| mirror | fetch | s | load | Comet requests | store calls | HTTP requests to the store |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (first, again) in runs.items():
        for label, r in (("first", first), ("unchanged", again)):
            total = sum(r["calls"].values())
            http = f"{r['requests']} ({ops(r['http'])})" if name == "bucket" else "–"
            lines.append(f"| {name} | {label} | {r['s']:.1f} | {r['load']} | {r['source_requests']} | "
                         f"{total} ({ops(r['calls'])}) | {http} |")
    first_b = runs["bucket"][0]
    lines += ["", f"Per experiment, first fetch into the bucket: {first_b['requests'] / n_exp:.0f} requests to "
              f"the store against {first_b['source_requests'] / n_exp:.0f} to Comet."]
    return lines, runs


# -- 2. the index as Parquet: query times at N points -------------------------------------
def make_index(mirror, points: int, experiments: int, projects: int) -> None:
    """N points over `experiments` runs in `projects` projects, straight into the index tables."""
    from cometx_mirror.index.db import open_write
    with open_write(mirror.index_path) as con:
        con.execute(f"""
            INSERT INTO experiments (exp_id, source, workspace, project, experiment_key, name, state)
            SELECT 'comet:ws/p' || (i % {projects}) || '/k' || i, 'comet', 'ws', 'p' || (i % {projects}),
                   'k' || i, 'run ' || i, 'finished'
            FROM range({experiments}) t(i)""")
        per = points // experiments
        con.execute(f"""
            INSERT INTO metrics (exp_id, name, step, epoch, timestamp, value, context)
            SELECT 'comet:ws/p' || (e % {projects}) || '/k' || e, ['loss', 'acc', 'lr', 'val_loss'][j % 4 + 1],
                   j // 4, j // 4000, TIMESTAMP '2026-01-01' + to_milliseconds(j), sin(j * 0.001) + e,
                   CASE WHEN j % 3 = 0 THEN NULL ELSE 'train' END
            FROM range({experiments}) a(e), range({per}) b(j)""")


def best(fn, runs: int = 3) -> tuple[float, str]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), load()


def bench_parquet(args, work: Path) -> list[str]:
    import duckdb
    from cometx_mirror.store.mirror import Mirror
    from cometx_mirror.sync.export_index import export_index
    mirror = Mirror.init(work / "big")
    t = time.perf_counter()
    make_index(mirror, args.points, args.big_experiments, args.big_projects)
    made_s = time.perf_counter() - t
    dest = work / "parquet"
    t = time.perf_counter()
    first = export_index(mirror, str(dest))
    first_s, first_load = time.perf_counter() - t, load()
    t = time.perf_counter()
    again = export_index(mirror, str(dest))
    again_s, again_load = time.perf_counter() - t, load()
    glob = f"read_parquet('{dest}/metrics/**/*.parquet', hive_partitioning = true)"
    queries = {
        "all points: GROUP BY name (count, avg, max step)":
            ("SELECT name, count(*), avg(value), max(step) FROM metrics GROUP BY name",
             f"SELECT name, count(*), avg(value), max(step) FROM {glob} GROUP BY name"),
        "one project: GROUP BY exp_id, name (last step)":
            ("SELECT m.exp_id, m.name, max(m.step) FROM metrics m JOIN experiments e USING (exp_id) "
             "WHERE e.project = 'p1' GROUP BY ALL",
             f"SELECT exp_id, name, max(step) FROM {glob} WHERE project = 'p1' GROUP BY ALL"),
        "one run, one metric: every point":
            ("SELECT step, value FROM metrics WHERE exp_id = 'comet:ws/p1/k1' AND name = 'loss'",
             f"SELECT step, value FROM {glob} WHERE project = 'p1' AND exp_id = 'comet:ws/p1/k1' "
             "AND name = 'loss'"),
    }
    index = duckdb.connect(str(mirror.index_path), read_only=True)
    bare = duckdb.connect()
    lines = [
        f"{args.points:,} points in {args.big_experiments} runs over {args.big_projects} projects, generated "
        f"straight into an index ({made_s:.0f} s; {mirror.index_path.stat().st_size / 1e6:.0f} MB), exported "
        f"with `export-index` into a folder: {first_s:.1f} s (load {first_load}), "
        f"{first.written_bytes / 1e6:.0f} MB in {len(first.written)} files; the export again with nothing "
        f"changed: {again_s:.1f} s (load {again_load}), {len(again.written)} files written. Each query's best "
        "of 3, in one DuckDB process (2 cores shared).",
        "",
        "| query | DuckDB index: s | load | Parquet (DuckDB, in place): s | load |",
        "|---|---|---|---|---|",
    ]
    for title, (on_index, on_parquet) in queries.items():
        a, la = best(lambda: index.execute(on_index).fetchall())
        b, lb = best(lambda: bare.execute(on_parquet).fetchall())
        lines.append(f"| {title} | {a:.3f} | {la} | {b:.3f} | {lb} |")
    index.close()
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=6, help="experiments per project (fetch part)")
    ap.add_argument("--projects", type=int, default=2)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--points", type=int, default=10_000_000, help="metric points (Parquet part)")
    ap.add_argument("--big-experiments", type=int, default=200)
    ap.add_argument("--big-projects", type=int, default=10)
    ap.add_argument("--skip-fetch", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    try:
        lines = []
        if not args.skip_fetch:
            fetch_lines, _ = bench_fetch(args, work)
            lines += ["### Fetch into a folder vs a bucket", "", *fetch_lines, ""]
        lines += ["### The index as Parquet", "", *bench_parquet(args, work)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("store-s3", "Object storage (`bench/bench_store_s3.py`)", text)


if __name__ == "__main__":
    main()

"""Offline readers on long runs: fetch time, points/s, peak memory, and the parse-only floor.

    python bench/bench_readers.py [--points 100000 1000000] [--metrics 10]

Writes W&B runs of N points (N / metrics history rows × `metrics` keys, plus the
summary record wandb-core writes beside each row) with bench/run_writers.py, then in
a fresh subprocess each: fetches the run into an empty mirror (store + index), and,
separately, only frames the log and decodes every record and every value (the
floor no reader can beat).  Peak memory is the child's maximum RSS.  Prints a table
and rewrites the "Offline readers" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bench.run_writers import write_wandb_run  # noqa: E402

FETCH = """
import sys, time
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch
from cometx_mirror.sources.options import FetchOptions
t = time.perf_counter()
result = run_fetch(Mirror.init(sys.argv[2]), "wandb", sys.argv[1], FetchOptions())
assert not result.errors, result.errors
print(time.perf_counter() - t)
"""

FLOOR = """
import glob, sys, time, json
t = time.perf_counter()
from cometx_mirror.sources.wandb.records import iter_payloads
from wandb.proto import wandb_internal_pb2 as pb
buf = open(glob.glob(sys.argv[1] + "/*/run-*.wandb")[0], "rb").read()
values = 0
for _, payload in iter_payloads(buf):
    rec = pb.Record()
    rec.ParseFromString(payload)
    if rec.WhichOneof("record_type") == "history":
        for it in rec.history.item:
            json.loads(it.value_json)
            values += 1
print(time.perf_counter() - t)
"""


def child(script: str, *args: str) -> tuple[float, int]:
    """(seconds the child reports, its peak RSS in bytes), each in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest of any child so far: measure in rising order of size
    return float(done.stdout.split()[-1]), max(peak, before) * 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--metrics", type=int, default=10)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for points in sorted(args.points):
            src = Path(tmp) / f"src-{points}" / "wandb"
            run_dir = write_wandb_run(src, points // args.metrics, args.metrics, run_id=f"b{points}")
            size = sum(f.stat().st_size for f in run_dir.glob("run-*.wandb"))
            floor, _ = child(FLOOR, str(src))
            fetch, peak = child(FETCH, str(src), str(Path(tmp) / f"mirror-{points}"))
            rows.append({"points": points, "mb": size / 1e6, "fetch": fetch, "floor": floor, "peak": peak})
            print(json.dumps(rows[-1]))
    table = ["| run | log | fetch | points/s | parse-only floor | fetch / floor | peak memory |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| W&B offline, {r['points']:,} points ({r['points'] // args.metrics:,} rows × "
                     f"{args.metrics}) | {r['mb']:.0f} MB | {r['fetch']:.1f} s | {r['points'] / r['fetch']:,.0f} | "
                     f"{r['floor']:.1f} s | {r['fetch'] / r['floor']:.1f}× | {r['peak'] / 1e6:.0f} MB |")
    body = ("Each run written by `bench/run_writers.py` in wandb-core's framing (a summary record beside each "
            "history row); fetch = store the folder and index every point into a fresh mirror, in a fresh "
            "process; floor = framing plus protobuf and JSON decode of every record and value, nothing else; "
            "peak memory = the process's maximum RSS.\n\n" + "\n".join(table))
    write_section("readers", "Offline readers (`bench/bench_readers.py`)", body)
    print("\n".join(table))


if __name__ == "__main__":
    main()

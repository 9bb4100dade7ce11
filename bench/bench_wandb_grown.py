"""A grown W&B offline run: what the second fetch reads, against a fresh fetch of the whole log.

    python bench/bench_wandb_grown.py [--points 1000000] [--metrics 10] [--grown 0.1]

Writes a run with bench/run_writers.py, cuts its log to (1 - grown) of its size (a live
run's log as the last fetch saw it), fetches that into a mirror, puts the whole log back
and fetches again; then fetches the whole log into a fresh mirror.  For both, in one fresh
process each: the bytes the fetch's fold read (the record reader's own count), the bytes
the fetch stored as new objects, and the CPU seconds of the fetch alone (the imports and
the first fetch not counted).  Rewrites the "W&B grown run" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bench.run_writers import write_wandb_run  # noqa: E402

CHILD = """
import glob, json, os, shutil, sys, time
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.sources.wandb import log_parts, offline
src, mirror_dir, whole, cut = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
log = glob.glob(src + "/*/run-*.wandb")[0]
read = []
real = offline.fold
def counting(*args, **kwargs):
    out = real(*args, **kwargs)
    read.append(out.bytes_read)
    return out
offline.fold = counting
indexed = [0]
real_read = log_parts._Concatenated._read_parts
def counting_read(self, n=-1):
    data = real_read(self, n)
    indexed[0] += len(data)
    return data
log_parts._Concatenated._read_parts = counting_read
from cometx_mirror.sources.wandb import history_bulk, record_shapes, records
by_shape, decoded = [0], [0]
real_shape_read, real_decode = record_shapes.HistoryShape.read, records._decode
def counting_shape_read(self, payload):
    got = real_shape_read(self, payload)
    by_shape[0] += got is not None
    return got
real_pieces = history_bulk.ChunkReader.pieces
def counting_pieces(self, chunk):
    by_shape[0] += len(chunk)                      # every record of the chunk, less those left to the row path
    for kind, piece in real_pieces(self, chunk):
        by_shape[0] -= len(piece) if kind == "records" else 0
        yield kind, piece
history_bulk.ChunkReader.pieces = counting_pieces
def counting_decode(*args):
    decoded[0] += 1
    return real_decode(*args)
record_shapes.HistoryShape.read, records._decode = counting_shape_read, counting_decode
mirror = Mirror.init(mirror_dir)
if cut:
    os.truncate(log, cut)
    assert not run_fetch(mirror, "wandb", src, FetchOptions()).errors
    shutil.copyfile(whole, log)
read.clear()
indexed[0] = by_shape[0] = decoded[0] = 0
stored = sum(e.size for e in mirror.objects.entries())
t, cpu = time.perf_counter(), time.process_time()
assert not run_fetch(mirror, "wandb", src, FetchOptions()).errors
cpu, wall = time.process_time() - cpu, time.perf_counter() - t
new = sum(e.size for e in mirror.objects.entries()) - stored
print(json.dumps({"folded": sum(read), "indexed": indexed[0], "stored": new, "by_shape": by_shape[0], "decoded": decoded[0], "cpu": cpu, "s": wall, "load": os.getloadavg()[0]}))
"""


def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, cwd=str(ROOT),
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.split("\n")[-2])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--metrics", type=int, default=10)
    ap.add_argument("--grown", type=float, default=0.1, help="the share of the log written since the last fetch")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src" / "wandb"
        run_dir = write_wandb_run(src, args.points // args.metrics, args.metrics, run_id="grown1")
        log = next(run_dir.glob("run-*.wandb"))
        whole = Path(tmp) / "whole.wandb"
        whole.write_bytes(log.read_bytes())
        size = whole.stat().st_size
        cut = int(size * (1 - args.grown))
        grown = child(str(src), str(Path(tmp) / "m-grown"), str(whole), str(cut))
        fresh = child(str(src), str(Path(tmp) / "m-fresh"), str(whole), "0")
    rows = [("re-fetch after growth", grown), ("fresh fetch of the whole log", fresh)]
    table = ["| fetch | bytes folded by the fetch | bytes of the stored log read by indexing | bytes stored "
             "(compressed) | history records read from their bytes / records decoded by protobuf | fetch CPU (wall) "
             "| load average |", "|---|---|---|---|---|---|---|"]
    for what, r in rows:
        table.append(f"| {what} | {r['folded'] / 1e6:.1f} MB | {r['indexed'] / 1e6:.1f} MB | {r['stored'] / 1e6:.1f} MB | "
                     f"{r['by_shape']:,} / {r['decoded']:,} | {r['cpu']:.1f} s ({r['s']:.1f} s) | {r['load']:.1f} |")
    body = (f"A run of {args.points:,} points ({args.points // args.metrics:,} rows × {args.metrics}, a "
            f"{size / 1e6:.0f} MB log written by `bench/run_writers.py`) whose last {args.grown:.0%} "
            f"({(size - cut) / 1e6:.1f} MB) was written after the previous fetch, against a fresh fetch of the "
            "same log. Bytes folded = what the fetch's record reader read; bytes read by indexing = what the "
            "normalizer took out of the stored log's objects (its small tables come from the fold the fetch "
            "saved, so only the points are read); bytes stored = the new objects' size "
            "on disk; CPU = the fetch alone, including indexing, which after growth reads only the "
            "tail's points and appends them to the rows it holds. Records read from their bytes = history records "
            "the point pass took without protobuf (history_bulk's chunks, or record_shapes.HistoryShape for one "
            "a chunk leaves to the row path); decoded = every protobuf decode in "
            "the fetch (the fold's and the point pass's); neither depends on the load.\n\n" + "\n".join(table))
    write_section("readers-wandb-grown", "W&B grown run (`bench/bench_wandb_grown.py`)", body)
    print("\n".join(table))


if __name__ == "__main__":
    main()

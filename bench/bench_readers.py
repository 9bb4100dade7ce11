"""Offline readers on long runs: fetch time, points/s, peak memory, and the parse-only floor.

    python bench/bench_readers.py [--points 100000 1000000] [--metrics 10]
                                  [--source wandb|neptune|neptune-exporter|neptune-scale]
                                  [--shape append extend append-stdout extend-stdout]
                                  (neptune 1.x op shapes; default append)
                                  [--shape rows rows-stdout]   (W&B; default rows)
    python bench/bench_readers.py --source neptune --rows a.json b.json   (the section from saved rows)

Writes W&B runs (or, with --source neptune, neptune 1.x offline queues) of N points (N / metrics history rows × `metrics` keys, plus the
summary record wandb-core writes beside each row) with bench/run_writers.py, then in
a fresh subprocess each: fetches the run into an empty mirror (store + index), and,
separately, only frames the log and decodes every record and every value (the
floor no reader can beat).  Peak memory is the child's maximum RSS; CPU time and the
load average are recorded beside the wall time, the machine being shared.  Prints a table
and rewrites the "Offline readers" section of docs/benchmarks.md.
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
from bench.run_writers import write_wandb_run  # noqa: E402

# the fetch as a user runs it: the command line (its imports, and the environment it sets for them)
FETCH = """
import sys, time
t = time.perf_counter()
from cometx_mirror.cli import main
code = main(["fetch", sys.argv[1], "--from", sys.argv[3], "--mirror", sys.argv[2]], standalone_mode=False)
assert not code, f"fetch exited {code}"
print(time.perf_counter() - t)
"""

FLOOR = """
import glob, sys, time, json
t = time.perf_counter()
from cometx_mirror.sources.wandb.records import iter_payloads
from cometx_mirror.sources.wandb.protos import wandb_internal_pb2
pb = wandb_internal_pb2()
values = 0
for _, payload in iter_payloads(open(glob.glob(sys.argv[1] + "/*/run-*.wandb")[0], "rb")):
    rec = pb.Record()
    rec.ParseFromString(payload)
    if rec.WhichOneof("record_type") == "history":
        for it in rec.history.item:
            json.loads(it.value_json)
            values += 1
print(time.perf_counter() - t)
"""

NEPTUNE_FLOOR = """
import glob, sys, time, json
t = time.perf_counter()
values = 0
for log in glob.glob(sys.argv[1] + "/.neptune/offline/*/data-*.log"):
    with open(log, "rb") as f:
        for line in f:
            obj = json.loads(line)["obj"]
            if obj["type"] == "LogFloats":
                for v in obj["values"]:
                    float(v["value"])
                    values += 1
print(time.perf_counter() - t)
"""

NEPTUNE_EXPORTER_FLOOR = """
import glob, sys, time
t = time.perf_counter()
import pyarrow.parquet as pq
values = 0
for part in glob.glob(sys.argv[1] + "/data/*/*.parquet"):
    table = pq.read_table(part)
    for column in ("attribute_path", "step", "timestamp", "float_value"):
        values += len(table.column(column).to_pylist())
print(time.perf_counter() - t)
"""

NEPTUNE_SCALE_FLOOR = """
import glob, sqlite3, sys, time
t = time.perf_counter()
from cometx_mirror.sources.bare_import import import_bare   # as the fetch loads it (scale._proto_folder):
from google.protobuf import __version__                       # no client, no importlib.metadata
pb = import_bare("neptune_api", "proto.neptune_pb.ingest.v1.common_pb2",
                 {"proto": "proto/protobuf_v3" if __version__.startswith("3.") else "proto/protobuf_v4plus"})
values = 0
for db in glob.glob(sys.argv[1] + "/.neptune/*/run_operations.sqlite3"):
    for typ, blob in sqlite3.connect(db).execute("SELECT operation_type, operation FROM run_operations"):
        if typ == 0:
            msg = pb.UpdateRunSnapshot.FromString(blob)
            for name, v in msg.append.items():
                v.float64
                values += 1
print(time.perf_counter() - t)
"""

def _written_apart(module: str, writer: str):
    """A writer run in a child process: Linux counts the RSS a parent had at fork in its children's
    maximum RSS, so a run written in this process (a million rows of Python objects) would inflate the
    peak memory measured for every fetch after it."""
    def write(src, steps: int, series: int, **options) -> Path:
        out = subprocess.run([sys.executable, "-c", f"import json, sys; from {module} import {writer}; "
                              f"print({writer}(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), "
                              f"**json.loads(sys.argv[4])))",
                              str(src), str(steps), str(series), json.dumps(options)],
                             cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)),
                             check=True, capture_output=True, text=True)
        return Path(out.stdout.split()[-1])
    return write


# Neptune formats: (writer of a run of steps x series, the files to size, the floor script, the row's words)
NEPTUNE_FORMATS = {
    "neptune": (_written_apart("bench.run_writers", "write_neptune_v1_run"),
                ".neptune/offline/*/data-*.log", NEPTUNE_FLOOR, "neptune 1.x offline"),
    "neptune-exporter": (_written_apart("bench.neptune_writers", "write_exporter_run"),
                         "exports/data/*/*.parquet", NEPTUNE_EXPORTER_FLOOR, "neptune-exporter parquet"),
    "neptune-scale": (_written_apart("bench.neptune_writers", "write_scale_run"),
                      ".neptune/*/run_operations.sqlite3", NEPTUNE_SCALE_FLOOR, "neptune-scale offline"),
}


# as an installed package runs: from its compiled bytecode (pip compiles on install; a shell that sets
# PYTHONDONTWRITEBYTECODE would have every child compile the project's sources again, ~0.14 s of CPU)
CHILD_ENV = {k: v for k, v in dict(os.environ, PYTHONPATH=str(ROOT)).items() if k != "PYTHONDONTWRITEBYTECODE"}


def compile_project() -> None:
    """The project's bytecode written once (in __pycache__/, ignored by git), before any child runs."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "cometx_mirror")], check=True,
                   env=CHILD_ENV, stdout=subprocess.DEVNULL)


def child(script: str, *args: str) -> dict:
    """The child's own seconds, its CPU seconds, and its peak RSS in bytes (os.wait4: this child's
    alone), in a fresh process."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=out, stderr=err,
                                cwd=str(ROOT), env=CHILD_ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode:
            raise SystemExit(err.read()[-2000:])
        seconds = float(out.read().split()[-1])
    return {"s": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak": usage.ru_maxrss * 1024,
            "load": max(load, os.getloadavg()[0])}


# said under every table: the machine's speed is not the same from one round to the next
SPEED_NOTE = ("This machine's speed varies from day to day: this round's floors took about 1.2 times "
              "last round's (neptune 1.x append 10^6: 5.6 s of CPU against 4.6 s), so compare the ratios to "
              "the floor, measured in the same run, rather than points/s across rounds. ")
# this round's change, the same for every reader: what a fetch spends before it reads a point
FIXED_COST_NOTE = (
    "This round the fetch is measured as a user runs it, through the command line (its imports and "
    "argument parsing included), and the command line sets OPENBLAS_NUM_THREADS=1 before NumPy loads: "
    "OpenBLAS started a thread per core at load and they spun, about 0.1 s of CPU in every run on this "
    "machine (import numpy 0.19 -> 0.08 s of CPU; side by side, 11 fresh 10-point neptune-scale fetches "
    "each, interleaved, median CPU 0.49 s with two OpenBLAS threads against 0.40 s with one). No command does "
    "linear algebra. ")

# neptune 1.x queue shapes (`--shape`): the points of one LogFloats op, as the client writes them, and
# how often a printed line (the client's stdout capture) comes between those ops
NEPTUNE_V1_SHAPES = {"append": {"per_op": 1}, "extend": {"per_op": 100},
                     "append-stdout": {"per_op": 1, "stdout_every": 10},
                     "extend-stdout": {"per_op": 100, "stdout_every": 10},
                     "append-client": {"per_op": 1, "stdout_every": 10, "client": True},
                     "extend-client": {"client": True}}
# W&B shapes (`--shape`): every row alone, or a printed line after each (wandb-core's output_raw record)
WANDB_SHAPES = {"rows": {}, "rows-stdout": {"stdout_every": 1}, "core": {"core": True},
                "core-stdout": {"core": True, "stdout_every": 1}}
WANDB_SHAPE_WORDS = {"rows-stdout": "a printed line every row",
                     "core": "as wandb-core writes it (items in Go map order, a nested dict, a string)",
                     "core-stdout": "as wandb-core writes it, a printed line every row"}
NEPTUNE_V1_SHAPE_WORDS = {"append": "`append` loop, 1 point per op", "extend": "`extend`, 100 points per op",
                          "append-stdout": "`append` loop, a printed line every 10 ops",
                          "extend-stdout": "`extend`, a printed line every 10 ops",
                          "append-client": "`append(value)` with no step and a printed line every 10 ops, "
                                           "as the client writes them",
                          "extend-client": "`extend(values)` with no step, 100 points per op"}
# the paragraph under the neptune 1.x table (--note replaces it): what this round changed, and against what
NEPTUNE_V1_NOTE = (
    "This round a run's first segment is taken at once too (its series begin there: each becomes a float series "
    "at its first op, in the fold and in the float stream), where every line of it went one by one, `extend` "
    "lines decoded whole by json; and null steps are numbered from the ops' counts of points rather than a path "
    "made for each point. (This round's saved folds change only a fetch that finds a run grown: "
    "docs/benchmarks.md, \"Neptune re-fetch\".) Every row measured again (one run each, load 1.0-1.4). The "
    "machine was faster than last round (the append-stdout floor at 10^7 took 38.4 s of CPU against 60.8 s) and "
    "slowed while the rows were taken (the same 10^6 fetch, side by side after them, took 1.4 times as long as "
    "before them), so compare the ratios to the floor. A run the same day at the commit before gave: "
    "extend-client 10^5 5.4x, 10^6 2.51 s of CPU, 3.7x (now 4.9x, 1.96 s, 2.2x), extend 10^6 2.3x (2.3x); "
    "append-client 10^7 61.9 s, floor 58.3 s (now 77.2 s, floor 61.8 s); append-stdout 10^7 39.8 s (46.5 s). "
    "Goals: 300,000 points/s, met from 10^6 on for append and extend (with or without steps); not for the "
    "printing shapes (append-stdout 258,654 points/s at 10^6, 214,950 at 10^7; append-client 145,393 and "
    "129,493), whose floor, one json decode a line, reads 162,000 (append-client) to 261,000 (append-stdout) "
    "points/s of CPU; nor at 10^5 for any shape (a 10-point fetch takes 0.2-0.3 s). Within 3x of the floor: met "
    "from 10^6 on for every shape (0.8-2.3x); at 10^5 missed by extend (3.2x) and extend-client (4.9x), whose "
    "floor is 0.1 s of CPU. Peak memory flat in the points: 118-129 MB for the append shapes, 131-178 MB for "
    "extend. Load average beside each row (2 cores: compare CPU times and peak memory).")
NEPTUNE_BODY = ("Each run a neptune 1.x offline queue written by `bench/run_writers.py` in one of the two "
                "shapes the client queues (its offline and async processors write each operation to the disk "
                "queue as it is made, merging ops only when uploading): a training loop of `append` calls "
                "queues one LogFloats op per call (one point; the common pattern, the default), `extend` / "
                "`log([...])` one op per series per 100 points (`--shape extend`); the `-stdout` shapes add a "
                "printed line after every 10 ops, as the client's stdout capture queues it (a LogStrings op), "
                "so other ops sit among the points as in a real run; the `-client` shapes are as the client "
                "writes `append(value)` and `extend(values)`: no step (null), and a LogStrings op per printed "
                "word; `bench/check_writers.py` reads them back with neptune's DiskQueue; fetch = store the queue and index every point into a "
                "fresh mirror, in a fresh process (its CPU time includes the imports, from compiled bytecode as"
                " an installed package runs); floor = reading the op lines and decoding each as JSON, each "
                "value as a float, nothing else; peak memory = the fetch process's maximum RSS; load average = "
                "the 1-minute figure, the highest seen around the fetch (2 cores: above 2, wall times are "
                "stretched by other jobs, CPU times less so).")
NEPTUNE_FORMAT_BODY = {
    "neptune-exporter": ("Each run a neptune-exporter `exports/` folder written by `bench/neptune_writers.py` in the "
                         "exporter's parquet schema (one row per point, parts of 10^6 rows); fetch = store the "
                         "parts (as chunks of columns) and index every point into a fresh mirror, in a fresh "
                         "process; floor = pyarrow reading each part and converting the path, step, timestamp "
                         "and value columns to Python objects, nothing else."),
    "neptune-scale": ("Each run a neptune-scale offline queue written by `bench/neptune_writers.py` through "
                      "neptune-scale's own OperationsRepository (one UpdateRunSnapshot per step with every "
                      "series' value, as `Run.log_metrics` logs it); fetch = store the operations and index "
                      "every point into a fresh mirror, in a fresh process; floor = reading the operations from "
                      "SQLite and decoding each protobuf and each value, nothing else."),
}
# the paragraph under a neptune-scale / exporter table (--note replaces it): this round's change, the previous figures, the goals
NEPTUNE_FORMAT_NOTE = {
    "neptune-scale": (
        FIXED_COST_NOTE + SPEED_NOTE +
        "Previous round (one run each): 10^5 0.66 s CPU, 5.5x; 10^6 1.45 s CPU (1,007,967 points/s wall), 2.0x; "
        "10^7 15.2 s CPU (892,758 wall), 2.4x, peak 115 / 117 / 124 MB. Now (one run each, load 1.1): 10 points "
        "0.35 s CPU; 10^5 0.50 s wall, 0.58 s CPU (201,338 points/s wall, 172,598 CPU), 3.0x (3.01: the floor "
        "0.19 s of CPU); 10^6 1.3 s wall, 1.6 s CPU (781,256 wall, 621,152 CPU), 1.4x; 10^7 16.8 s wall, 18.8 s "
        "CPU (596,641 wall, 531,132 CPU), 2.4x, peak 119 / 119 / 125 MB. The reader is unchanged. Goals: "
        "300,000 points/s, met from 10^6 on (not at 10^5); within 3x of the floor, met from 10^6 on, at 10^5 "
        "missed by a hundredth; peak memory flat in the number of points, met. Load average beside each row "
        "(2 cores: compare CPU times and peak memory)."),
    "neptune-exporter": (
        FIXED_COST_NOTE + "The exporter's fixed cost is mostly pyarrow's import (and pandas with it). " +
        SPEED_NOTE +
        "Previous round (one run each): 10^5 1.6 s CPU, 1.1x; 10^6 2.1 s CPU (612,840 points/s wall), 0.4x; "
        "10^7 12.0 s CPU (981,515 wall), 0.2x, peak 235 / 260 / 280 MB. Now (one run each, load 1.1-1.3): 10 "
        "points 0.92 s CPU; 10^5 1.0 s wall, 1.2 s CPU (98,267 points/s wall), 0.9x; 10^6 2.0 s wall, 2.3 s CPU "
        "(510,264 wall, 434,137 CPU), 0.3x; 10^7 10.5 s wall, 12.3 s CPU (948,736 wall, 812,108 CPU), 0.2x, "
        "peak 240 / 255 / 287 MB. The reader is unchanged. Goals: 300,000 points/s, met from 10^6 on (not at "
        "10^5, where the fixed cost is most of the fetch); within 3x of the floor, met (the floor, pyarrow's "
        "Python objects of four columns, is slower than the fetch); peak memory bounded by one row group's "
        "pages (the exporter writes up to 1Mi rows per row group), flat past one row group. Load average beside "
        "each row (2 cores: compare CPU times and peak memory)."),
}
NEPTUNE_SECTIONS = {"neptune": ("readers-neptune", "Neptune offline reader (`bench/bench_readers.py --source neptune`)"),
                    "neptune-exporter": ("readers-neptune-exporter", "Neptune exporter reader "
                                         "(`bench/bench_readers.py --source neptune-exporter`)"),
                    "neptune-scale": ("readers-neptune-scale", "neptune-scale offline reader "
                                      "(`bench/bench_readers.py --source neptune-scale`)")}


# the paragraph under the W&B table (--note replaces it): this round's change, the previous figures, the goals
WANDB_NOTE = (
    "This round a log of 8 MiB or more is compressed by zstd on a thread of its own while the reader folds it "
    "(store/objects.py, PARALLEL_FROM): the fetch's wall time now falls below its CPU time, the second core "
    "taking the compression (side by side, 10^6 points, 3 fresh fetches each, interleaved, wall: `rows` "
    "1.86-1.90 -> 1.61-1.70 s, `core-stdout` 3.33-3.69 -> 3.07-3.14 s; peak +0-3 MB). Every row measured again "
    "(one run each, load 0.2-1.1). The machine was much faster than last round (the core-stdout floor at 10^7 "
    "took 26.9 s of CPU against 55.5 s), so compare the ratios to the floor rather than points/s across rounds. "
    "Last round, CPU ratios to the floor: `rows` 10^6 0.8x, 10^7 1.0x; `core` 0.9x, 1.0x; rows-stdout 1.0x, "
    "1.0x; core-stdout 1.2x, 1.0x (10^7: 54.7 s wall, 182,665 points/s). Now: `rows` 10^6 1.7 s wall (594,547 "
    "points/s), 0.9x; 10^7 15.9 s (629,338), 0.9x; `core` 2.4 s (409,724), 1.1x; 22.8 s (439,385), 1.2x; "
    "rows-stdout 2.4 s (425,047), 1.1x; 20.1 s (497,063), 1.0x; core-stdout 3.0 s (329,155), 1.2x; 28.9 s "
    "(346,353), 1.3x (the fetch's CPU includes the compression thread's, which the wall time no longer waits "
    "for). Goals: 300,000 points/s end to end, met from 10^6 on for every shape on this day's machine (the "
    "printing shapes' floor reads 347,000-429,000 points/s of CPU today, 180,000 on last round's slower day, "
    "so the printing shapes meet it only as far as the machine does); not at 10^5 (0.41-0.56 s: a 10-point "
    "fetch takes 0.19-0.21 s); within 3x of the floor, met at each size (0.9-1.3x from 10^5 on); peak memory "
    "flat in the number of points, met (114-124 MB at 10^5, 139-147 MB from 10^6 on). Load average beside "
    "each row (2 cores: compare CPU times and peak memory).")


def write_table(rows: list[dict], metrics: int, note: str, source: str = "wandb") -> None:
    table = ["| run | log | fetch wall (CPU) | points/s wall (CPU) | floor wall (CPU) | fetch / floor, CPU "
             "| peak memory | load average |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f, fl = r["fetch"], r["floor"]
        n = r["points"] // metrics
        what = (f"W&B offline, {r['points']:,} points ({n:,} {'row' if n == 1 else 'rows'} × {metrics})"
                + (f", {WANDB_SHAPE_WORDS[r['shape']]}" if r.get("shape") in WANDB_SHAPE_WORDS else "")
                if source == "wandb" else
                f"{NEPTUNE_FORMATS[source][3]}, {r['points']:,} points ({n:,} {'step' if n == 1 else 'steps'} × "
                f"{metrics} series)"
                + (f", {NEPTUNE_V1_SHAPE_WORDS[r['shape']]}" if r.get("shape") else ""))
        table.append(f"| {what} | {r['mb']:.0f} MB | {f['s']:.1f} s ({f['cpu']:.1f} s) | "
                     f"{r['points'] / f['s']:,.0f} ({r['points'] / f['cpu']:,.0f}) | "
                     f"{fl['s']:.1f} s ({fl['cpu']:.1f} s) | {f['cpu'] / fl['cpu']:.1f}× | "
                     f"{f['peak'] / 1e6:.0f} MB | {f['load']:.1f} |")
    if source in NEPTUNE_FORMATS:
        note = note or NEPTUNE_FORMAT_NOTE.get(source, "")
        intro = NEPTUNE_BODY if source == "neptune" else (
            NEPTUNE_FORMAT_BODY[source] + " Peak memory = the fetch process's maximum RSS; load average = the "
            "1-minute figure, the highest seen around the fetch (2 cores).")
        body = intro + "\n\n" + "\n".join(table) + ("\n\n" + note if note else "")
        write_section(*NEPTUNE_SECTIONS[source], body)
        print("\n".join(table))
        return
    body = ("Each run written by `bench/run_writers.py` in wandb-core's framing (a summary record beside each "
            "history row; `core`: the items of each record in Go map order, as wandb-core writes them); fetch = store the folder and index every point into a fresh mirror, in a fresh "
            "process (its CPU time includes the imports, from compiled bytecode as an installed package runs); "
            "floor = framing plus protobuf and JSON decode of every record and value, nothing else; peak memory"
            " = the fetch process's maximum RSS; load average = the 1-minute figure, the highest seen around "
            "the fetch (2 cores: above 2, the wall times are stretched by other jobs, the CPU times less "
            "so).\n\n" + "\n".join(table) + ("\n\n" + note if note else ""))
    write_section("readers", "Offline readers (`bench/bench_readers.py`)", body)
    print("\n".join(table))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--metrics", type=int, default=10)
    ap.add_argument("--source", choices=("wandb", *NEPTUNE_FORMATS), default="wandb")
    ap.add_argument("--shape", nargs="+", choices=(*NEPTUNE_V1_SHAPES, *WANDB_SHAPES),
                    help="--source neptune: the queue's op shape(s) (default append); --source wandb: rows "
                         "or rows-stdout (default rows); each a row per size")
    ap.add_argument("--note", default="", help="a paragraph written under the table")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--rows", nargs="+", help="measure nothing: rewrite the section from rows --json wrote")
    ap.add_argument("--dry", action="store_true", help="print the rows only: leave docs/benchmarks.md as it is")
    args = ap.parse_args()
    note = args.note or {"neptune": NEPTUNE_V1_NOTE, "wandb": WANDB_NOTE}.get(args.source, "")
    if args.rows:
        rows = [r for f in args.rows for r in json.loads(Path(f).read_text())]
        return write_table(sorted(rows, key=lambda r: r["points"]), args.metrics, note, args.source)
    rows = []
    compile_project()
    with tempfile.TemporaryDirectory() as tmp:
        shapes = {"neptune": args.shape or ["append"], "wandb": args.shape or ["rows"]}.get(args.source, [None])
        known = {"neptune": NEPTUNE_V1_SHAPES, "wandb": WANDB_SHAPES}.get(args.source, {})
        if any(shape is not None and shape not in known for shape in shapes):
            ap.error(f"--shape {' '.join(shapes)}: not a shape of --source {args.source}")
        for points, shape in ((p, sh) for p in sorted(args.points) for sh in shapes):
            src = Path(tmp) / f"src-{points}" / "wandb"
            if args.source == "wandb":
                run_dir = write_wandb_run(src, points // args.metrics, args.metrics, run_id=f"b{points}",
                                          **WANDB_SHAPES[shape])
                size = sum(f.stat().st_size for f in run_dir.glob("run-*.wandb"))
                floor = child(FLOOR, str(src))
            else:
                write, files, floor_script, _ = NEPTUNE_FORMATS[args.source]
                options = NEPTUNE_V1_SHAPES[shape] if shape else {}
                read = write(src, points // args.metrics, args.metrics, **options)
                size = sum(f.stat().st_size for f in src.glob(files))
                floor = child(floor_script, str(read if args.source == "neptune-exporter" else src))
                if args.source == "neptune-exporter":
                    src = read
            fetch = child(FETCH, str(src), str(Path(tmp) / f"mirror-{points}"),
                          "neptune" if args.source in NEPTUNE_FORMATS else args.source)
            rows.append({"points": points, "mb": size / 1e6, "fetch": fetch, "floor": floor,
                         **({"shape": shape} if shape else {})})
            print(json.dumps(rows[-1]))
            shutil.rmtree(src.parent)
            shutil.rmtree(Path(tmp) / f"mirror-{points}")
            if not args.dry:     # after each size: a long last size may not finish
                write_table(rows, args.metrics, note, args.source)
            if args.json:
                Path(args.json).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()

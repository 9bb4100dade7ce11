"""One Comet experiment with many metrics: fetch time and peak memory against the metric count.

    python bench/bench_wide.py [--metrics 3,20,60] [--points 15000] [--no-cometx] [--write-docs]

Comet samples each metric to 15,000 points, but `metrics/get-all` answers every metric's
sample at once, so an experiment logging many metrics (per-layer norms, per-class scores)
answers one large JSON text: 60 metrics are 900,000 points.  Each row: one experiment of
`--metrics` metrics of `--points` points (server.seed.build_workspace, straight into the
source server's state), fetched into an empty mirror (download, store, index), and beside
it `cometx download` of the same project, each in its own process; peak = the process
tree's peak RSS (VmHWM from /proc), requests = what the server counted.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

try:
    from bench.report import write_section
    from bench.bench_workspace import cometx_cmd, mirror_cmd, run_tool, tool_env
except ImportError:                       # run as a script from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.report import write_section
    from bench.bench_workspace import cometx_cmd, mirror_cmd, run_tool, tool_env

from cometx_mirror.server.runner import start_server
from cometx_mirror.server.seed import build_workspace

PROJECT = "wide"


def wide_run(work: Path, metrics: int, points: int, with_cometx: bool) -> dict:
    src = start_server()
    home = work / f"home-{metrics}"
    home.mkdir()
    try:
        build_workspace(src, PROJECT, 1, points, metrics=tuple(f"layer{i}/grad_norm" for i in range(metrics)),
                        assets=0)
        env = tool_env(src, str(home))
        mirror = work / f"mirror-{metrics}"
        out = {"metrics": metrics, "points": points,
               "fetch": run_tool(src, [*mirror_cmd(), "fetch", "--mirror", str(mirror), "--json",
                                       f"{src.workspace}/{PROJECT}"], env, str(home), 0)}
        if with_cometx:
            out["cometx"] = run_tool(src, [cometx_cmd(), "download", f"{src.workspace}/{PROJECT}", "-o",
                                           str(work / f"cometx-{metrics}")], env, str(home), 0)
        return out
    finally:
        src.stop()


def report(rows: list[dict]) -> str:
    lines = ["`python bench/bench_wide.py` — one experiment of N metrics of "
             f"{rows[0]['points']:,} points each (what a Comet answers per metric: its sample), no latency; "
             "each tool in its own process, peak = its process tree's peak RSS; load = the 1/5/15-minute load "
             "average at the end (2 shared cores: wall times are noisy, requests and memory are not).", "",
             "| metrics | points | tool | s | requests | peak | load |", "|---:|---:|---|---:|---:|---:|---|"]
    for r in rows:
        for tool, key in (("cometx-mirror fetch", "fetch"), ("cometx download", "cometx")):
            if key in r:
                t = r[key]
                lines.append(f"| {r['metrics']} | {r['metrics'] * r['points']:,} | {tool} | {t['seconds']:.1f} | "
                             f"{t['requests']} | {t['peak_mb']} MB | {t['load']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--metrics", default="3,20,60")
    ap.add_argument("--points", type=int, default=15_000)
    ap.add_argument("--no-cometx", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--note", default="", help="a paragraph under the table")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-wide-"))
    try:
        rows = [wide_run(work, int(m), args.points, not args.no_cometx) for m in args.metrics.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(rows) + (f"\n\n{args.note}" if args.note else "")
    print(text)
    if args.write_docs:
        write_section("wide", "One experiment, many metrics (`bench/bench_wide.py`)", text)


if __name__ == "__main__":
    main()

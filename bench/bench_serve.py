"""serve --mirror on a large mirror: start-up, first answer, peak memory, one 10^6-point chart.

    python bench/bench_serve.py [--experiments 1000] [--points 1000000] [--mirror PATH] [--no-write]

The mirror is built quickly: an in-process Comet server's state is filled directly
(server.seed.build_workspace: no SDK, no HTTP), fetched once with the real fetch, then
served by `cometx-mirror serve --mirror` in its own process, so start-up includes the
interpreter and imports, and peak RSS (VmHWM) is the server's alone.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import write_section  # noqa: E402
from cometx_mirror.server.runner import start_server  # noqa: E402
from cometx_mirror.server.seed import build_workspace  # noqa: E402
from cometx_mirror.store.mirror import Mirror  # noqa: E402
from cometx_mirror.sync.fetch import FetchOptions, run_fetch  # noqa: E402


def build_mirror(folder: Path, experiments: int, points: int) -> tuple[Path, str, str]:
    """A mirror of `experiments` small experiments and one with `points` points of "loss"."""
    server = start_server(sampling=False)
    try:
        build_workspace(server, "many", experiments, points=5, metrics=("loss", "acc"), assets=1, asset_bytes=200)
        big, = build_workspace(server, "big", 1, points=points, metrics=("loss",), assets=0, first=experiments)
        path = folder / "mirror"
        Mirror.init(path)
        run_fetch(Mirror.open(path), "comet", server.workspace,
                  FetchOptions(api_key=server.api_key, url=server.clientlib_url))
        return path, server.workspace, big
    finally:
        server.stop()


def existing_mirror(path: Path) -> tuple[Path, str, str]:
    """A mirror an earlier run built (--mirror): its workspace and the big experiment's key."""
    import duckdb
    con = duckdb.connect(str(path / "index.duckdb"), read_only=True)
    try:
        return path, *con.execute("SELECT workspace, experiment_key FROM experiments WHERE project = 'big'").fetchone()
    finally:
        con.close()


def peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


def serve_once(mirror: Path, workspace: str, big: str, pause_s: float) -> dict:
    """Start the CLI server, time its ready line and its first answers (sent `pause_s` after
    the ready line: the catalog is read on a thread meanwhile), then stop it."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cometx_mirror", "serve", "--mirror", str(mirror)],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = proc.stdout.readline()
        ready = time.perf_counter() - t0
        url = re.search(r"(http://127\.0\.0\.1:\d+)", line).group(1)
        s = requests.Session()
        time.sleep(pause_s)
        t1 = time.perf_counter()
        projects = s.get(f"{url}/api/rest/v2/projects", params={"workspaceName": workspace}, timeout=120).json()
        first = time.perf_counter() - t1
        t2 = time.perf_counter()
        listed = s.get(f"{url}/api/rest/v2/experiments", params={"workspaceName": workspace, "projectName": "many"},
                       timeout=120).json()["experiments"]
        listing = time.perf_counter() - t2
        t3 = time.perf_counter()
        table = s.get(f"{url}/ui/api/experiments", params={"workspace": workspace, "project": "many"},
                      timeout=120).json()["experiments"]
        table_s = time.perf_counter() - t3
        t4 = time.perf_counter()
        chart = s.get(f"{url}/ui/api/series", params={"keys": big, "metric": "loss", "buckets": 1000}, timeout=120)
        chart_s = time.perf_counter() - t4
        series = chart.json()["series"][0]
        return {"ready_s": ready, "first_s": first, "projects": len(projects.get("projects", [])),
                "listing_s": listing, "listed": len(listed), "table_s": table_s, "table_rows": len(table),
                "chart_s": chart_s, "chart_bytes": len(chart.content), "chart_points": series["points"],
                "chart_drawn": len(series["x"]), "peak_mb": peak_rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=1000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3, help="server starts; the median of each figure is reported")
    ap.add_argument("--mirror", type=Path, help="serve this mirror an earlier run built (printed) instead")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()

    t0 = time.perf_counter()
    if args.mirror:
        mirror, workspace, big = existing_mirror(args.mirror)
        built = "built by an earlier run"
    else:
        mirror, workspace, big = build_mirror(Path(tempfile.mkdtemp(prefix="bench-serve-")), args.experiments,
                                              args.points)
        built = (f"built in {time.perf_counter() - t0:.0f} s (state filled directly, one real fetch; "
                 f"load average {os.getloadavg()[0]:.1f})")
    print(f"mirror: {mirror}", file=sys.stderr)
    runs = [serve_once(mirror, workspace, big, 0) for _ in range(args.runs)]
    later = [serve_once(mirror, workspace, big, 3.0) for _ in range(args.runs)]
    load = os.getloadavg()[0]

    def med(name, of=runs):
        return sorted(r[name] for r in of)[len(of) // 2]
    r = runs[0]
    assert r["listed"] == args.experiments and r["chart_points"] == args.points, r
    body = f"""`bench/bench_serve.py`: `cometx-mirror serve --mirror` in its own process on a mirror of
{args.experiments:,} experiments (5 points of 2 metrics, 2 params and one asset each) plus one experiment with
{args.points:,} points of one metric; the mirror was {built}. Median of {args.runs} server starts each way,
load average {load:.1f} (1 min) (the 2 cores may be shared with other runs: compare with the load):

| figure | value |
|---|---|
| start-up: process spawned → "Serving" line (interpreter, imports, bind; nothing read yet) | {med("ready_s"):.2f} s |
| first answer, `GET projects` sent at once (waits for the catalog: DuckDB's import, the index checked against the refs, {args.experiments + 1:,} headers) | {med("first_s"):.2f} s |
| first answer, `GET projects` sent 3 s after the ready line (the catalog was read on a thread meanwhile) | {med("first_s", later):.2f} s |
| `GET experiments` of the {args.experiments:,}-experiment project | {med("listing_s"):.2f} s |
| the page's table of that project (params, tags, last/min/max per metric: three SQL queries) | {med("table_s"):.2f} s |
| chart of the {args.points:,}-point metric, 1,000 buckets (`/ui/api/series`) | {med("chart_s"):.2f} s, {med("chart_bytes") / 1024:.0f} KiB, {med("chart_drawn"):,} points drawn of {med("chart_points"):,} |
| peak RSS of the server process after all of the above | {med("peak_mb"):.0f} MB |

The chart answers at most a min and a max per bucket ({med("chart_drawn"):,} points, not {args.points:,}): the
thinning is for drawing only; `points` in the answer counts every point the range holds, and a narrower
range (`lo`, `hi`: zooming in) is answered from the index again, down to every point."""
    print(body)
    if not args.no_write:
        write_section("serve", "Serving a mirror (serve --mirror)", body)


if __name__ == "__main__":
    main()

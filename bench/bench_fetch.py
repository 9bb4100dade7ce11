"""Fetch from Comet: `cometx download` vs `cometx-mirror fetch` on the same seeded local server.

    python bench/bench_fetch.py [--experiments 8] [--projects 2] [--steps 2000] [--latency 20] [--runs 3]

Seeds a local Comet-compatible server through the real comet_ml SDK, adds a fixed latency to
every request, then for -j 1 and -j 8 runs each tool on every project: a first download, and a
repeat on unchanged data (plus `--quick` for the mirror).  Requests are read from the server's
own counters; bytes on disk are what each tool left behind.  Prints a table and rewrites the
"Fetch from Comet" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import disk_usage, write_section  # noqa: E402
from cometx_mirror.server.runner import start_server  # noqa: E402
from cometx_mirror.server.seed import seed  # noqa: E402


BACKGROUND_ENDPOINTS = ("/health/ping", "/status-report/update")


def median(runs: list[tuple]) -> tuple:
    """The run with the median wall time (its requests and peak with it)."""
    return sorted(runs)[len(runs) // 2]


def run_tool(cmd: list[str], env: dict, server) -> tuple[float, int, int]:
    """(seconds, requests, most requests in flight at once) for one run of a tool."""
    server.reset_counters()
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {done.stderr[-2000:]}")
    counters = server.counters()
    # the seeder's still-"running" experiment keeps an SDK thread pinging the server;
    # those requests are not the measured tool's
    background = sum(c["count"] for endpoint, c in counters["endpoints"].items()
                     if endpoint.endswith(BACKGROUND_ENDPOINTS))
    return elapsed, counters["total"] - background, counters["peak_in_flight"]


def log_shared_checkpoint(server, home: Path, keys: list[str], megabytes: float) -> None:
    """Log the same checkpoint file to every experiment through the SDK's API, as a team
    that re-logs its base model or dataset in each run does."""
    path = home / "shared-checkpoint.bin"
    path.write_bytes(os.urandom(int(megabytes * 1e6)))
    saved = dict(os.environ)
    os.environ.update(server.env(), HOME=str(home), COMET_ERROR_TRACKING_ENABLE="false")
    try:
        import comet_ml
        api = comet_ml.API(cache=False)
        for key in keys:
            api.get_experiment_by_key(key).log_asset(str(path), name="base-checkpoint.bin", ftype="asset")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=8, help="experiments per project")
    ap.add_argument("--projects", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2000, help="points per metric")
    ap.add_argument("--latency", type=float, default=20.0, help="ms added to every request")
    ap.add_argument("--checkpoint-mb", type=float, default=4.0,
                    help="a checkpoint of this size logged to every experiment (the same bytes each time)")
    ap.add_argument("--scope", choices=["project", "workspace"], default="project",
                    help="fetch each project path (same data for both tools) or the workspace path")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-fetch-"))
    home = work / "home"
    home.mkdir()
    server = start_server()
    try:
        t0 = time.perf_counter()
        seeded = seed(server, size="large", experiments=args.experiments, projects=args.projects, steps=args.steps)
        seed_s = time.perf_counter() - t0
        ws = seeded["workspace"]
        if args.checkpoint_mb:
            log_shared_checkpoint(server, home, [e["key"] for e in seeded["experiments"]], args.checkpoint_mb)
        projects = sorted(seeded["projects"])
        # project paths: both tools fetch the same data; the workspace path makes cometx-mirror
        # also fetch artifacts, registry models and panels, which cometx download leaves out
        paths = [f"{ws}/{p}" for p in projects] if args.scope == "project" else [ws]
        n_exp = sum(len(v) for v in seeded["projects"].values())
        server.set_faults(f"latency ms={args.latency:g}")
        env = dict(os.environ, HOME=str(home), COMET_ERROR_TRACKING_ENABLE="false",
                   COMET_DISABLE_ANNOUNCEMENT="true", **server.env())
        # as on a user's machine, both tools keep their compiled bytecode between runs
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cometx = shutil.which("cometx") or str(Path(sys.executable).parent / "cometx")
        rows = []
        for jobs in (1, 8):
            def each_path(command):
                total_s = total_r = peak = 0
                for path in paths:
                    s, r, p = run_tool(command(path), env, server)
                    total_s, total_r, peak = total_s + s, total_r + r, max(peak, p)
                return total_s, total_r, peak

            def cometx_all(out):
                return each_path(lambda path: [cometx, "download", path, "-o", str(out), "-j", str(jobs)])

            def mirror_all(mirror, *extra):
                return each_path(lambda path: [sys.executable, "-m", "cometx_mirror", "fetch", path, "--mirror",
                                               str(mirror), "-j", str(jobs), *extra])

            # each figure is the median of --runs runs; a first fetch starts from an empty folder each time
            outs = [work / f"cometx-j{jobs}-{k}" for k in range(args.runs)]
            mirrors = [work / f"mirror-j{jobs}-{k}" for k in range(args.runs)]
            c1 = median([cometx_all(out) for out in outs])
            c2 = median([cometx_all(outs[-1]) for _ in outs])
            m1 = median([mirror_all(mirror) for mirror in mirrors])
            m2 = median([mirror_all(mirrors[-1]) for _ in mirrors])
            m3 = median([mirror_all(mirrors[-1], "--quick") for _ in mirrors])
            rows.append((jobs, c1, c2, m1, m2, m3, disk_usage(outs[-1]), disk_usage(mirrors[-1]),
                         disk_usage(mirrors[-1] / "objects")))
    finally:
        server.stop()

    scope = ("Both tools fetch each project path in turn, so both fetch the same data. " if args.scope == "project"
             else "Both tools fetch the workspace path: cometx its projects, cometx-mirror its projects and also "
                  "its artifacts, registry models and panels. ")
    lines = [
        f"Seeded through the real comet_ml SDK: {n_exp} experiments in {len(projects)} projects, "
        f"{args.steps} points per metric, every asset type, a dataset and a small checkpoint shared by every "
        f"experiment, plus a {args.checkpoint_mb:g} MB checkpoint logged to every experiment "
        f"(seeding took {seed_s:.0f} s). {args.latency:g} ms latency added to every request. " + scope +
        "Requests are counted by the server; \"most at once\" is the peak it saw in flight together (cometx's "
        "-j sizes its asset-download pool, and so does cometx-mirror's, whose JSON reads run ahead of the "
        "downloads, at most -j + 3 at a time). Each time is the median of "
        f"{args.runs} runs and includes each process's start-up, with compiled bytecode cached as on any "
        "install. The mirror's size "
        "includes its DuckDB index, which reserves a few MB up front whatever the data (\"objects only\" "
        "leaves it out).",
        "",
        "| -j | tool | first: s | first: requests | req/exp | most at once | repeat: s | repeat: requests | "
        "`--quick`: s | `--quick`: requests | on disk (objects only) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for jobs, c1, c2, m1, m2, m3, c_disk, m_disk, m_objects in rows:
        lines.append(f"| {jobs} | cometx download | {c1[0]:.1f} | {c1[1]} | {c1[1] / n_exp:.1f} | {c1[2]} | "
                     f"{c2[0]:.1f} | {c2[1]} | – | – | {c_disk / 1e6:.1f} MB |")
        lines.append(f"| {jobs} | cometx-mirror fetch | {m1[0]:.1f} | {m1[1]} | {m1[1] / n_exp:.1f} | {m1[2]} | "
                     f"{m2[0]:.2f} | {m2[1]} | {m3[0]:.2f} | {m3[1]} | "
                     f"{m_disk / 1e6:.1f} MB ({m_objects / 1e6:.1f} MB) |")
        lines.append(f"| {jobs} | **ratio** | **{c1[0] / m1[0]:.1f}×** | | | | **{c2[0] / m2[0]:.1f}×** "
                     f"(quick {c2[0] / m3[0]:.1f}×) | | | | {c_disk / max(1, m_disk):.2f}× ({c_disk / max(1, m_objects):.1f}×) |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("fetch", "Fetch from Comet (`bench/bench_fetch.py`)", text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

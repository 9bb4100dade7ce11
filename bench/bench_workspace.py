"""A Comet workspace at scale: fetch and push through latency, beside `cometx download` / `cometx copy`.

    python bench/bench_workspace.py [--experiments 300] [--points 1000] [--latency-ms 20] [--cometx]
                                    [--rest-seed] [--write-docs]

The source server's experiments are built straight into its state (server.seed.build_workspace:
the records REST uploads make, without the uploads; --rest-seed sends them instead, one
`logger/add/run`, metric and parameter batches and 6 asset uploads per experiment): seeding is
not what is measured.  Growth with size is bench/bench_growth.py's.  Then 20 ms latency is added to every request and each
tool runs in its own process, timed from start to exit; its peak memory is the process's
peak RSS (VmHWM polled from /proc, its child processes included).  Requests and the most in flight at once are counted by the server; the
latency bound is requests x latency / most in flight: the least time that many round trips take
at that concurrency, so "x bound" says how close a tool comes to what latency allows.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from cometx_mirror.server.runner import start_server
from cometx_mirror.server.seed import build_workspace

try:
    from bench.report import write_section
except ImportError:                       # run as a script from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.report import write_section

PROJECT = "wide"
METRICS = ("loss", "acc", "lr")
ASSETS = 6
ASSET_BYTES = 20_000
SHARED_MACHINE = ("Load is the machine's 1/5/15-minute load average when each run ended (2 cores): wall "
                  "times vary with it, request counts do not; a tool's time includes its process start and, "
                  "for fetch, indexing.")


# ----- seeding through REST batches ---------------------------------------------------------

def _seed_one(session: requests.Session, server, n: int, points: int, project: str) -> str:
    base = server.clientlib_url.rstrip("/")
    key = f"{n:08d}" + os.urandom(12).hex()
    body = {"apiKey": server.api_key, "experimentKey": key, "offline": True, "projectName": project,
            "teamName": server.workspace, "libVersion": "bench", "local_timestamp": int(time.time() * 1000)}
    session.post(f"{base}/logger/add/run", json=body, timeout=120).raise_for_status()
    t0 = 1_700_000_000_000
    values = [{"metricName": m, "metricValue": (1 / (s + 1)) if m == "loss" else s / points, "step": s,
               "epoch": s // 100, "timestamp": t0 + s, "context": None}
              for m in METRICS for s in range(points)]
    for start in range(0, len(values), 20_000):
        session.post(f"{base}/batch/logger/experiment/metric", timeout=300,
                     json={"experimentKey": key, "values": values[start:start + 20_000]}).raise_for_status()
    session.post(f"{base}/batch/logger/experiment/parameter", timeout=120, json={
        "experimentKey": key, "values": [{"parameterName": k, "parameterValue": v, "timestamp": t0}
                                         for k, v in (("lr", "0.1"), ("batch", str(32 + n)))]}).raise_for_status()
    rng = random.Random(n)
    for k in range(ASSETS):
        session.post(f"{base}/asset/upload", timeout=120,
                     params={"experimentKey": key, "fileName": f"blob-{k}.bin", "step": k, "overwrite": "False"},
                     files={"file": ("file", rng.randbytes(ASSET_BYTES))}).raise_for_status()
    return key


def seed(server, experiments: int, points: int, project: str = PROJECT, workers: int = 8,
         fast: bool = True) -> float:
    """Fill the source: fast builds the same experiments in the server's state directly
    (server.seed.build_workspace); otherwise they are sent through REST batches."""
    t = time.perf_counter()
    if fast:
        build_workspace(server, project, experiments, points, METRICS, ASSETS, ASSET_BYTES)
        return time.perf_counter() - t
    session = requests.Session()
    session.headers["Authorization"] = server.api_key
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda n: _seed_one(session, server, n, points, project), range(experiments)))
    return time.perf_counter() - t


# ----- running a tool ------------------------------------------------------------------------

def run_tool(server, cmd: list[str], env: dict, cwd: str, latency_ms: float) -> dict:
    """Run `cmd` to its end: wall time, its process tree's peak RSS, and what the server saw."""
    server.reset_counters()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        watch = PeakRss(proc.pid)
        proc.wait()
        elapsed = time.perf_counter() - t
        peak = watch.stop()
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}):\n{err.read()[-3000:].decode(errors='replace')}")
    c = server.counters()
    in_flight = max(1, c["peak_in_flight"])
    bound = c["total"] * latency_ms / 1000 / in_flight
    return {"seconds": round(elapsed, 2), "requests": c["total"], "in_flight": in_flight,
            "bound": round(bound, 2), "x_bound": round(elapsed / bound, 2) if bound else 0.0,
            "peak_mb": round(peak / 1024), "load": load_average()}


class PeakRss:
    """The largest summed VmHWM (peak RSS, KiB) of a process and its descendants, polled
    from /proc.  Not os.wait4's ru_maxrss: Linux carries the RSS a child had when it was
    forked (a copy of this process, whose server state is large) into that figure, which
    then says more about the benchmark than about the tool."""

    def __init__(self, pid: int, every_s: float = 0.1):
        self.pid, self.every_s, self.peak = pid, every_s, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo += [int(c) for c in f.read().split()]
            except OSError:
                continue
        return pids

    @staticmethod
    def _hwm(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _poll(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, sum(self._hwm(p) for p in self._tree()))
            self._done.wait(self.every_s)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


def load_average() -> str:
    """The machine's 1/5/15-minute load average, beside each figure: the machine is shared."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def tool_env(server, home: str) -> dict:
    return {**os.environ, **server.env(), "HOME": home, "COMET_ERROR_TRACKING_ENABLE": "false",
            "COMET_DISABLE_ANNOUNCEMENT": "true"}


def mirror_cmd() -> list[str]:
    return [shutil.which("cometx-mirror") or str(Path(sys.executable).parent / "cometx-mirror")]


def cometx_cmd() -> str:
    return shutil.which("cometx") or str(Path(sys.executable).parent / "cometx")


# ----- the runs ------------------------------------------------------------------------------

def workspace_run(work: Path, experiments: int, points: int, latency_ms: float, with_cometx: bool,
                  project: str = PROJECT, rest_seed: bool = False) -> dict:
    src, dst = start_server(), start_server()
    home = work / f"home-{experiments}"
    home.mkdir()
    try:
        seconds = seed(src, experiments, points, project, fast=not rest_seed)
        fault = f"latency ms={latency_ms:g}"
        src.set_faults(fault)
        dst.set_faults(fault)
        env = tool_env(src, str(home))
        mirror = work / f"mirror-{experiments}"
        out = {"experiments": experiments, "points": points, "seed_s": round(seconds, 1)}
        out["fetch"] = run_tool(src, [*mirror_cmd(), "fetch", "--mirror", str(mirror), "--api-key", src.api_key,
                                      "--url-override", src.clientlib_url, "--json", f"{src.workspace}/{project}"],
                                env, str(home), latency_ms)
        out["push"] = run_tool(dst, [*mirror_cmd(), "push", "--mirror", str(mirror), "--to-api-key", dst.api_key,
                                     "--to-url-override", dst.clientlib_url, "--json",
                                     f"{src.workspace}/{project}", f"{dst.workspace}/{project}"],
                               env, str(home), latency_ms)
        out["push"]["experiments_at_destination"] = len(dst.state.data["experiments"])
        if with_cometx:
            folder = work / f"cometx-{experiments}"
            out["cometx_download"] = run_tool(src, [cometx_cmd(), "download", f"{src.workspace}/{project}",
                                                    "-o", str(folder)], env, str(home), latency_ms)
            copy_dst = start_server()
            copy_dst.set_faults(fault)
            try:
                copy_env = tool_env(copy_dst, str(home))
                out["cometx_copy"] = run_tool(copy_dst, [cometx_cmd(), "copy", "--path", str(folder),
                                                         f"{src.workspace}/{project}",
                                                         f"{copy_dst.workspace}/{project}"],
                                              copy_env, str(folder), latency_ms)
                out["cometx_copy"]["experiments_at_destination"] = len(copy_dst.state.data["experiments"])
            finally:
                copy_dst.stop()
        return out
    finally:
        src.stop()
        dst.stop()


# ----- the report ----------------------------------------------------------------------------

def _row(label: str, r: dict) -> str:
    return (f"| {label} | {r['seconds']:.1f} | {r['requests']} | {r['in_flight']} | {r['bound']:.1f} | "
            f"{r['x_bound']:.1f}× | {r['peak_mb']} MB | {r.get('load', '—')} |")


def report(results: dict, latency_ms: float) -> str:
    head = ("| run | wall s | requests | most in flight | latency bound s | × bound | peak memory | load |\n"
            "|---|---:|---:|---:|---:|---:|---:|---|")
    parts = [f"`python bench/bench_workspace.py` — each experiment: {len(METRICS)} metrics, {ASSETS} assets of "
             f"{ASSET_BYTES // 1000} KB, 2 parameters (built in the source server's state by "
             f"`server.seed.build_workspace`); {latency_ms:g} ms latency on "
             f"every request of the source and the destination; default `-j`. Latency bound = requests × latency "
             f"÷ most in flight. Peak memory = the tool's peak RSS (VmHWM of its process tree, polled every 0.1 s). {SHARED_MACHINE}"]
    ws = results.get("workspace")
    if ws:
        lines = [f"**Workspace: {ws['experiments']} experiments, {ws['points']:,} points per metric** "
                 f"(seeding took {ws['seed_s']} s)", "", head,
                 _row("cometx-mirror fetch", ws["fetch"]), _row("cometx-mirror push", ws["push"])]
        for name, label in (("cometx_download", "cometx download"), ("cometx_copy", "cometx copy")):
            if name in ws:
                lines.append(_row(label, ws[name]))
        if "cometx_download" in ws:
            lines += ["", f"fetch is {ws['cometx_download']['seconds'] / ws['fetch']['seconds']:.1f}× faster than "
                      f"`cometx download`" + (f"; push {ws['cometx_copy']['seconds'] / ws['push']['seconds']:.1f}× "
                                              f"faster than `cometx copy`" if "cometx_copy" in ws else "") + "."]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiments", type=int, default=300, help="0: skip the workspace run")
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--cometx", action="store_true", help="also time cometx download and cometx copy")
    ap.add_argument("--rest-seed", action="store_true", help="seed through REST uploads (slow)")
    ap.add_argument("--out", help="also write the results as JSON here")
    ap.add_argument("--report", help="only write the report of results saved earlier with --out")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--note", default="", help="a paragraph to add under the table (what the figures show)")
    args = ap.parse_args()
    if args.report:
        results = json.loads(Path(args.report).read_text())
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-ws-"))
        results = {}
        try:
            if args.experiments:
                results["workspace"] = workspace_run(work, args.experiments, args.points, args.latency_ms,
                                                     args.cometx, rest_seed=args.rest_seed)
                print(json.dumps(results["workspace"]), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.out and not args.report:
        Path(args.out).write_text(json.dumps(results, indent=1))
    text = report(results, args.latency_ms) + (f"\n\n{args.note}" if args.note else "")
    print(text)
    if args.write_docs:
        write_section("workspace", "A workspace at scale (`bench/bench_workspace.py`)", text)


if __name__ == "__main__":
    main()

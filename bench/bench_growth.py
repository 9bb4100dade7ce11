"""How fetch grows: time and peak memory against the size of a Comet project and of one experiment.

    python bench/bench_growth.py [--sizes 10,100,1000] [--points 1000] [--latency-ms 20] [--push]
                                 [--big-points 1000,200000,1000000] [--big-asset-mb 2048] [--write-docs]

Workspaces: `--sizes` projects of that many experiments (bench_workspace's shape: 3 metrics of
`--points` values, 6 assets of 20 KB, 2 parameters), built straight into the source server's
state (server.seed.build_workspace), fetched (and with --push pushed) through `--latency-ms`.

One big experiment, against a baseline of the same shape but small: 2 metrics of
`--big-points` values with the server's total-fidelity setting on (so fetch downloads the
metrics' CSV zips and indexes every point, the heaviest way a metric arrives; 200,000 is past
one ingest batch, so the rows above it show whether the peak still grows), then one asset
of `--big-asset-mb` MiB.  The asset is generated into the source server's blob folder in
chunks and every folder is deleted at the end: no file of that size is kept.  Before it, the
free disk is checked (the asset lands three times: source, mirror, destination).

Each tool runs in its own process; peak memory is its process tree's peak RSS (VmHWM), and
the load average is recorded beside each figure: the machine is shared.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

try:
    from bench.report import write_section
    from bench.bench_workspace import METRICS, mirror_cmd, run_tool, tool_env
except ImportError:                       # run as a script from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.report import write_section
    from bench.bench_workspace import METRICS, mirror_cmd, run_tool, tool_env

from cometx_mirror.server.runner import start_server
from cometx_mirror.server.seed import add_big_asset, build_workspace


def _fetch(src, mirror: Path, project: str, env: dict, home: Path, latency_ms: float) -> dict:
    r = run_tool(src, [*mirror_cmd(), "fetch", "--mirror", str(mirror), "--api-key", src.api_key,
                       "--url-override", src.clientlib_url, "--json", f"{src.workspace}/{project}"],
                 env, str(home), latency_ms)
    return r


def _push(src, dst, mirror: Path, project: str, env: dict, home: Path, latency_ms: float) -> dict:
    r = run_tool(dst, [*mirror_cmd(), "push", "--mirror", str(mirror), "--to-api-key", dst.api_key,
                       "--to-url-override", dst.clientlib_url, "--json", f"{src.workspace}/{project}",
                       f"{dst.workspace}/{project}"], env, str(home), latency_ms)
    return r


def growth_run(work: Path, experiments: int, points: int, latency_ms: float, push: bool) -> dict:
    project = f"grow{experiments}"
    src, dst = start_server(), (start_server() if push else None)
    home = work / f"home-{experiments}"
    home.mkdir()
    try:
        build_workspace(src, project, experiments, points)
        for server in (src, dst):
            if server:
                server.set_faults(f"latency ms={latency_ms:g}")
        env = tool_env(src, str(home))
        mirror = work / f"mirror-{experiments}"
        out = {"experiments": experiments, "points": points,
               "fetch": _fetch(src, mirror, project, env, home, latency_ms)}
        if push:
            out["push"] = _push(src, dst, mirror, project, env, home, latency_ms)
        shutil.rmtree(mirror, ignore_errors=True)
        return out
    finally:
        src.stop()
        if dst:
            dst.stop()


def big_run(work: Path, points: int, asset_mb: int, latency_ms: float, push: bool) -> dict:
    """One experiment: 2 metrics of `points` values (total fidelity on), one asset of `asset_mb` MiB."""
    name = f"big-{points}-{asset_mb}"
    src = start_server(data_dir=str(work / f"{name}-src"), total_fidelity=True)
    # the destination on disk only for a big asset: with a data_dir the server saves its whole state as
    # JSON every few seconds under its lock, which at 10^6 points timed the server more than the push
    dst = (start_server(data_dir=str(work / f"{name}-dst")) if asset_mb else start_server()) if push else None
    home = work / f"home-{name}"
    home.mkdir()
    try:
        key = build_workspace(src, "big", 1, points, metrics=METRICS[:2], assets=1)[0]
        if asset_mb:
            add_big_asset(src, key, "big.bin", asset_mb << 20)
        for server in (src, dst):
            if server:
                server.set_faults(f"latency ms={latency_ms:g}")
        env = tool_env(src, str(home))
        mirror = work / f"mirror-{name}"
        out = {"points": points, "asset_mb": asset_mb, "fetch": _fetch(src, mirror, "big", env, home, latency_ms)}
        if push:
            out["push"] = _push(src, dst, mirror, "big", env, home, latency_ms)
        shutil.rmtree(mirror, ignore_errors=True)
        return out
    finally:
        src.stop()
        if dst:
            dst.stop()
        for folder in (f"{name}-src", f"{name}-dst"):
            shutil.rmtree(work / folder, ignore_errors=True)


def check_disk(work: Path, asset_mb: int) -> None:
    need = 3 * (asset_mb << 20) + (2 << 30)     # source, mirror, destination, and room to spare
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(f"not enough free disk for a {asset_mb} MiB asset: {free >> 30} GiB free, "
                         f"{need >> 30} GiB needed")


def _cell(r: dict | None, key: str, fmt: str = "{}") -> str:
    return fmt.format(r[key]) if r else "—"


def report(results: dict, latency_ms: float) -> str:
    parts = [f"`python bench/bench_growth.py` — fetch (and push) through {latency_ms:g} ms latency, default "
             f"`-j`; each tool in its own process, peak memory = its process tree's peak RSS (VmHWM polled from /proc); load = the "
             f"machine's 1/5/15-minute load average when the run ended (2 cores shared with other "
             f"engineers' runs: wall times are noisy, requests and memory are not)."]
    growth = results.get("growth") or []
    if growth:
        lines = ["**Growth with the project** (each experiment: 3 metrics of "
                 f"{growth[0]['points']:,} points, 6 assets of 20 KB, 2 parameters)", "",
                 "| experiments | fetch s | fetch requests | fetch peak | push s | push requests | push peak "
                 "| load |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
        for g in growth:
            f, p = g["fetch"], g.get("push")
            lines.append(f"| {g['experiments']:,} | {f['seconds']:.1f} | {f['requests']:,} | {f['peak_mb']} MB | "
                         f"{_cell(p, 'seconds', '{:.1f}')} | {_cell(p, 'requests', '{:,}')} | "
                         f"{_cell(p, 'peak_mb', '{} MB')} | {(p or f)['load']} |")
        parts.append("\n".join(lines))
    big = results.get("big") or []
    if big:
        lines = ["**One experiment, growing** (2 metrics, total fidelity on: fetch downloads the CSV zips "
                 "and indexes every point; the asset is generated bytes)", "",
                 "| points per metric | largest asset | fetch s | fetch peak | push s | push peak | load |",
                 "|---:|---:|---:|---:|---:|---:|---|"]
        for b in big:
            p = b.get("push")
            size = f"{b['asset_mb']:,} MiB" if b["asset_mb"] else "20 KB"
            lines.append(f"| {b['points']:,} | {size} | {b['fetch']['seconds']:.1f} | {b['fetch']['peak_mb']} MB | "
                         f"{_cell(p, 'seconds', '{:.1f}')} | {_cell(p, 'peak_mb', '{} MB')} | "
                         f"{(p or b['fetch'])['load']} |")
        parts.append("\n".join(lines))
        growth_line = _big_growth(big)
        if growth_line:
            parts.append(growth_line)
    return "\n\n".join(parts)


def _big_growth(big: list[dict]) -> str:
    """What the one-experiment rows say about the bound: the fetch peak of the largest run of
    each kind over the small baseline (1,000 points or fewer, no big asset), from the rows alone."""
    base = [b for b in big if not b["asset_mb"] and b["points"] <= 1000]
    if not base:
        return ""
    small = min(base, key=lambda b: b["fetch"]["peak_mb"])
    floor = small["fetch"]["peak_mb"]
    said = []
    points = sorted((b for b in big if not b["asset_mb"] and b["points"] > 1000), key=lambda b: b["points"])
    if points:
        peaks = ", ".join(f"{b['fetch']['peak_mb']} MB at {b['points']:,}" for b in points)
        said.append(f"with the points per metric: {floor} MB at {small['points']:,}, {peaks} "
                    f"({points[-1]['fetch']['peak_mb'] - floor:+d} MB at the largest)")
    assets = sorted((b for b in big if b["asset_mb"]), key=lambda b: b["asset_mb"])
    if assets:
        a = assets[-1]
        said.append(f"with a {a['asset_mb']:,} MiB asset: {a['fetch']['peak_mb']} MB "
                    f"({a['fetch']['peak_mb'] - floor:+d} MB)")
    return "Fetch peak of one experiment " + "; ".join(said) + "." if said else ""


def push_report(results: dict, latency_ms: float) -> str:
    """The --push section: push alone, one experiment of 2 metrics (total-fidelity zips among its
    assets), each row labelled with the code it measured (--label)."""
    rows = [b for b in results.get("big") or [] if b.get("push")]
    lines = [f"`python bench/bench_growth.py --push --sizes '' --big-asset-mb ''` — one experiment of 2 metrics "
             f"(the source keeps total-fidelity CSV zips; the mirror pushes every point and the zips as assets) "
             f"through {latency_ms:g} ms latency; peak = the push process's peak RSS (VmHWM from /proc); "
             f"requests counted by the destination server; load = 1/5/15-minute load average at the end "
             f"(2 shared cores: wall times are noisy, requests and memory are not).", "",
             "| code | points per metric | push s | push requests | push peak | load |",
             "|---|---:|---:|---:|---:|---|"]
    for b in sorted(rows, key=lambda b: (b["points"], b.get("label", ""))):
        p = b["push"]
        lines.append(f"| {b.get('label', '')} | {b['points']:,} | {p['seconds']:.1f} | {p['requests']:,} | "
                     f"{p['peak_mb']} MB | {p['load']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000", help="experiments per project; empty: none")
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--push", action="store_true", help="also push each mirror to a second server")
    ap.add_argument("--big-points", default="1000,200000,1000000",     # 200,000: past one ingest batch
                    help="one experiment each (2 metrics)")
    ap.add_argument("--big-asset-mb", default="2048", help="one experiment each, beside 1,000 points")
    ap.add_argument("--out", help="also write the results as JSON here")
    ap.add_argument("--label", default="", help="with --push: names the code measured (kept in --out)")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--note", default="", help="a paragraph to add under the tables (what the figures show)")
    ap.add_argument("--report", help="only write the report of results saved earlier with --out "
                                     "(several files, comma-separated, are merged)")
    args = ap.parse_args()
    if args.report:
        results = {"growth": [], "big": []}
        for name in args.report.split(","):
            saved = json.loads(Path(name).read_text())
            for part in results:
                results[part] += saved.get(part, [])
        results["growth"].sort(key=lambda g: g["experiments"])
        results["big"].sort(key=lambda b: (b["asset_mb"], b["points"]))
        _write(results, args)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    results = {"growth": [], "big": []}
    try:
        for n in [int(x) for x in args.sizes.split(",") if x]:
            results["growth"].append(growth_run(work, n, args.points, args.latency_ms, args.push))
            print(json.dumps(results["growth"][-1]), flush=True)
        for points in [int(x) for x in args.big_points.split(",") if x]:
            results["big"].append({**big_run(work, points, 0, args.latency_ms, args.push), "label": args.label})
            print(json.dumps(results["big"][-1]), flush=True)
        for mb in [int(x) for x in args.big_asset_mb.split(",") if x]:
            check_disk(work, mb)
            results["big"].append(big_run(work, 1000, mb, args.latency_ms, args.push))
            print(json.dumps(results["big"][-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    _write(results, args)


def _write(results: dict, args) -> None:
    if args.push:       # a section of its own: the fetch figures above are another run's
        text = push_report(results, args.latency_ms) + (f"\n\n{args.note}" if args.note else "")
        print(text)
        if args.write_docs:
            write_section("growth-push", "Push growth: one experiment (`bench/bench_growth.py --push`)", text)
        return
    text = report(results, args.latency_ms) + (f"\n\n{args.note}" if args.note else "")
    print(text)
    if args.write_docs:
        write_section("growth", "Growth: project size and experiment size (`bench/bench_growth.py`)", text)


if __name__ == "__main__":
    main()

"""Benchmark: fetch and push against a server that rate-limits, next to the bound the limit sets.

    python bench/bench_ratelimit.py [--experiments 10] [--read-rpm 1200] [--scale 20] [--write-docs]

1. Server A (no limit) is seeded through the real comet_ml SDK, and fetched once into a
   mirror (the push source).
2. A fresh fetch of the same project while A allows `--read-rpm` reads a minute per key.
3. A push of the mirror into server B, which enforces Comet's documented logging limits
   divided by `--scale` (metrics 12,000, parameters 10,000, output 12,000, other 8,000 a minute).
The bound is the least wall time the limit allows: for each kind, the requests the server
admitted divided by that kind's rate, the largest of these (the kinds refill side by side),
less the one burst each bucket starts with.  The goal is a wall time within 1.2x of it.
With --write-docs the figures replace the "rate limits" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import write_section  # noqa: E402
from cometx_mirror.server.limits import COMET_LOGGING_LIMITS, limit_kind, parse  # noqa: E402
from cometx_mirror.server.runner import start_server  # noqa: E402


PROJECT = "bench"
SDK_QUIET = dict(auto_output_logging=False, log_env_details=False, log_code=False, log_git_metadata=False,
                 log_git_patch=False, log_env_gpu=False, log_env_cpu=False, log_env_host=False,
                 display_summary_level=0)


def seed(server, n_experiments: int, steps: int, home: str) -> None:
    """Experiments shaped like bench_push's; asset bytes go in as file objects (comet_ml's
    log_asset_data takes raw bytes that start with `~` for a path)."""
    saved = dict(os.environ)
    os.environ.update({**server.env(), "HOME": home, "COMET_ERROR_TRACKING_ENABLE": "false",
                       "COMET_DISABLE_ANNOUNCEMENT": "true"})
    try:
        import comet_ml
        for n in range(n_experiments):
            exp = comet_ml.Experiment(project_name=PROJECT, **SDK_QUIET)
            exp.set_name(f"run-{n}")
            for step in range(steps):
                exp.log_metrics({"loss": 1 / (step + 1), "acc": step / steps, "lr": 0.1}, step=step)
            exp.log_parameters({"lr": 0.1, "batch": 32 + n})
            for k in range(5):
                exp.log_other(f"other-{k}", k)
            exp.add_tags(["bench", f"n{n}"])
            exp.log_html(f"<p>{n}</p>")
            for k in range(6):
                exp.log_asset(io.BytesIO(os.urandom(20_000)), file_name=f"blob-{k}.bin", step=k)
            exp.log_model("net", io.BytesIO(b"w" * 50_000), file_name="weights.bin")
            exp.end()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def bound_seconds(server, spec: str) -> tuple[float, dict]:
    """The least time the limit allows for what the server admitted, and the admitted count per kind."""
    per_minute, burst = parse(spec)
    admitted: dict[str, int] = {}
    for r in server.requests():
        if r["status"] != 429:
            kind = limit_kind(r["path"])
            admitted[kind] = admitted.get(kind, 0) + 1
    bound = 0.0
    for kind, n in admitted.items():
        if kind in per_minute:
            rate = per_minute[kind] / 60
            bound = max(bound, (n - max(1.0, rate * burst)) / rate)
    return bound, admitted


def measure(label: str, server, spec: str, cmd: list[str], env: dict) -> dict:
    server.reset_counters()
    server.set_rate_limits(spec)
    seconds = run(cmd, env)
    server.set_rate_limits(None)
    bound, admitted = bound_seconds(server, spec)
    counters = server.counters()
    row = {"run": label, "limit": spec, "seconds": round(seconds, 2), "bound_s": round(bound, 2),
            "ratio": round(seconds / bound, 2) if bound else None, "requests": counters["total"],
            "admitted": admitted, "throttled_429": counters["rate_limited"]}
    print(json.dumps(row), file=sys.stderr)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiments", type=int, default=10)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--read-rpm", type=int, default=1200, help="reads a minute the fetch is allowed")
    ap.add_argument("--scale", type=float, default=20, help="Comet's logging limits divided by this")
    ap.add_argument("-j", "--parallel", type=int, default=4)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-ratelimit-")
    home = os.path.join(work, "home")
    os.makedirs(home)
    py = sys.executable

    source = start_server()
    t = time.perf_counter()
    seed(source, args.experiments, args.steps, home)
    print(f"seeded {args.experiments} experiments in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    ws = source.workspace
    env = {**os.environ, "HOME": home, "COMET_ERROR_TRACKING_ENABLE": "false"}
    for name in [k for k in env if k.startswith("COMET_") and k != "COMET_ERROR_TRACKING_ENABLE"]:
        del env[name]
    mirror = os.path.join(work, "mirror")
    src = ["--api-key", source.api_key, "--url-override", source.clientlib_url]
    run([py, "-m", "cometx_mirror", "fetch", "--mirror", mirror, *src, f"{ws}/{PROJECT}"], env)

    rows = []
    read_spec = f"read={args.read_rpm}"
    rows.append(measure("fetch", source, read_spec,
                        [py, "-m", "cometx_mirror", "fetch", "--mirror", os.path.join(work, "fresh"), *src,
                         "-j", str(args.parallel), "--json", f"{ws}/{PROJECT}"], env))
    write_spec = " ".join(f"{kind}={rpm / args.scale:g}" for kind, rpm in COMET_LOGGING_LIMITS.items())
    dest = start_server()
    rows.append(measure("push", dest, write_spec,
                        [py, "-m", "cometx_mirror", "push", "--mirror", mirror, "--to-api-key", dest.api_key,
                         "--to-url-override", dest.clientlib_url, "-j", str(args.parallel), "--json",
                         f"{ws}/{PROJECT}", f"{dest.workspace}/{PROJECT}"], env))
    dest.stop()
    source.stop()
    result = {"experiments": args.experiments, "parallel": args.parallel, "rows": rows}
    print(json.dumps(result, indent=2))
    if args.write_docs:
        write_docs(result, args)


def write_docs(result: dict, args) -> None:
    lines = [f"`python bench/bench_ratelimit.py` — {result['experiments']} experiments (6 assets, a model, "
             f"3 metrics of {args.steps} steps each), `-j {result['parallel']}`. Fetch reads from a server "
             f"allowing {args.read_rpm:,} reads a minute per key; push writes into one enforcing Comet's "
             f"logging limits divided by {args.scale:g}. The bound is the least time the limit allows for "
             "the requests the server admitted (per kind: admitted ÷ rate, less the first burst; the "
             "largest kind). Goal: within 1.2x.", "",
             "| run | limit (requests/min per key) | wall time (s) | bound (s) | ratio | requests | 429s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['run']} | `{r['limit']}` | {r['seconds']} | {r['bound_s']} | {r['ratio']} | "
                     f"{r['requests']} | {r['throttled_429']} |")
    lines += ["", "Admitted requests by kind: " + "; ".join(
        f"{r['run']}: " + ", ".join(f"{k} {v}" for k, v in sorted(r["admitted"].items())) for r in result["rows"]),
        "", "Fetch and push share one pace per client (`net/throttle.py`): a 429 pauses every thread for "
        "its Retry-After and sets the pace just under the rate the server was seen to admit; the pace "
        "then rises again slowly, so a run draws a 429 now and then rather than one per request. "
        "Wall time includes process start and, for fetch, indexing."]
    write_section("ratelimit", "Under a rate limit (`bench/bench_ratelimit.py`)", "\n".join(lines))


if __name__ == "__main__":
    main()

"""`cometx-mirror serve`: run the Comet-compatible server on loopback until Ctrl-C."""
from __future__ import annotations

import time

import click

from .base import CliError, expected_errors, main


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=0, type=int, help="Port (default: a free one).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False),
              help="Persist state and uploads in this folder across restarts (default: memory only).")
@click.option("--seed", type=click.Choice(["demo"]), help="Log demo data through the real comet_ml SDK first.")
@click.option("--seed-size", type=click.Choice(["small", "large"]), default="small", show_default=True,
              help="How much demo data --seed logs.")
@click.option("--latency", "latency_ms", default=0.0, type=float, help="Added latency per request, in ms.")
@click.option("--faults", "faults_spec", default=None, help='Fault rules, e.g. "503 p=0.1; latency ms=5-50" '
              "(see docs/server.md).")
@click.option("--rate-limit", "rate_limit", default=None,
              help='Per-key limits in requests per minute: "comet" (Comet\'s logging limits), '
                   '"read=600 other=400", "all=1200" (see docs/server.md).')
@click.option("--no-sampling", "no_sampling", is_flag=True,
              help="Answer every metric point (Comet samples each metric to 15,000 values).")
@click.option("--total-fidelity", is_flag=True,
              help='Comet\'s "Store metrics without sampling": metrics also listed as CSV-zip assets.')
@click.option("--strict", is_flag=True,
              help="Comet's other habits: unsorted points, 64-bit offsets, Java-style numbers, asset redirects.")
@click.option("--mirror", "mirror_path", type=click.Path(file_okay=False),
              help="Answer read-only from this mirror, with a web page at / (docs/serve.md).")
@click.option("--snapshot", default=None, help="With --mirror: serve this snapshot (an id or its prefix; "
              "default: the latest of every source).")
@click.option("--api-key", "api_key", default=None,
              help="With --mirror: the key every request must carry (or COMETX_MIRROR_API_KEY); "
                   "required when --host is not 127.0.0.1.")
@expected_errors
def serve(host, port, data_dir, seed, seed_size, latency_ms, faults_spec, rate_limit,
          no_sampling, total_fidelity, strict, mirror_path, snapshot, api_key) -> None:
    """Serve a Comet-compatible API that the real comet_ml SDK accepts as Comet."""
    from ..server import FaultSpecError, start_server
    from ..server.limits import LimitSpecError

    if not 0 <= port <= 65535:
        raise CliError(f"--port {port}: a TCP port is 0 to 65535 (0: any free one)")
    if mirror_path:
        _serve_mirror(mirror_path, host, port, api_key, snapshot)
        return

    try:
        handle = start_server(host=host, port=port, data_dir=data_dir, latency_ms=latency_ms, faults=faults_spec,
                              rate_limit=rate_limit, sampling=not no_sampling,
                              total_fidelity=total_fidelity, strict=strict)
    except FaultSpecError as e:
        raise CliError(f"--faults: {e}") from None
    except LimitSpecError as e:
        raise CliError(f"--rate-limit: {e}") from None
    except OSError as e:       # the port is taken, or the address is not this machine's
        raise CliError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        click.echo(f"Comet-compatible server at {handle.url}")
        if seed:
            if handle.state.data["experiments"]:
                click.echo("data folder already holds experiments; not seeding again")
            else:
                from ..server.seed import quiet_sdk, seed as run_seed
                click.echo(f"seeding {seed_size} demo data through comet_ml (about 20 s; wait for 'ready') ...")
                # Faults would make the seeding itself flaky: switch them on afterwards.
                handle.set_faults(None)
                handle.set_rate_limits(None)
                with quiet_sdk():
                    summary = run_seed(handle, size=seed_size)
                handle.set_faults(faults_spec)
                handle.set_rate_limits(rate_limit)
                click.echo(f"seeded {len(summary['experiments'])} experiments in "
                           f"{len(summary['projects'])} projects")
        click.echo("Use it with:")
        for name, value in handle.env().items():
            click.echo(f"  export {name}={value}")
        for user in handle.users[1:]:
            click.echo(f"  (another user: {user.name}, COMET_API_KEY={user.api_key}, "
                       f"workspaces {', '.join(user.workspaces)})")
        click.echo(f"Admin: {handle.url}/_admin/counters  /_admin/requests  /_admin/faults  /_admin/limits  /_admin/settings")
        click.echo(f"ready: {handle.url} (stop it with Ctrl-C, or `kill %1` when started with &)")
    except BaseException:
        handle.stop()
        raise
    _run_until_interrupted(handle)


def _serve_mirror(path, host, port, api_key, snapshot) -> None:
    from ..server.mirror_access import KeyRequired
    from ..server.mirror_serve import serve_mirror

    try:
        handle = serve_mirror(path, host=host, port=port, api_key=api_key, snapshot=snapshot)
    except KeyRequired as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    click.echo(f"Serving the mirror read-only at {handle.url}  (open {handle.url}/ in a browser)")
    click.echo(f"comet_ml / cometx: export COMET_URL_OVERRIDE={handle.clientlib_url}"
               + ("  COMET_API_KEY=<your key>" if handle.state.api_key else "  COMET_API_KEY=any"))
    _run_until_interrupted(handle)


def _run_until_interrupted(handle) -> None:
    """Serve until Ctrl-C, then stop the server."""
    try:
        click.echo("Press Ctrl-C to stop.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        handle.stop()

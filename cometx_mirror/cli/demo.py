"""`cometx-mirror demo`: the whole job on this machine, with no account and no network.

Two bundled Comet-compatible servers on loopback (a source seeded with demo data
through the real comet_ml SDK, and an empty destination), then the commands a user
would type: fetch, fetch again, log, query, push, push again, check.  Each command
is printed before it runs, so the demo doubles as a transcript to copy from.
"""
from __future__ import annotations

import contextlib
import shlex
import time
from pathlib import Path

import click

from .base import CliError, expected_errors, main

DEFAULT_DEMO_MIRROR = "./cometx-mirror-demo"
QUERY = ("SELECT e.project, e.name, min(m.value) AS best_loss FROM metrics m JOIN experiments e "
         "USING (exp_id) WHERE m.name = 'loss' GROUP BY ALL ORDER BY best_loss LIMIT 5")


@main.command()
@click.option("--mirror", "mirror_path", default=DEFAULT_DEMO_MIRROR, show_default=True,
              type=click.Path(file_okay=False), help="Where to create the demo mirror (must not exist yet).")
@click.option("--keep", is_flag=True, help="Leave both servers running afterwards, until Ctrl-C.")
@expected_errors
def demo(mirror_path, keep) -> None:
    """Run the whole tool once on two local demo servers: fetch, query, push twice, check."""
    from ..server import start_server
    from ..server.seed import quiet_sdk, seed

    mirror = Path(mirror_path)
    if mirror.exists() and any(mirror.iterdir()):
        raise CliError(f"{mirror} already exists; remove it or pass --mirror NEW_FOLDER")
    source = start_server()
    destination = start_server()
    try:
        alice = source.users[0]
        bob = destination.users[1]
        click.echo(f"source server (demo data)  {source.url}")
        click.echo(f"destination server (empty) {destination.url}")
        click.echo("seeding the source through the real comet_ml SDK (about 20 s) ...")
        started = time.monotonic()
        with quiet_sdk():
            seeded = seed(source, size="small")
        click.echo(f"seeded {len(seeded['experiments'])} experiments in {len(seeded['projects'])} projects "
                   f"in {time.monotonic() - started:.0f} s\n")
        src = ["--mirror", str(mirror)]
        login = ["--api-key", alice.api_key, "--url-override", source.clientlib_url]
        to = ["--to-api-key", bob.api_key, "--to-url-override", destination.clientlib_url]
        ws = alice.default_workspace
        steps = [
            ("fetch a whole workspace into a new mirror", ["fetch", *src, *login, ws]),
            ("fetch again: only what changed (nothing), a few requests", ["fetch", *src, *login, ws]),
            ("the snapshots", ["log", *src]),
            ("what is in it", ["ls", *src, ws]),
            ("ask it a question in SQL", ["query", *src, QUERY]),
            ("push it into the other Comet", ["push", *src, *to, ws, bob.default_workspace]),
            ("push again: nothing to send", ["push", *src, *to, ws, bob.default_workspace]),
            ("prove the destination holds everything", ["check", *src, *to, ws, bob.default_workspace]),
        ]
        for title, args in steps:
            _run(title, args)
        click.echo(f"\nThe mirror is in {mirror}; try `cometx-mirror ls --mirror {shlex.quote(str(mirror))}`.")
        if keep:
            click.echo("Both servers keep running; press Ctrl-C to stop them.")
            click.echo(f"  source:      COMET_URL_OVERRIDE={source.clientlib_url} COMET_API_KEY={alice.api_key}")
            click.echo(f"  destination: COMET_URL_OVERRIDE={destination.clientlib_url} "
                       f"COMET_API_KEY={bob.api_key}")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    finally:
        source.stop()
        destination.stop()


def _run(title: str, args: list[str]) -> None:
    """Print the command as a user would type it, then run it in this process."""
    shown = " ".join(shlex.quote(a) for a in args)
    click.echo(f"\n# {title}\n$ cometx-mirror {shown}")
    try:
        main.main(args, prog_name="cometx-mirror", standalone_mode=False)
    except SystemExit as e:
        if e.code not in (0, None):
            raise CliError(f"the demo stopped: `cometx-mirror {args[0]}` exited {e.code}") from None
    except click.ClickException as e:
        raise CliError(f"the demo stopped at `cometx-mirror {args[0]}`: {e.format_message()}") from None

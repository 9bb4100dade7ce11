"""`check`: compare a destination Comet with the mirror, entity by entity (reads only)."""
from __future__ import annotations

import json
import sys

import click

from ..sync.check import KINDS, CheckOptions, run_check
from .base import expected_errors, main, mirror_option, open_mirror


@main.command()
@click.argument("source")
@click.argument("destination")
@mirror_option
@click.option("--to-api-key", "api_key", envvar="COMET_TO_API_KEY",
              help="Destination API key, read-only is enough (or $COMET_TO_API_KEY; default: COMET_API_KEY, "
                   "~/.comet.config).")
@click.option("--to-url-override", "url", envvar="COMET_TO_URL_OVERRIDE",
              help="Destination URL, e.g. https://host/clientlib/ (or $COMET_TO_URL_OVERRIDE).")
@click.option("--read-data", is_flag=True, help="Download the destination's assets and compare their bytes.")
@click.option("-j", "--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Downloads at once while reading the destination.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@expected_errors
def check(source, destination, mirror_path, api_key, url, read_data, parallel, as_json) -> None:
    """Check that DESTINATION holds everything SOURCE (a mirror path) pushed there.

    \b
    check WORKSPACE NEW_WORKSPACE
    check WORKSPACE/PROJECT NEW_WORKSPACE/NEW_PROJECT

    Takes the same paths as push.  Reads the destination back through its API and compares
    experiments (one per source, none extra), metric points, params, others, tags, system
    details, texts, assets (names, types, sizes; bytes with --read-data), artifacts, registry
    models and panels.  Exits 1 on any difference; writes nothing.
    """
    mirror = open_mirror(mirror_path)
    result = run_check(mirror, source, destination,
                       CheckOptions(api_key=api_key, url=url, read_data=read_data, parallel=parallel))
    if as_json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))
    else:
        click.echo(f"{'what':<16} {'checked':>8} {'differ':>7}")
        for kind in KINDS:
            if result.checked[kind]:
                click.echo(f"{kind:<16} {result.checked[kind]:>8} {result.differ[kind]:>7}")
        for d in result.differences[:50]:
            where = d["source"] or d["destination"]
            click.echo(f"differs: {d['kind']} {where}: {d['detail']}")
        if len(result.differences) > 50:
            click.echo(f"... and {len(result.differences) - 50} more (--json lists all)")
        click.echo("the destination holds everything checked" if result.ok
                   else f"{len(result.differences)} difference{'s' if len(result.differences) != 1 else ''}")
    if not result.ok:
        sys.exit(1)

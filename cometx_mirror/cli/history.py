"""`diff`: compare two snapshots."""
from __future__ import annotations

import json

import click

from ..sync.diff import diff_snapshots
from .base import CliError, expected_errors, main, mirror_option, open_mirror

MARK = {"added": "+", "removed": "-", "changed": "~"}


@main.command()
@click.argument("old")
@click.argument("new")
@mirror_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change.")
@expected_errors
def diff(old: str, new: str, mirror_path: str, as_json: bool) -> None:
    """Show what changed from snapshot OLD to snapshot NEW (ids or unique prefixes, see `log`)."""
    mirror = open_mirror(mirror_path)
    try:
        changes = diff_snapshots(mirror, old, new)
    except ValueError as e:
        raise CliError(str(e)) from None
    for c in changes:
        if as_json:
            click.echo(json.dumps(c.__dict__))
        else:
            click.echo(f"{MARK[c.kind]} {c.label}" + (f"  ({', '.join(c.parts)})" if c.parts else ""))
    if not changes:
        click.echo("no changes")

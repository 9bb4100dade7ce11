"""Read-side and housekeeping commands: init, ls, query, log, show, cat, export, verify, gc, reindex."""
from __future__ import annotations

import click

from .base import expected_errors, main, mirror_option, open_mirror


@main.command()
@mirror_option
@expected_errors
def init(mirror_path: str) -> None:
    """Create an empty mirror (fetch creates one too)."""
    mirror = open_mirror(mirror_path, create=True)
    click.echo(f"mirror ready at {mirror.root}")

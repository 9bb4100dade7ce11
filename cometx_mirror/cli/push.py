"""`push`: copy mirrored experiments into a Comet instance, skipping what is already there."""
from __future__ import annotations

import json
import sys
import traceback

import click

from .. import paths
from ..sync.push import PushOptions, run_push
from .base import expected_errors, main, mirror_option, open_mirror
from .output import plural
from .progress import Progress


@main.command()
@click.argument("source")
@click.argument("destination")
@mirror_option
@click.option("--to-api-key", "api_key", envvar="COMET_TO_API_KEY", show_envvar=True,
              help="Destination API key; better from $COMET_TO_API_KEY, which `ps` does not show "
                   "(default: COMET_API_KEY, ~/.comet.config).")
@click.option("--to-url-override", "url", envvar="COMET_TO_URL_OVERRIDE", show_envvar=True,
              help="Destination URL, e.g. https://host/clientlib/ "
                   "(default: COMET_URL_OVERRIDE, config, smart key).")
@click.option("--snapshot", help="Push the state of this snapshot id instead of the latest.")
@click.option("--sync", is_flag=True, help="Skip an experiment whose name exists in the destination project.")
@click.option("--symlink", is_flag=True, help="Link experiments into the destination project instead of copying.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send nothing.")
@click.option("-j", "--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Experiments pushed at once.")
@click.option("--max-rps", type=click.FloatRange(min=0.01), default=None,
              help="At most this many requests a second (stay under a known quota); 429s slow it down further.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines, only the summary.")
@click.option("--debug", is_flag=True, help="Stop at the first error, with its traceback.")
@expected_errors
def push(source, destination, mirror_path, api_key, url, snapshot, sync, symlink, dry_run, parallel,
         max_rps, as_json, quiet, debug) -> None:
    """Push SOURCE (a mirror path) to DESTINATION on a Comet instance.

    \b
    push WORKSPACE NEW_WORKSPACE
    push WORKSPACE/PROJECT NEW_WORKSPACE/NEW_PROJECT
    push WORKSPACE/PROJECT/EXPERIMENT NEW_WORKSPACE/NEW_PROJECT
    push WORKSPACE/panels[/NAME] NEW_WORKSPACE

    A second push of the same data sends nothing; after the source grew, only the difference.
    The destination key is read from COMET_TO_API_KEY (and its server from
    COMET_TO_URL_OVERRIDE) when not given as a flag: a flag shows in `ps`.
    """
    paths.check(source, "source path")
    paths.check(destination, "destination")
    mirror = open_mirror(mirror_path)
    progress = Progress.for_command("push", quiet=quiet or as_json)
    options = PushOptions(api_key=api_key, url=url, snapshot=snapshot, sync=sync, symlink=symlink,
                          dry_run=dry_run, parallel=parallel, max_rps=max_rps,
                          progress=progress.event, debug=debug)
    try:
        with progress:
            result = run_push(mirror, source, destination, options)
    except Exception:
        if not debug:
            raise
        traceback.print_exc()
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))
    else:
        if dry_run:
            for step in result.plan:
                click.echo(plan_line(step))
        click.echo(f"{result.new} new, {result.updated} updated, {result.unchanged} unchanged, "
                   f"{result.skipped} skipped, {result.symlinked} linked, {result.failed} failed; "
                   f"{result.workspace_entities} workspace entities; "
                   f"{result.writes} writes, {result.reads} reads" + (" (dry run)" if dry_run else ""))
        for line in result.warnings:
            click.echo(f"warning: {line}", err=True)
        for line in result.errors:
            click.echo(f"error: {line}", err=True)
    if result.failed or result.errors:
        sys.exit(1)


def plan_line(step: dict) -> str:
    """One step of a dry run's plan, as a sentence (--json gives the plan as data)."""
    if "symlink" in step:
        return f"would link {step['experiment']} into {step['symlink']}"
    if "entity" in step:
        return f"would push {step['entity']}"
    verb = "create" if step.get("create") else "update"
    parts = [plural(step.get(k) or 0, word) for k, word in
             (("metric_points", "metric point"), ("params", "param"), ("others", "other"), ("tags", "tag"),
              ("system", "system detail"), ("assets", "asset")) if step.get(k)]
    if step.get("texts"):
        parts.append(", ".join(step["texts"]))
    for flag in ("state", "archive", "times"):
        if step.get(flag):
            parts.append(flag if flag != "times" else "start/end times")
    what = "; ".join(parts) if parts else "nothing to send"
    return f"would {verb} {step['destination']} (from {step['experiment']}): {what}"

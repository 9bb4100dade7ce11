"""Read-side and housekeeping commands: init, ls, query, log, show, cat, export, verify, gc, reindex."""
from __future__ import annotations

import datetime as dt
import os
import sys

import click

from ..sync import browse, housekeeping
from ..sync import export as export_lib
from ..sync import gc as gc_lib
from ..sync import verify as verify_lib
from . import output
from .base import expected_errors, main, mirror_option, open_mirror
from .output import plural


@main.command()
@mirror_option
@expected_errors
def init(mirror_path: str) -> None:
    """Create an empty mirror (fetch creates one too) in a new or empty folder."""
    mirror = open_mirror(mirror_path, create=True)
    click.echo(f"mirror ready at {mirror.location}")    # a bucket's, not its local cache folder


@main.command("ls")
@click.argument("path", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@mirror_option
@expected_errors
def ls_cmd(path: str, as_json: bool, mirror_path: str) -> None:
    """List workspaces, projects, experiments or one experiment's resources.

    \b
    PATH is WORKSPACE[/PROJECT[/EXPERIMENT_KEY_OR_NAME]].
    """
    listing = browse.ls(open_mirror(mirror_path), path)
    if as_json:
        output.print_json_rows(listing.result.columns, listing.result.rows)
    else:
        output.print_table(listing.result.columns, listing.result.rows)


TABLE_ROWS = 1000   # `query` as a table shows this many rows; --csv and --json stream them all


@main.command()
@click.argument("sql")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of rows.")
@mirror_option
@expected_errors
def query(sql: str, as_csv: bool, as_json: bool, mirror_path: str) -> None:
    """Run one read-only SQL statement over the index.

    \b
    Tables: workspaces, projects, experiments, params, metrics, others, tags,
    system_details, texts, assets, artifacts, artifact_versions, artifact_files,
    registry_models, registry_versions, panels, snapshots, manifests, push_ledger.
    Example: cometx-mirror query "SELECT name, max(value) FROM metrics GROUP BY name"
    """
    with browse.stream_query(open_mirror(mirror_path), sql) as (columns, rows):
        if as_json:
            output.print_json_rows(columns, rows)
        elif as_csv:
            output.print_csv(columns, rows)
        else:
            output.print_table(columns, rows, limit=TABLE_ROWS)


@main.command()
@click.option("-n", "--limit", type=click.IntRange(min=1), default=None, help="Show at most N entries.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@mirror_option
@expected_errors
def log(limit: int | None, as_json: bool, mirror_path: str) -> None:
    """Snapshots, newest first (every ref move in the reflog)."""
    entries = browse.log(open_mirror(mirror_path), limit)
    if as_json:
        click.echo(output.to_json(entries))
        return
    for e in entries:
        when = dt.datetime.fromtimestamp(e["time"] or 0, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        what = e.get("error") or plural(e["manifests"], "manifest")
        click.echo(f"{e['snapshot']}  {when}  {e['ref']}  {e['message']}  ({what})")


@main.command()
@click.argument("exp")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@mirror_option
@expected_errors
def show(exp: str, as_json: bool, mirror_path: str) -> None:
    """Summarize one experiment: WORKSPACE/PROJECT/KEY, a key, a name or a key prefix."""
    summary = browse.show(open_mirror(mirror_path), exp)
    if as_json:
        click.echo(output.to_json(summary))
        return
    # params and last metric values get a section each below the one-line fields
    sections = {"params": summary.pop("param_values", {}), "metrics (last value)": summary.pop("last_metrics", {})}
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        click.echo(f"{key.ljust(width)}  {output._cell(value)}")
    for title, rows in sections.items():
        if not rows:
            continue
        click.echo(f"\n{title}:")
        name_width = max(len(n) for n in rows)
        for name, value in rows.items():
            if isinstance(value, dict):     # a metric: its last value, at which step, of how many points
                at = f"  (step {value['step']})" if value.get("step") is not None else ""
                value = f"{output._cell(value['value'])}{at}  [{plural(value['points'], 'point')}]"
            click.echo(f"  {name.ljust(name_width)}  {output._cell(value)}")


@main.command()
@click.argument("exp")
@click.argument("name")
@mirror_option
@expected_errors
def cat(exp: str, name: str, mirror_path: str) -> None:
    """Write a resource (html, code, output, git_patch, ...) or an asset to stdout.

    NAME is a text resource kind or name, an asset id or an asset file name.
    """
    chunks = browse.cat(open_mirror(mirror_path), exp, name)
    out = sys.stdout.buffer       # raw bytes, written as they are read from the store
    try:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
    except BrokenPipeError:       # `cat ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(0) from None


@main.command("export")
@click.argument("path")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Write into a DIRECTORY that is not empty (links in it are replaced, "
                                            "never followed).")
@mirror_option
@expected_errors
def export_cmd(path: str, directory: str, force: bool, mirror_path: str) -> None:
    """Write WORKSPACE[/PROJECT[/EXP]] into DIRECTORY in cometx's download layout."""
    report = export_lib.export(open_mirror(mirror_path), path, directory, force=force)
    click.echo(f"exported {plural(report.experiments, 'experiment')}, {plural(report.projects, 'project')}: "
               f"{plural(report.files, 'file')}, {plural(report.bytes, 'byte')}"
               + (f" ({report.skipped_remote} remote assets not stored)" if report.skipped_remote else ""))
    for line in report.errors:
        click.echo(f"error: {line}", err=True)
    if report.errors:
        raise SystemExit(1)


@main.command()
@click.option("--read-data", is_flag=True, help="Also re-read and rehash every object.")
@click.option("--read-data-subset", "subset", metavar="n/t|x%",
              help="Re-read part of the objects: slice n of t (1/5 .. 5/5 cover all), or a random x%.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@mirror_option
@expected_errors
def verify(read_data: bool, subset: str | None, as_json: bool, mirror_path: str) -> None:
    """Check the mirror: refs, snapshots, manifests, objects and the index. Exit 1 on errors."""
    try:
        select = verify_lib.parse_subset(subset) if subset else None
    except verify_lib.BadSubset as e:
        raise click.BadParameter(str(e), param_hint="--read-data-subset") from None
    report = verify_lib.verify(open_mirror(mirror_path), read_data=read_data, subset=select)
    if as_json:
        click.echo(output.to_json(report.as_dict()))
    else:
        for line in report.info:
            click.echo(line)
        for line in report.warnings:
            click.echo(f"warning: {line}")
        for line in report.errors:
            click.echo(f"error: {line}", err=True)
        if read_data or subset:
            # the store's own sizes, compressed; fetch counts the bytes it downloaded, uncompressed
            click.echo(f"read {plural(report.objects_checked, 'object')} "
                       f"({plural(report.bytes_checked, 'byte')} stored, compressed)")
        click.echo("no errors were found" if report.ok else f"{plural(len(report.errors), 'error')} found")
    if not report.ok:
        raise SystemExit(1)


@main.command()
@click.option("--grace", default="24h", show_default=True,
              help="Keep unreferenced objects younger than this (e.g. 24h, 30m, 0).")
@click.option("--dry-run", is_flag=True, help="Report what would go; delete nothing.")
@mirror_option
@expected_errors
def gc(grace: str, dry_run: bool, mirror_path: str) -> None:
    """Remove objects no ref or reflog entry reaches, and stale tmp files."""
    try:
        seconds = gc_lib.parse_duration(grace)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--grace") from None
    report = gc_lib.gc(open_mirror(mirror_path), grace=seconds, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{plural(report.referenced, 'referenced object')} kept; {verb} "
               f"{plural(len(report.swept), 'unreferenced object')} ({plural(report.swept_bytes, 'byte')} stored) "
               f"and {plural(len(report.tmp_removed), 'tmp file')}; "
               f"{plural(report.kept_young, 'unreferenced object')} inside the grace period")


@main.command()
@mirror_option
@expected_errors
def reindex(mirror_path: str) -> None:
    """Rebuild the index from the refs alone."""
    n = housekeeping.reindex(open_mirror(mirror_path))
    click.echo(f"reindexed {plural(n, 'entity', 'entities')}")


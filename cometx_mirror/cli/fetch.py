"""`fetch`: download from Comet, W&B or Neptune into the mirror."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import ExpectedError
from ..store.mirror import Mirror
from ..sync.fetch import run_fetch
from ..sources.offline_names import parse_project
from ..sources.options import FetchOptions
from .base import CliError, expected_errors, main, mirror_option, open_mirror
from .output import plural
from .progress import Progress


@main.command()
@click.argument("path", required=False, default="")
@click.argument("resources", nargs=-1)
@mirror_option
@click.option("--from", "source", type=click.Choice(["comet", "wandb", "neptune", "cometx"]), default="comet",
              show_default=True, help="Where to fetch from.")
@click.option("--api-key", help="API key (default: found the way the vendor's SDK finds it).")
@click.option("--url-override", "url", help="Server URL (Comet url_override, W&B base URL, Neptune URL).")
@click.option("-i", "--ignore", multiple=True, help="Resources to skip (or `experiments`).")
@click.option("--filename", help="Only assets whose name ends with this; nothing else is downloaded.")
@click.option("--asset-type", help="Only assets of this type.")
@click.option("--query", help='A Comet query, e.g. \'Metric("loss") < 0.5 & Tag("best")\'.')
@click.option("-u", "--use-name", is_flag=True, help="Show experiment names instead of keys in --list.")
@click.option("-j", "--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Parallel downloads (from Comet: asset downloads; its JSON reads run ahead, N + 3 at a time).")
@click.option("--max-rps", type=click.FloatRange(min=0.01), default=None,
              help="At most this many requests a second (stay under a known quota); 429s slow it down further.")
@click.option("-f", "--ask", is_flag=True, help="Ask before fetching several experiments.")
@click.option("--sync", type=click.Choice(["all", "experiment", "project", "workspace"]), default="all",
              show_default=True, help="Skip what the mirror already has at this level (`all`: fetch what changed).")
@click.option("--quick", is_flag=True, help="Trust the project listing: skip projects that did not change.")
@click.option("--fetch-remote", is_flag=True, help="Also download remote (http/https) assets.")
@click.option("--list", "list_only", is_flag=True, help="List what PATH holds instead of fetching.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines, only the summary.")
@click.option("--debug", is_flag=True, help="Stop at the first error, with its traceback.")
@click.option("--project", "project", metavar="WS/NAME",
              help="Put the runs of an offline or exported folder (W&B, Neptune) into this workspace/project "
                   "(default: what the folder records, else wandb-offline / neptune-offline).")
@click.option("--allow-shrink", is_flag=True,
              help="Let a version with less data (fewer points, a shorter log) replace the stored one.")
@expected_errors
def fetch(path, resources, mirror_path, source, api_key, url, ignore, filename, asset_type, query,
          use_name, parallel, max_rps, ask, sync, quick, fetch_remote, list_only, as_json, quiet,
          debug, project, allow_shrink) -> None:
    """Fetch PATH into the mirror; each fetch is a snapshot, and only what changed is downloaded.

    \b
    Comet paths:  WORKSPACE[/PROJECT[/EXPERIMENT]], WORKSPACE/artifacts[/NAME[/VERSION]],
                  WORKSPACE/model-registry[/NAME[/VERSION]], WORKSPACE/panels[/NAME]
    W&B:          ENTITY[/PROJECT[/RUN]] online, or a wandb/ or run folder
    Neptune:      an exporter folder, a .neptune folder, or WORKSPACE[/PROJECT] on a server
    cometx:       a `cometx download` folder (its root, a workspace, project or experiment folder)
    RESOURCES (Comet): assets html metadata metrics others parameters project run system
    """
    project = parse_project(project)     # bad input stops before a mirror is made
    # --list only reads the server: it needs no mirror, and must not create one
    mirror = Mirror(mirror_path) if list_only and not Path(mirror_path).exists() \
        else open_mirror(mirror_path, create=not list_only)
    progress = Progress.for_command("fetch", quiet=quiet or as_json or list_only)
    options = FetchOptions(api_key=api_key, url=url, resources=tuple(resources), ignore=tuple(ignore),
                           filename=filename, asset_type=asset_type, query=query, use_name=use_name,
                           parallel=parallel, max_rps=max_rps, ask=ask, sync=sync, quick=quick, fetch_remote=fetch_remote,
                           list_only=list_only, debug=debug, progress=progress.event,
                           confirm=lambda q: click.confirm(q, default=True))
    options.allow_shrink = allow_shrink
    options.project = project
    try:
        with progress:
            result = run_fetch(mirror, source, path, options)
    except ExpectedError as e:
        if debug:
            raise
        raise CliError(" ".join(str(e).split())) from None
    if list_only:
        for row in result.listing:
            click.echo(json.dumps(row) if as_json else row.get("path") or row.get("workspace"))
        if not result.listing and not as_json:
            click.echo(f"nothing to list: {path or 'the server'} holds no "
                       f"{'experiments' if path.count('/') >= 1 else 'projects' if path else 'workspaces'}",
                       err=True)
        return
    if as_json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))
    else:
        # bytes: what this fetch added to the store, uncompressed (verify counts stored, compressed)
        click.echo(f"{result.new} new, {result.changed} changed, {result.unchanged} unchanged, "
                   f"{result.failed} failed; {plural(result.objects_written, 'new object')} "
                   f"({plural(result.bytes_written, 'byte')} uncompressed) in {plural(result.requests, 'request')}"
                   + (f" ({result.requests_note})" if result.requests_note else "")
                   + (f"; {plural(result.sampled_metrics, 'metric')} only sampled (see the metric_status table)"
                      if result.sampled_metrics else ""))
        for line in result.errors:
            click.echo(f"error: {line}", err=True)
    if result.failed or result.errors:
        sys.exit(1)


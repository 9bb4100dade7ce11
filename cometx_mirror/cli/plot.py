"""`cometx-mirror plot EXP METRIC... -o FILE.png|svg`: metric curves of runs as an image."""
from __future__ import annotations

import click

from .base import CliError, expected_errors, main


@main.command()
@click.argument("experiments_and_metrics", nargs=-1, required=True)
@click.option("--mirror", "mirror_path", required=True, type=click.Path(file_okay=False), help="The mirror.")
@click.option("-o", "--output", default="plot.png", show_default=True, help="The image: .png or .svg.")
@click.option("--exp", "more_exps", multiple=True, help="Another run to overlay (repeatable).")
@click.option("-x", "x_axis", type=click.Choice(["step", "time"]), default="step", show_default=True)
@expected_errors
def plot(experiments_and_metrics, mirror_path, output, more_exps, x_axis) -> None:
    """Draw METRIC... of EXP (and every --exp) into one image, every point."""
    from ..sync.plot import PlotError, plot_metrics
    if len(experiments_and_metrics) < 2:
        raise CliError("give an experiment and at least one metric: plot EXP METRIC...")
    exp, metrics = experiments_and_metrics[0], experiments_and_metrics[1:]
    try:
        n = plot_metrics(mirror_path, [exp, *more_exps], list(metrics), output, x_axis)
    except PlotError as e:
        raise CliError(str(e)) from None
    click.echo(f"wrote {output} ({n} series)")

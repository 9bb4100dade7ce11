"""Metric curves of one or more runs written as a PNG or SVG (matplotlib, no display)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ExpectedError
from ..index import queries
from ..store.mirror import Mirror
from . import browse


class PlotError(ExpectedError):
    """Nothing to draw, or an image format we do not write."""


def plot_metrics(mirror_path: str, exps: list[str], metrics: list[str], output: str, x_axis: str = "step") -> int:
    suffix = Path(output).suffix.lower()
    if suffix not in (".png", ".svg"):
        raise PlotError(f"{output}: write a .png or an .svg")
    mirror = Mirror.open(mirror_path)
    x = "epoch_ms(timestamp)" if x_axis == "time" else "step"
    lines = []
    with browse.reading_index(mirror) as con:
        for ref in exps:
            exp_id = queries.find_experiment(con, ref)
            name = con.execute("SELECT coalesce(name, experiment_key) FROM experiments WHERE exp_id = ?",
                               [exp_id]).fetchone()[0]
            for metric in metrics:
                rows = con.execute(f"SELECT {x}, value FROM metrics WHERE exp_id = ? AND name = ? AND {x} "
                                   f"IS NOT NULL AND value IS NOT NULL ORDER BY {x}", [exp_id, metric]).fetchall()
                if rows:
                    lines.append((f"{name} {metric}", [r[0] for r in rows], [r[1] for r in rows]))
    if not lines:
        raise PlotError(f"no points of {', '.join(metrics)} in {', '.join(exps)}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, xs, ys in lines:
        ax.plot(xs, ys, label=label, linewidth=1)
    ax.set_xlabel("time (ms)" if x_axis == "time" else "step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)
    return len(lines)

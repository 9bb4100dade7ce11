"""Comet's metric sampling: at most 15,000 values per metric of an experiment come back.

The rule (ours; Comet does not publish its own): a metric's points, in the order
`metrics/get-all` lists them, are cut to `limit` points evenly spaced by position,
always keeping the first and the last.  Index i of the sample is the point at
position round(i * (n - 1) / (limit - 1)).  Deterministic, so the same stored
points always give the same answer and a re-fetch sees an unchanged resource.
"""
from __future__ import annotations

SAMPLE_LIMIT = 15_000        # metrics/get-all, get-metric, multi-metric-chart with fetchFull
CHART_LIMIT = 500            # multi-metric-chart without fetchFull


def downsample(points: list, limit: int) -> list:
    n = len(points)
    if n <= limit:
        return points
    if limit <= 1:
        return points[-1:]
    return [points[(i * (n - 1) + (limit - 1) // 2) // (limit - 1)] for i in range(limit)]


def by_name(points: list) -> dict[str, list]:
    """Points grouped by metric name, each group in the order given."""
    groups: dict[str, list] = {}
    for p in points:
        groups.setdefault(p["metricName"], []).append(p)
    return groups


def sample_each_metric(points: list, limit: int | None) -> list:
    """Points sorted by metric name: each metric cut to `limit` (None: no sampling)."""
    if limit is None:
        return points
    out = []
    for group in by_name(points).values():
        out.extend(downsample(group, limit))
    return out

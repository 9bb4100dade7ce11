"""The page's heavy reads over the in-memory State (plain `serve`): the twin of index_reads.py.

The State keeps every point of every experiment in memory already, so these walk its
records; the answers have the same shape and the same min/max-per-bucket thinning."""
from __future__ import annotations

import math
from typing import Optional

from ..views import summary_view


def _number(value) -> Optional[float]:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def table_stats(state, records: list[dict]) -> dict[str, dict]:
    out = {}
    with state.lock:
        for e in records:
            metrics: dict[str, dict] = {}
            for p in e["metrics"]:
                v = _number(p["metricValue"])
                m = metrics.setdefault(p["metricName"], {"last": None, "min": None, "max": None, "points": 0,
                                                         "_at": None})
                m["points"] += 1
                if v is None:
                    continue
                at = (p["step"] if p["step"] is not None else -1, p["timestamp"] or 0)
                if m["_at"] is None or at >= m["_at"]:
                    m["last"], m["_at"] = v, at
                m["min"] = v if m["min"] is None else min(m["min"], v)
                m["max"] = v if m["max"] is None else max(m["max"], v)
            for m in metrics.values():
                del m["_at"]
            # a param's text, as the REST summary answers it (the State keeps what the SDK sent)
            out[e["runId"]] = {"params": {n: summary_view(n, h, False)["valueCurrent"]
                                          for n, h in e["params"].items() if h},
                               "tags": sorted(e["tags"]), "metrics": metrics}
    return out


def metric_names(state, records: list[dict]) -> list[str]:
    with state.lock:
        return sorted({p["metricName"] for e in records for p in e["metrics"]})


def series(state, records: list[dict], metric: str, by_time: bool, lo, hi, buckets: int) -> list[tuple]:
    field = "timestamp" if by_time else "step"
    out = []
    for e in records:
        with state.lock:
            points = [(p[field], v) for p in e["metrics"] if p["metricName"] == metric and p[field] is not None
                      and (v := _number(p["metricValue"])) is not None
                      and (lo is None or p[field] >= lo) and (hi is None or p[field] <= hi)]
        points.sort()
        if len(points) <= 2 * buckets:
            out.append((len(points), [p[0] for p in points], [p[1] for p in points]))
            continue
        x0, x1 = points[0][0], points[-1][0]
        width = (x1 - x0) / buckets or 1
        ends: dict[int, list] = {}
        for x, v in points:
            b = int((x - x0) // width)
            low_high = ends.get(b)
            if low_high is None:
                ends[b] = [(x, v), (x, v)]
            else:
                if v < low_high[0][1]:
                    low_high[0] = (x, v)
                if v > low_high[1][1]:
                    low_high[1] = (x, v)
        kept = sorted(p for pair in ends.values() for p in pair)
        out.append((len(points), [p[0] for p in kept], [p[1] for p in kept]))
    return out

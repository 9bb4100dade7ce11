"""The organization setting "Store metrics without sampling": every metric value is
also kept as compressed CSV files among the experiment's assets, as Comet does.

comet_ml reads them in `APIExperiment.get_metric_total_df(name)`: it lists assets of
type `ASSET_TYPE_FULL_METRIC` and keeps the files named
`<re.sub("[^a-zA-Z0-9-+]+", "_", name)>_<N>.csv.zip`; each zip holds one CSV with the
columns `value,timestamp,step,epoch` (timestamp in seconds).  Parts are numbered from
1 and hold at most `Settings.full_metric_part_rows` rows each, in the order the points
arrived.  Values are written as they were logged (a number as its JSON text), so the
files lose nothing but each point's context, which the CSV has no column for.

The files are made when first listed and remade when a metric got more points; the
bytes decide the asset id, so an id always names the same content (as the mirror's
asset cache assumes).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile

from .state import State, now_ms

FULL_METRIC_TYPE = "ASSET_TYPE_FULL_METRIC"


def file_stem(metric_name: str) -> str:
    return re.sub("[^a-zA-Z0-9-+]+", "_", metric_name)


def _value_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _seconds_text(timestamp) -> str:
    if timestamp is None:
        return ""
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        sign, ms = ("-", -timestamp) if timestamp < 0 else ("", timestamp)
        return f"{sign}{ms // 1000}.{ms % 1000:03d}"       # exact: no float rounding
    return repr(float(timestamp) / 1000.0)


def _int_text(value) -> str:
    return "" if value is None else str(value)


def part_bytes(stem: str, number: int, points: list) -> bytes:
    """One zip holding `<stem>_<number>.csv`; fixed dates, so the same points give the same bytes."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["value", "timestamp", "step", "epoch"])
    for p in points:
        writer.writerow([_value_text(p["metricValue"]), _seconds_text(p["timestamp"]),
                         _int_text(p["step"]), _int_text(p["epoch"])])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo(f"{stem}_{number}.csv", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, text.getvalue().encode("utf-8"))
    return buf.getvalue()


def refresh(state: State, exp: dict) -> None:
    """Bring the experiment's total-fidelity assets up to date (call with the lock held)."""
    made = exp.setdefault("fullMetrics", {})       # metric name -> {count, rows, assetIds}
    if not state.settings.total_fidelity:
        return
    rows = state.settings.full_metric_part_rows
    series: dict[str, list] = {}
    for p in sorted(exp["metrics"], key=lambda p: p["offset"]):
        series.setdefault(p["metricName"], []).append(p)
    for name, points in series.items():
        known = made.get(name)
        if known and known["count"] == len(points) and known["rows"] == rows:
            continue
        for old in (known or {}).get("assetIds", []):
            exp["assets"].pop(old, None)
        ids = []
        stem = file_stem(name)
        for number, start in enumerate(range(0, len(points), rows), start=1):
            data = part_bytes(stem, number, points[start:start + rows])
            digest = state.blobs.put(data)
            asset_id = hashlib.sha256(f"{exp['experimentKey']}/{digest}".encode()).hexdigest()[:32]
            exp["assets"][asset_id] = {
                "assetId": asset_id, "fileName": f"{stem}_{number}.csv.zip", "fileSize": len(data),
                "type": FULL_METRIC_TYPE, "step": None, "epoch": None, "runContext": None,
                "metadata": None, "createdAt": now_ms(), "dir": "full-metrics", "remote": False,
                "link": None, "blob": digest, "groupingName": None, "extension": "zip",
                "overwrite": False, "artifactVersionId": None, "experimentKey": exp["experimentKey"],
                "tags": [], "etag": None, "seq": state.next_seq(), "fullMetric": name,
            }
            ids.append(asset_id)
        made[name] = {"count": len(points), "rows": rows, "assetIds": ids}
        state.touch()


def visible(state: State, asset: dict) -> bool:
    """Total-fidelity files are listed only while the setting is on."""
    return state.settings.total_fidelity or not asset.get("fullMetric")

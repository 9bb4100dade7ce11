"""Reading a destination that samples its metrics, and not doubling its total-fidelity files.

A Comet answers `metrics/get-all` with at most 15,000 values per metric.  A metric
read back at that count is a sample: when the destination keeps total-fidelity
files (`ASSET_TYPE_FULL_METRIC` CSV zips) the whole series is read from them;
otherwise the metric cannot be compared point by point, and a resumed push says
so instead of resending what the sample does not show.

The mirror's total-fidelity files are assets and are pushed as assets, so a
destination without the setting still lets `get_metric_total_df` read every point;
a destination that makes its own files for a metric (it lists them once the points
are sent) gets the points only, never a second set of files under the same names.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ... import model
from ...errors import ExpectedError
from ...metric_stream import MetricStream, batches
from ...sources.comet import full_metrics
from .client import CometClient


class DestinationMetrics(MetricStream):
    """Metrics read back from a destination, as a stream (read again from the files downloaded
    once); `sampled` names the series that are only a sample, `contextless` those read from
    total-fidelity files, whose CSV has no context column."""

    def __init__(self, metrics: model.Metrics, sampled: frozenset = frozenset(),
                 contextless: frozenset = frozenset()):
        super().__init__(lambda: batches(metrics))
        self.sampled = sampled
        self.contextless = contextless


class DestinationSampled(ExpectedError):
    """A resumed push cannot compare a metric the destination only samples."""


def _full_metric_list(client: CometClient, key: str) -> list[dict]:
    return client.get("experiment/asset/list",
                      {"experimentKey": key, "type": full_metrics.FULL_METRIC_TYPE}).get("assets", [])


def _part_bytes(client: CometClient, key: str, asset_id: str) -> bytes:
    return client.request("GET", "rest", "experiment/asset/get-asset", write=False, expect_json=False,
                          params={"experimentKey": key, "assetId": asset_id, "allow301": "False"})


def whole(client: CometClient, key: str, sample: model.Metrics, by_count: dict | None = None) -> DestinationMetrics:
    """`sample` (what get-all answered) with each sampled series read whole where the
    destination has total-fidelity files for it.  `by_count`: its points per name, if known."""
    exp = model.Experiment(source="comet", workspace="", project="", key=key, metrics=sample)
    if by_count is None:
        by_count = full_metrics.counts_by_name(sample)
    candidates = full_metrics.may_be_sampled(by_count)
    if candidates:
        listed = _full_metric_list(client, key)
        fetched = {a["assetId"]: {"object": a["assetId"]} for a in listed if full_metrics.is_part(a)}
        # each compressed CSV zip is downloaded once into a file and read again from there, so memory
        # holds one part while it downloads, never all of them; the folder lives as long as `part`
        # (the stream's closure holds it) and goes with it
        spool = tempfile.TemporaryDirectory(prefix="cometx-mirror-parts-")
        downloaded: dict[str, Path] = {}

        def part(asset_id: str):
            if asset_id not in downloaded:
                path = Path(spool.name) / f"{len(downloaded)}.zip"
                path.write_bytes(_part_bytes(client, key, asset_id))
                downloaded[asset_id] = path
            return open(downloaded[asset_id], "rb")
        full_metrics.complete(exp, listed, fetched, part, by_count)
    return DestinationMetrics(exp.metrics, sampled=frozenset(exp.extra.get(full_metrics.SAMPLED_KEY, ())),
                              contextless=frozenset(exp.extra.get(full_metrics.WHOLE_KEY, ())))


def refuse_sampled(metrics: model.Metrics, key: str) -> None:
    """Raise when a destination read back for a resumed push holds only samples."""
    sampled = sorted(getattr(metrics, "sampled", ()))
    if sampled:
        raise DestinationSampled(
            f"destination experiment {key} holds only a sample ({full_metrics.SAMPLE_LIMIT:,} values) of "
            f"{', '.join(sampled)} and keeps no total-fidelity files: its points cannot be compared with "
            f"the mirror's, so nothing is resent; push to a new destination experiment instead")


def without_generated(client: CometClient, key: str, assets: list[model.Asset], asset_id_of) -> list[model.Asset]:
    """The assets to upload, less our total-fidelity files for metrics whose files the
    destination made itself (ids other than ours)."""
    ours = [a for a in assets if a.type == full_metrics.FULL_METRIC_TYPE]
    if not ours:
        return assets
    our_ids = {asset_id_of(a) for a in ours}
    theirs = {a.get("fileName") for a in _full_metric_list(client, key) if a.get("assetId") not in our_ids}
    stems = {full_metrics.PART_NAME.match(name)["stem"] for name in theirs
             if name and full_metrics.PART_NAME.match(name)}
    return [a for a in assets if a.type != full_metrics.FULL_METRIC_TYPE
            or not full_metrics.PART_NAME.match(a.file_name)
            or full_metrics.PART_NAME.match(a.file_name)["stem"] not in stems]

"""Comet's total-fidelity metrics: telling a sample from the whole, and reading the whole.

Comet answers at most 15,000 values per metric of an experiment (`metrics/get-all`
downsamples beyond that).  With the organization setting "Store metrics without
sampling" it also keeps every value as CSV zips among the experiment's assets:
type `ASSET_TYPE_FULL_METRIC`, files `<stem>_<N>.csv.zip` where the stem is the
metric name with every run of characters outside [a-zA-Z0-9-+] replaced by `_`,
each zip holding one CSV with the columns `value,timestamp,step,epoch` (timestamp in
seconds).  comet_ml's own reader sorts the parts by file name and keeps only the
first; here the parts are read in the order of N, all of them.

A metric "may be sampled" when the answer holds 15,000 values or more of it.  Such a
metric is taken from its total-fidelity files when they were downloaded, and else
kept as the sample and marked sampled.  The CSV has no context column: the points
read from it take the context their sample shows when the sample shows only one.
Everything here that normalizes is pure (objects in, model out), so reindexing gives
the same rows.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from ... import model
from ...metric_stream import BatchBuilder, MetricStream, batches

SAMPLE_LIMIT = 15_000
FULL_METRIC_TYPE = "ASSET_TYPE_FULL_METRIC"     # what comet_ml asks asset/list for
PART_NAME = re.compile(r"^(?P<stem>.+)_(?P<n>\d+)\.csv\.zip$")
# experiment.extra keys the normalizer sets (the index's metric_status view reads them)
SAMPLED_KEY = "sampled_metrics"          # names kept as a sample: the mirror lacks the rest
WHOLE_KEY = "full_fidelity_metrics"      # names read whole from the total-fidelity files


class FullMetricError(ValueError):
    """A total-fidelity file that cannot be read as one."""


def file_stem(metric_name: str) -> str:
    return re.sub("[^a-zA-Z0-9-+]+", "_", metric_name)


def counts(names: Iterable[str]) -> dict[str, int]:
    return dict(Counter(names))


def counts_by_name(metrics: model.Metrics) -> Counter:
    """Points per metric name, a batch at a time (a stream is read through, not held)."""
    out: Counter = Counter()
    for batch in batches(metrics):
        out.update(batch.name)
    return out


def may_be_sampled(counts_by_name: dict[str, int]) -> list[str]:
    return sorted(n for n, c in counts_by_name.items() if c >= SAMPLE_LIMIT)


def is_part(asset: dict) -> bool:
    return asset.get("type") == FULL_METRIC_TYPE and bool(PART_NAME.match(str(asset.get("fileName") or "")))


def parts_by_stem(assets: Iterable[dict]) -> dict[str, list[dict]]:
    """Total-fidelity files by stem, each list in the order of N (not of the name)."""
    out: dict[str, list[tuple[int, dict]]] = {}
    seen: set[str] = set()
    for a in assets:
        if not is_part(a) or a.get("assetId") in seen:
            continue
        seen.add(a.get("assetId"))
        match = PART_NAME.match(a["fileName"])
        out.setdefault(match["stem"], []).append((int(match["n"]), a))
    return {stem: [a for _, a in sorted(parts, key=lambda t: t[0])] for stem, parts in out.items()}


# -- reading one part ----------------------------------------------------------------

def _ms(seconds: str) -> int | None:
    """Seconds as the CSV writes them ("1700000000.123") -> epoch milliseconds, exactly."""
    if seconds == "":
        return None
    try:
        return int((Decimal(seconds) * 1000).to_integral_value())
    except InvalidOperation:
        raise FullMetricError(f"timestamp {seconds!r} is not a number") from None


def _whole(text: str, column: str) -> int | None:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            raise FullMetricError(f"{column} {text!r} is not a number") from None


def iter_part(source: BinaryIO) -> Iterator[tuple[str, int | None, int | None, int | None]]:
    """(value text, timestamp ms, step, epoch) of each row of one CSV zip (a seekable file),
    read as a stream: memory holds a row at a time, however large the part."""
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile:
        raise FullMetricError("not a zip file") from None
    with archive:
        for member in sorted(i.filename for i in archive.infolist() if not i.is_dir()):
            with archive.open(member) as raw:
                reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
                missing = {"value", "timestamp", "step", "epoch"} - set(reader.fieldnames or ())
                if missing:
                    raise FullMetricError(f"{member} lacks the column(s) {', '.join(sorted(missing))}")
                for row in reader:
                    yield (row["value"], _ms(row["timestamp"] or ""), _whole(row["step"] or "", "step"),
                           _whole(row["epoch"] or "", "epoch"))


def _part_rows(open_part: Callable[[str], BinaryIO], object_id: str
               ) -> Iterator[tuple[str, int | None, int | None, int | None]]:
    with open_part(object_id) as source:
        yield from iter_part(source)


# -- normalizing: the sample, or the whole -------------------------------------------

def _sole_context(contexts: set) -> Any:
    distinct = set(contexts)
    return distinct.pop() if len(distinct) == 1 else None


def complete(exp: model.Experiment, listed: list[dict], fetched: dict,
             open_part: Callable[[str], BinaryIO], by_count: dict[str, int] | None = None) -> None:
    """Replace each metric that may be sampled by its total-fidelity points where the
    mirror holds all its files; record in exp.extra which metrics stay a sample.

    `listed`: asset list entries (both listings), `fetched`: assetId -> {"object"},
    `open_part`: object id -> a seekable file of its bytes.  The files are read once here
    to check them and count their rows, and the points then come as a MetricStream that
    reads them again batch by batch: memory is bounded by one batch, not by the series
    nor by the size of a part.  `by_count`: the points per metric name, when the caller can
    count them more cheaply than by reading exp.metrics (a stream) through.
    """
    m = exp.metrics
    if by_count is None:
        by_count = counts_by_name(m)
    candidates = may_be_sampled(by_count)
    if not candidates:
        return
    stems = counts(file_stem(n) for n in by_count)
    parts = parts_by_stem(listed)
    whole: dict[str, list[str]] = {}       # name -> the object ids of its parts, in order
    sampled: list[str] = []
    for name in candidates:
        files = parts.get(file_stem(name), [])
        # two names with one stem share their files' names: nothing says which is whose
        usable = files and stems[file_stem(name)] == 1 and all(a.get("assetId") in fetched for a in files)
        objects = [fetched[a["assetId"]]["object"] for a in files] if usable else []
        rows = 0
        try:
            for object_id in objects:
                rows += sum(1 for _ in _part_rows(open_part, object_id))
        except FullMetricError:
            rows = 0
        if rows and rows >= by_count[name]:
            whole[name] = objects
        else:
            sampled.append(name)
    if whole:
        exp.metrics = MetricStream(lambda: _replaced(m, whole, open_part))
        exp.extra[WHOLE_KEY] = sorted(whole)
    if sampled:
        exp.extra[SAMPLED_KEY] = sampled


def _replaced(m: model.Metrics, whole: dict[str, list[str]], open_part: Callable[[str], BinaryIO]
              ) -> Iterator[model.Metrics]:
    """The same columns with each series in `whole` replaced, in place of its sample, in
    batches of at most BATCH_POINTS."""
    contexts: dict[str, set] = {}
    for batch in batches(m):
        for name, context in zip(batch.name, batch.context):
            if name in whole:
                contexts.setdefault(name, set()).add(context)
    out = BatchBuilder()
    done: set[str] = set()
    for b in batches(m):
        for i, name in enumerate(b.name):
            if name not in whole:
                out.batch.add(name, b.value[i], b.step[i], b.epoch[i], b.timestamp[i], b.context[i], b.text[i])
            elif name not in done:        # the whole series where its sample began
                done.add(name)
                context = _sole_context(contexts[name])
                for object_id in whole[name]:
                    for value_text, ts, step, epoch in _part_rows(open_part, object_id):
                        value, text = model.metric_from_text(value_text) if value_text != "" else (None, None)
                        out.batch.add(name, value, step, epoch, ts, context, text)
                        if out.full():
                            yield out.take()
            if out.full():
                yield out.take()
    if out.batch.name:
        yield out.take()


def listed_assets(asset_list: dict | None, typed_list: dict | None) -> list[dict]:
    """The experiment's assets: the full listing, then total-fidelity files only the
    typed listing (asset/list?type=ASSET_TYPE_FULL_METRIC) named."""
    listed = list((asset_list or {}).get("assets", []))
    ids = {a.get("assetId") for a in listed}
    return listed + [a for a in (typed_list or {}).get("assets", []) if a.get("assetId") not in ids]

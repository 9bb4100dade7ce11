"""Fetching one Comet experiment into objects and a manifest, spending few requests.

A new experiment costs one request per resource (tags, parameters, others,
metrics, system details, html, code, output, graph, git metadata, git patch,
asset list) plus one per asset.  An experiment whose listing entry (end time,
duration, running, archived...) is unchanged costs only tags, parameters and
others — the three things the REST API can change after a run ends — and
everything else is carried over from the previous manifest.  Asset bytes are
keyed by Comet's asset id, which names immutable content: a known id is never
downloaded again.
"""
from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ...store import canonical, heal
from ...store.mirror import Mirror
from . import full_metrics, metric_answer
from .reader import CometReader, store_body

NORMALIZER = "comet-experiment/1"

# Resource groups as cometx names them -> the per-experiment resources they cover.
GROUPS = {
    "metadata": ("tags",),
    "parameters": ("parameters",),
    "others": ("others",),
    "metrics": ("metrics",),
    "system": ("system",),
    "html": ("html",),
    "run": ("code", "output", "graph", "git_metadata", "git_patch"),
    "assets": ("asset_list",),
}
ALWAYS_CHECKED = ("tags", "parameters", "others")     # the API may change these after the end
ENDPOINTS = {
    "tags": "experiment/tags", "parameters": "experiment/parameters",
    "others": "experiment/log-other", "metrics": "experiment/metrics/get-all",
    "system": "experiment/system-details", "html": "experiment/html", "code": "experiment/code",
    "output": "experiment/output", "graph": "experiment/graph",
    "git_metadata": "experiment/git/metadata", "asset_list": "experiment/asset/list",
}
RESOURCES = (*ENDPOINTS, "git_patch")
# JSON field holding a text resource, so the text itself is an object `cat` can stream.
TEXT_SOURCE = {"requirements": "system"}     # text kind -> the resource it is cut from, where they differ
TEXT_FIELDS = {"html": "html", "code": "code", "output": "output", "graph": "graph"}


@dataclass
class AssetFilter:
    filename: str | None = None
    asset_type: str | None = None
    fetch_remote: bool = False
    download: bool = True       # False: the asset list is kept, no bytes are fetched

    def wants(self, asset: dict) -> bool:
        if not self.download:
            return False
        if self.filename and not str(asset.get("fileName", "")).endswith(self.filename):
            return False
        if self.asset_type and (asset.get("type") or "asset") != self.asset_type:
            return False
        return True


@dataclass
class ExperimentFetch:
    """What fetching one experiment produced."""
    manifest_id: str
    status: str                      # "new" | "changed" | "unchanged"
    bytes: int = 0                   # downloaded, for progress (the store counts what is new)
    errors: list[str] = field(default_factory=list)
    sampled: list[str] = field(default_factory=list)   # metrics the mirror holds only a sample of


class AssetCache:
    """assetId -> object id of the assets already downloaded, kept per experiment in a small
    JSONL file appended as assets land, so a fetch killed before its snapshot was committed
    does not download those assets again.  One file per origin and experiment, read only
    while that experiment is fetched: memory follows the experiments in flight, not the
    mirror's size.  Only a cache: entries whose object is gone are ignored."""

    def __init__(self, mirror: Mirror, origin: str):
        self.folder = mirror.root / "cache" / "comet-assets"
        self.origin = origin
        self.mirror = mirror

    def experiment(self, experiment_key: str) -> "ExperimentAssetCache":
        name = hashlib.sha256(f"{self.origin}/{experiment_key}".encode()).hexdigest()[:40]
        return ExperimentAssetCache(self.mirror, self.folder / name[:2] / f"{name}.jsonl")


class ExperimentAssetCache:
    """One experiment's entries of the AssetCache; put() is safe from several threads."""

    def __init__(self, mirror: Mirror, path: Path):
        self.mirror = mirror
        self.path = path
        self._lock = threading.Lock()
        self._map: dict[str, tuple[str, int]] = {}
        try:
            with open(path) as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self._map[row["k"]] = (row["o"], row["s"])
                    except (ValueError, KeyError):
                        continue   # a torn last line after a crash
        except FileNotFoundError:
            pass

    def get(self, asset_id: str) -> tuple[str, int] | None:
        hit = self._map.get(asset_id)
        return hit if hit and self.mirror.objects.intact(hit[0]) else None

    def put(self, asset_id: str, object_id: str, size: int) -> None:
        with self._lock:
            self._map[asset_id] = (object_id, size)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps({"k": asset_id, "o": object_id, "s": size}) + "\n")


class ExperimentFetcher:
    """Fetches experiments; `request_pool` carries their JSON requests and `asset_pool`
    the asset downloads, so one experiment's requests overlap as far as -j allows."""

    def __init__(self, mirror: Mirror, reader: CometReader, cache: AssetCache,
                 request_pool: ThreadPoolExecutor, asset_pool: ThreadPoolExecutor,
                 wanted: set[str], asset_filter: AssetFilter):
        self.mirror = mirror
        self.reader = reader
        self.cache = cache
        self.request_pool = request_pool
        self.asset_pool = asset_pool
        self.wanted = wanted              # resource names to (re)fetch, see GROUPS
        self.asset_filter = asset_filter

    def _put(self, data: bytes, counter: ExperimentFetch) -> dict:
        object_id = self.mirror.objects.put_bytes(data)
        counter.bytes += len(data)
        return {"object": object_id, "size": len(data)}

    def _request(self, name: str, key: str) -> Any:
        if name == "git_patch":
            return self.reader.experiment_bytes("experiment/git/patch", key)
        if name == "metrics":       # stored as it arrives: ({"object", "size"}, points per name)
            return metric_answer.fetch(self.reader, self.mirror.objects, key)
        params = {"type": "all"} if name == "asset_list" else {}
        return self.reader.experiment_json(ENDPOINTS[name], key, **params)

    def _record(self, name: str, body: Any, resources: dict, texts: dict, out: ExperimentFetch) -> None:
        """Store one resource as the server sent it, plus the text `cat` and the index show."""
        if name == "metrics":
            resources[name] = body[0]
            out.bytes += body[0]["size"]
            return
        if name == "git_patch":
            resources[name] = self._put(body, out)
            present = body.startswith(b"PK")     # a zip holding git_diff.patch; otherwise "no patch"
            _set_text(texts, name, dict(resources[name]) if present else None)
            return
        resources[name] = self._put(canonical.dumps(body), out)
        body = body or {}
        if name in TEXT_FIELDS:
            text = body.get(TEXT_FIELDS[name]) or ""
            _set_text(texts, name, self._put(text.encode("utf-8"), out) if text else None)
        elif name == "git_metadata":
            _set_text(texts, name, dict(resources[name]) if any(body.values()) else None)
        elif name == "system":
            packages = body.get("installedPackages") or []
            _set_text(texts, "requirements",
                      self._put("\n".join(packages).encode() + b"\n", out) if packages else None)

    def fetch(self, listing: dict, workspace: str, project: str, previous: dict | None) -> ExperimentFetch:
        key = listing["experimentKey"]
        cache = self.cache.experiment(key)
        out = ExperimentFetch("", "new" if previous is None else "unchanged")
        metadata = self._put(canonical.dumps(listing), out)
        listing_changed = previous is None or previous.get("metadata", {}).get("object") != metadata["object"]
        resources = dict(previous.get("resources", {})) if previous else {}
        texts = dict(previous.get("texts", {})) if previous else {}
        # a stored resource whose object is gone (missing, or quarantined by a read that
        # found it damaged) is fetched again, as is the resource a lost text came from
        for name in heal.unsound(self.mirror.objects, resources) | {
                TEXT_SOURCE.get(kind, kind) for kind in heal.unsound(self.mirror.objects, texts)}:
            resources.pop(name, None)
        todo = sorted(name for name in RESOURCES if name in self.wanted
                      and (listing_changed or name in ALWAYS_CHECKED or name not in resources))
        pending = {name: self.request_pool.submit(self._request, name, key) for name in todo}
        assets = dict(previous.get("assets", {})) if previous else {}
        downloads = {}
        if "asset_list" in pending:       # start the downloads while the other requests run
            self._record("asset_list", pending.pop("asset_list").result(), resources, texts, out)
            downloads = self._start_downloads(key, resources["asset_list"]["object"], assets, cache)
        elif "asset_list" in resources and "asset_list" in self.wanted:
            downloads = self._start_downloads(key, resources["asset_list"]["object"], assets, cache)
        # each answer is stored and let go at once: only the metric names' counts are kept
        # (below, to tell a sample), so an experiment holds one answer at a time, not all
        fresh: dict[str, Any] = {}
        for name in list(pending):
            body = pending.pop(name).result()
            self._record(name, body, resources, texts, out)
            fresh[name] = body[1] if name == "metrics" else True
            del body
        parts = self._full_metric_parts(key, resources, fresh, out)
        if parts is not None:
            downloads.update(self._start_part_downloads(key, parts, assets, downloads, cache))
        self._finish_downloads(downloads, assets, out)
        if parts is not None:
            out.sampled = [name for name, files in parts.items()
                           if not files or not all(a["assetId"] in assets for a in files)]

        manifest = {"type": "experiment", "normalizer": NORMALIZER, "source": "comet",
                    "origin": self.reader.creds.origin, "workspace": workspace, "project": project,
                    "key": key, "metadata": metadata, "resources": resources, "texts": texts,
                    "assets": assets}
        out.manifest_id = self.mirror.put_json(manifest)
        if previous is not None and canonical.dumps(previous) != canonical.dumps(manifest):
            out.status = "changed"
        return out

    def _full_metric_parts(self, key: str, resources: dict, fresh: dict[str, Any],
                           out: ExperimentFetch) -> dict[str, list[dict]] | None:
        """The total-fidelity files of each metric that may be sampled (see full_metrics),
        or None when no metric may be.  When the full asset list names none for such a
        metric, the files are asked for by type (a Comet may list them only that way)."""
        if "metrics" not in resources or "asset_list" not in self.wanted or "asset_list" not in resources:
            return None
        candidates = full_metrics.may_be_sampled(
            fresh["metrics"] if "metrics" in fresh else metric_answer.counts(self.mirror.objects,
                                                                             resources["metrics"]["object"]))
        if not candidates:
            return None
        listed = (load_json(self.mirror, resources["asset_list"]) or {}).get("assets", [])
        found = full_metrics.parts_by_stem(listed)
        if any(full_metrics.file_stem(n) not in found for n in candidates) and "full_metric_list" not in fresh \
                and ("full_metric_list" not in resources or "metrics" in fresh):
            typed = self.reader.experiment_json("experiment/asset/list", key, type=full_metrics.FULL_METRIC_TYPE)
            fresh["full_metric_list"] = typed
            resources["full_metric_list"] = self._put(canonical.dumps(typed), out)
        if "full_metric_list" in resources:
            listed = listed + (load_json(self.mirror, resources["full_metric_list"]) or {}).get("assets", [])
            found = full_metrics.parts_by_stem(listed)
        return {name: found.get(full_metrics.file_stem(name), []) for name in candidates}

    def _start_part_downloads(self, key: str, parts: dict[str, list[dict]], assets: dict,
                              started: dict, cache: ExperimentAssetCache) -> dict:
        """Download the total-fidelity files like other assets, whatever --filename,
        --asset-type or a list-only fetch (check) chose: they are the metrics' own data."""
        jobs = {}
        for files in parts.values():
            for a in files:
                asset_id = a["assetId"]
                if asset_id in assets or asset_id in started or asset_id in jobs or a.get("remote"):
                    continue
                cached = cache.get(asset_id)
                if cached:
                    assets[asset_id] = {"object": cached[0], "size": cached[1]}
                    continue
                jobs[asset_id] = self.asset_pool.submit(self._download, key, a, cache)
        return jobs

    def _start_downloads(self, key: str, list_object: str, assets: dict, cache: ExperimentAssetCache) -> dict:
        """Keep the assets already stored (in `assets`); start downloading the rest."""
        listing = canonical.loads(self.mirror.objects.get_bytes(list_object)).get("assets", [])
        known, jobs = dict(assets), {}
        assets.clear()
        for asset in listing:
            asset_id = asset.get("assetId")
            if not asset_id:
                continue
            prior = known.get(asset_id)
            if prior and self.mirror.objects.intact(prior["object"]):
                assets[asset_id] = prior
                continue
            cached = cache.get(asset_id)
            if cached:
                assets[asset_id] = {"object": cached[0], "size": cached[1]}
                continue
            if not self.asset_filter.wants(asset):
                continue
            if asset.get("remote"):
                if self.asset_filter.fetch_remote and str(asset.get("link", "")).startswith(("http://", "https://")):
                    jobs[asset_id] = self.asset_pool.submit(self._download_remote, asset, cache)
                continue
            jobs[asset_id] = self.asset_pool.submit(self._download, key, asset, cache)
        return jobs

    def _finish_downloads(self, jobs: dict, assets: dict, out: ExperimentFetch) -> None:
        for asset_id, job in jobs.items():
            try:
                object_id, size = job.result()
            except Exception as e:   # one asset failing leaves the others and the experiment intact
                out.errors.append(f"asset {asset_id}: {e}")
                continue
            assets[asset_id] = {"object": object_id, "size": size}
            out.bytes += size

    def _download(self, key: str, asset: dict, cache: ExperimentAssetCache) -> tuple[str, int]:
        object_id, size = self.reader.stream_asset(store_body(self.mirror.objects, asset.get("fileSize")),
                                                   asset["assetId"], experiment_key=key)
        cache.put(asset["assetId"], object_id, size)
        return object_id, size

    def _download_remote(self, asset: dict, cache: ExperimentAssetCache) -> tuple[str, int]:
        with requests.get(asset["link"], stream=True, timeout=120) as r:
            r.raise_for_status()
            object_id, size = self.mirror.objects.put_stream(r.iter_content(1 << 20))
        cache.put(asset["assetId"], object_id, size)
        return object_id, size


# Finer names cometx also accepts, inside the groups above.
SUBRESOURCES = {"code": ("code",), "git": ("git_metadata", "git_patch"), "output": ("output",),
                "graph": ("graph",), "requirements": ("system",)}


def _expand(name: str) -> tuple[str, ...]:
    return GROUPS.get(name) or SUBRESOURCES.get(name) or ()


def _set_text(texts: dict, kind: str, ref: dict | None) -> None:
    if ref:
        texts[kind] = ref
    else:
        texts.pop(kind, None)


def wanted_resources(chosen: tuple[str, ...], ignore: tuple[str, ...]) -> set[str]:
    """Per-experiment resources to fetch; `chosen` empty means all of them."""
    names: set[str] = set()
    for name in chosen or tuple(GROUPS):
        names.update(_expand(name))
    for name in ignore:
        names.difference_update(_expand(name))
    return names


def load_json(mirror: Mirror, ref: dict | None) -> Any:
    if not ref:
        return None
    return canonical.loads(mirror.objects.get_bytes(ref["object"]))

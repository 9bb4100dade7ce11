"""Neptune run → common model: the one mapping every Neptune format goes through.

Each reader (exporter parquet, 1.x op logs, neptune-scale SQLite) folds its raw
payloads into a `RunData`; `to_experiment` turns that into a model.Experiment.
Derived bytes (the stdout text, a string series as JSON lines, a histogram
series, inline images) are returned alongside so the fetch can store them: they
are pure functions of the raw objects, so `reindex` recomputes the same ids.
The rules are documented in docs/neptune.md.

Float series are the bulk of a long run.  A reader that can read its payloads
again sets `RunData.float_points` instead of adding them to `series`: a
callable yielding model.Metrics batches (see FloatBatches), which becomes the
experiment's MetricStream, so the index takes them a batch at a time and the
fetch, which only needs the derived bytes, never reads them at all.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ... import metric_stream, model
from ...store import canonical
from ...store.objects import hash_bytes
from ..blob_spool import BlobSpool, SpooledBlob
from ..console_text import ConsoleText

SOURCE = "neptune"

# First path component that marks an attribute as configuration (→ params).
CONFIG_NAMESPACES = frozenset({"parameters", "params", "param", "hyperparameters", "hparams",
                               "config", "configs", "cfg", "args", "arguments", "hyperparams"})
ATOMIC_TYPES = ("float", "int", "bool", "string", "datetime", "string_set")

_IMAGE_EXT = {"png", "jpg", "jpeg", "gif", "bmp", "svg", "webp", "tif", "tiff"}
_AUDIO_EXT = {"wav", "mp3", "flac", "ogg", "m4a"}
_VIDEO_EXT = {"mp4", "webm", "avi", "mov", "mkv"}


@dataclass
class FileRef:
    """One stored file of a file / file_set / file_series attribute."""
    name: str                  # file name relative to the attribute ("" for a plain file)
    object_id: str | None
    size: int | None
    step: float | None = None
    ext: str | None = None
    timestamp: int | None = None
    missing: str | None = None  # the recorded location, when the bytes were not found


class _EncodedSeries(ConsoleText):
    """A series' blob written as its points come, each point already encoded: bounded in memory as
    a console text is, whatever the series' length."""

    def __init__(self, stored: tuple | None = None):
        """`stored`: as ConsoleText's (a series' blob so far, continued); its `points` are then set."""
        super().__init__(stored)
        self.points = 0

    def _joined(self) -> bytes:
        return b"".join(self._values)


class SeriesLines(_EncodedSeries):
    """A string series (other than the console's) as the JSON lines of its asset, one a point."""

    def add_point(self, step, ts, value) -> None:
        self._append(canonical.dumps({"step": step, "timestamp": ts, "value": value}) + b"\n")
        self.points += 1


class HistogramPoints(_EncodedSeries):
    """A histogram series as the JSON array of its asset, a point an element (canonical.dumps of the
    list spells each element as it spells it alone, and joins them with a comma)."""

    def add_point(self, step, ts, value) -> None:
        self._append((b"," if self.points else b"[") +
                     canonical.dumps({"step": step, "timestamp": ts, **(value or {})}))
        self.points += 1

    def seal(self) -> str:
        if self._sealed is None:
            self._append(b"]" if self.points else b"[]")
        return super().seal()


_ENCODED_SERIES = {"string_series": SeriesLines, "histogram_series": HistogramPoints}


@dataclass
class RunData:
    workspace: str
    project: str
    key: str
    created_at: int | None = None
    attrs: dict[str, tuple[str, Any]] = field(default_factory=dict)   # path -> (type, value)
    # path -> {"type", "points": [[step, ts, value]]}; a console series (stdout, stderr): {"type", "text"};
    # any other string or histogram series: {"type", "blob"} (SeriesLines, HistogramPoints)
    series: dict[str, dict] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)    # path -> {"type", "refs": [FileRef]}
    artifacts: dict[str, list[dict]] = field(default_factory=dict)  # path -> files list
    extra: dict[str, Any] = field(default_factory=dict)
    last_time: int | None = None
    blobs: dict[str, bytes] = field(default_factory=dict)   # inline contents (1.x UploadFileContent)
    images: BlobSpool = field(default_factory=BlobSpool)    # inline images' bytes (1.x LogImages)
    # float series read again on demand, a batch at a time (then `series` holds none of them)
    float_points: Callable[[], Iterator[model.Metrics]] | None = None

    def add_point(self, path: str, kind: str, step, ts, value) -> None:
        entry = self.series.get(path)
        if entry is None:      # a series keeps the kind of its first point
            entry = self.series[path] = (
                {"type": kind, "text": ConsoleText()} if kind == "string_series" and _monitoring_text(path) else
                {"type": kind, "blob": _ENCODED_SERIES[kind]()} if kind in _ENCODED_SERIES else
                {"type": kind, "points": []})
        if "points" in entry:
            entry["points"].append([step, ts, value])
        elif "text" in entry:
            entry["text"].add(value)
        else:
            entry["blob"].add_point(step, ts, value)

    def add_file(self, path: str, kind: str, ref: FileRef) -> None:
        self.files.setdefault(path, {"type": kind, "refs": []})["refs"].append(ref)

    def seen(self, ts: int | None) -> None:
        if ts is not None and (self.last_time is None or ts > self.last_time):
            self.last_time = ts


_EXACT = 1 << 53     # ints a double holds exactly: int_step gives them back unchanged


class FloatBatches(metric_stream.BatchBuilder):
    """Float series points, converted as the eager mapping converts them, collected into batches.

    `extend` takes points as columns (a 1.x op's, a stored chunk's float rows) and
    converts each column in one comprehension; `take` cuts a batch of exactly `size`.
    """

    def extend(self, names: list[str], steps: list, timestamps: list, values: list) -> bool:
        """Add the points; True when a batch is full (hand them out with take() while full())."""
        n, b = len(steps), self.batch
        kinds = set(map(type, steps))            # the types at C level, not a loop per point
        try:
            if kinds == {int} and -_EXACT <= min(steps) and max(steps) <= _EXACT:
                pass                                 # whole steps a double holds: int_step keeps them
            elif kinds != {float}:
                raise TypeError
            else:
                steps = list(map(math.floor, steps))    # int_step of a finite float, without its float()
        except (TypeError, ValueError, OverflowError):
            steps = [s if type(s) is int and -_EXACT <= s <= _EXACT else int_step(s) for s in steps]
        b.name.extend(names)
        b.step.extend(steps)
        b.timestamp.extend(timestamps)
        b.value.extend(values if set(map(type, values)) == {float} else
                       [None if v is None else float(v) for v in values])
        nones = [None] * n
        b.epoch.extend(nones)
        b.context.extend(nones)
        b.text.extend(nones)
        return self.full()

    def take(self) -> model.Metrics:
        b = self.batch
        if len(b.name) <= self.size:
            return super().take()
        columns = ("name", "step", "epoch", "timestamp", "value", "context", "text")
        self.batch = model.Metrics(**{c: getattr(b, c)[self.size:] for c in columns})
        return model.Metrics(**{c: getattr(b, c)[:self.size] for c in columns})

    def rest(self) -> Iterator[model.Metrics]:
        while self.batch.name:
            yield self.take()


# -- value helpers -------------------------------------------------------------
def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def to_ms(value: Any) -> int | None:
    """Epoch ms from a datetime, an ISO string, epoch seconds (float) or ms (int); None for seconds
    that are NaN or infinite (or infinite as ms): an unknown time, as an odd step is an unknown step."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return int(round(value.timestamp() * 1000))
    if isinstance(value, str):
        return to_ms(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    if isinstance(value, float):
        ms = value * 1000
        return int(round(ms)) if math.isfinite(ms) else None
    return int(value)


def int_step(step: Any) -> int | None:
    """Comet steps are integers; Neptune 3 allows decimals, which are floored (exact value kept raw)."""
    if step is None:
        return None
    s = float(step)
    return int(math.floor(s)) if math.isfinite(s) else None


def value_text(kind: str, value: Any) -> str | None:
    if value is None:
        return None
    if kind == "bool":
        return "true" if value else "false"
    if kind == "datetime":
        return iso_ms(value)
    if kind == "string_set":
        return canonical.dumps(sorted(value)).decode()
    if kind == "float":
        return model.double_text(float(value))     # "NaN", "Infinity" as JSON and the SDK spell them
    return str(value)


def asset_type(name: str, ext: str | None = None) -> str:
    base = name.rsplit("/", 1)[-1]
    if not ext and "." in base:
        ext = base.rsplit(".", 1)[-1]
    ext = (ext or "").lower()
    if ext in _IMAGE_EXT:
        return "image"
    if ext in _AUDIO_EXT:
        return "audio"
    if ext in _VIDEO_EXT:
        return "video"
    return "asset"


def _asset_id(*parts: Any) -> str:
    return hash_bytes(canonical.dumps(list(parts)))[:24]


# -- the mapping --------------------------------------------------------------
def _is_config(path: str) -> bool:
    return path.split("/", 1)[0] in CONFIG_NAMESPACES


def _monitoring_text(path: str) -> str | None:
    parts = path.split("/")
    if parts[0] == "monitoring" and parts[-1] in ("stdout", "stderr"):
        return "output" if parts[-1] == "stdout" else "stderr"
    return None


def to_experiment(run: RunData) -> tuple[model.Experiment, dict[str, bytes | ConsoleText | SpooledBlob]]:
    """The experiment, and the derived bytes to store by object id: bytes (inline file contents), or
    what stores itself from its spool (`store(objects)`): a console text, a string or histogram
    series' blob, an inline image."""
    blobs: dict[str, bytes | ConsoleText | SpooledBlob] = dict(run.blobs)
    attrs = run.attrs
    get = lambda p: attrs.get(p, (None, None))[1]   # noqa: E731
    exp = model.Experiment(source=SOURCE, workspace=run.workspace, project=run.project, key=run.key)
    exp.name = get("sys/name") or None
    created = get("sys/creation_time")
    exp.created_at = created if isinstance(created, int) else run.created_at
    exp.started_at = exp.created_at
    mod = get("sys/modification_time")
    exp.updated_at = mod if isinstance(mod, int) else run.last_time
    exp.tags = sorted(get("sys/tags") or [])
    exp.archived = bool(get("sys/archived") or get("sys/trashed"))
    state = get("sys/state")
    if get("sys/failed"):
        exp.state = "crashed"
    elif state:
        exp.state = {"Active": "running", "Inactive": "finished"}.get(state, str(state).lower())
    exp.extra = dict(run.extra)
    if run.float_points is not None:
        exp.metrics = metric_stream.MetricStream(run.float_points)

    for path in sorted(attrs):
        kind, value = attrs[path]
        text = value_text(kind, value)
        raw = sorted(value) if kind == "string_set" else value
        if path.startswith(("sys/", "monitoring/")):   # run and process details
            exp.system[path] = raw
        elif _is_config(path):
            exp.params.append(model.Param(name=path, value=text, raw={"type": kind, "value": raw}))
        else:
            exp.others.append(model.Other(name=path, value=text, raw={"type": kind, "value": raw}))

    for path in sorted(run.series):
        s = run.series[path]
        kind, points = s["type"], s.get("points")
        if "text" in s:   # console capture: the chunks as written, concatenated, stored as they come
            text = s["text"]
            oid = text.seal()
            blobs[oid] = text
            exp.texts.append(model.Text(kind=_monitoring_text(path), object_id=oid, size=text.size, name=path))
        elif kind == "float_series":
            for step, ts, value in points:
                exp.metrics.add(path, None if value is None else float(value), step=int_step(step),
                                timestamp=ts)
        elif kind in _ENCODED_SERIES:     # its points as JSON lines / a JSON array, written as they came
            series = s["blob"]
            oid = series.seal()
            blobs[oid] = series
            lines = kind == "string_series"
            exp.assets.append(model.Asset(
                asset_id=_asset_id(kind, path), file_name=path + (".jsonl" if lines else ".json"),
                type="text-sample" if lines else "histogram_combined_3d", size=series.size, object_id=oid,
                metadata={"neptune_path": path, "neptune_type": kind, "points": series.points}))
        elif kind == "image_series":   # 1.x LogImages: inline base64 PNGs, spooled as they were read
            for i, (step, ts, value) in enumerate(points):
                image = value["bytes"]
                if image is None:          # a point with no image data: nothing to keep
                    continue
                blobs[image.object_id] = image
                name = value.get("name") or f"{int_step(step)}"
                exp.assets.append(model.Asset(
                    asset_id=_asset_id("image_series", path, i), file_name=f"{path}/{name}.png",
                    type="image", size=image.size, object_id=image.object_id, step=int_step(step),
                    created_at=ts,
                    metadata={"neptune_path": path, "neptune_type": "file_series",
                              "description": value.get("description"), "neptune_step": step}))

    for path in sorted(run.files):
        entry = run.files[path]
        kind = entry["type"]
        for ref in entry["refs"]:
            if kind == "file":
                file_name = path + (f".{ref.ext}" if ref.ext else "")
            elif kind == "file_series":
                file_name = f"{path}/{ref.name}"
            else:
                file_name = f"{path}/{ref.name}"
            typ = "source_code" if path == "source_code/files" else asset_type(file_name, ref.ext)
            meta = {"neptune_path": path, "neptune_type": kind}
            if ref.step is not None:
                meta["neptune_step"] = ref.step
            if ref.missing:
                meta["missing"] = ref.missing
            exp.assets.append(model.Asset(
                asset_id=_asset_id(kind, path, ref.name, ref.step), file_name=file_name, type=typ,
                size=ref.size, object_id=ref.object_id, step=int_step(ref.step),
                created_at=ref.timestamp, metadata=meta))

    if run.artifacts:
        exp.extra["artifacts"] = {p: artifact_version(files) for p, files in sorted(run.artifacts.items())}
    return exp, blobs


# -- artifacts ------------------------------------------------------------------
def artifact_version(files: list[dict]) -> str:
    """Neptune names an artifact version by a hash of its files list; we hash our canonical copy."""
    return hash_bytes(canonical.dumps(sorted(files, key=lambda f: f.get("path") or "")))[:16]


def artifact_name(project: str, path: str) -> str:
    return f"{project}/{path}"


def artifact_manifest(workspace: str, project: str, path: str,
                      versions: list[dict]) -> dict:
    """One manifest per (project, attribute path); versions come from every run that tracked it."""
    return {"type": "artifact", "normalizer": "neptune-artifact/1", "source": SOURCE,
            "workspace": workspace, "project": project, "path": path,
            "versions": sorted(versions, key=lambda v: (v["version"], v["experiment_key"]))}


def to_artifact(manifest: dict) -> model.Artifact:
    art = model.Artifact(source=SOURCE, workspace=manifest["workspace"], project=manifest["project"],
                         name=artifact_name(manifest["project"], manifest["path"]), type="neptune-artifact",
                         metadata={"neptune_path": manifest["path"]})
    for v in manifest["versions"]:
        files = [model.ArtifactFile(path=f.get("path") or "", size=f.get("size"),
                                    object_id=f.get("object_id"), remote=f.get("object_id") is None,
                                    link=f.get("link"), checksum=f.get("checksum"),
                                    metadata=f.get("metadata"))
                 for f in v["files"]]
        art.versions.append(model.ArtifactVersion(version=v["version"], experiment_key=v["experiment_key"],
                                                  files=files))
    return art

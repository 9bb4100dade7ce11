"""W&B manifests → the common model.  Pure functions of (mirror objects, manifest).

Both readers reduce a run to the same `RunState`; one mapping (`to_experiment`)
turns that into an Experiment, so offline and online runs index identically.
The mapping is documented in docs/wandb.md.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from ... import model
from ... import metric_stream
from ...metric_stream import MetricStream
from ...model import Artifact, ArtifactFile, ArtifactVersion, Asset, Experiment, Metrics, Other, Param, Text
from .. import grown_normalizer, normalizer
from .common import (FLOAT_TOKENS, HISTORY_AXES, INTERNAL_KEYS, SOURCE, b64md5_to_hex, flatten, is_media,
                     iso_ms, value_str)
from . import fold_state, history_spill, log_parts
from .log_parts import open_log
from .records import _loads, fold, history_row, iter_history_spans


@dataclass
class RunState:
    run: dict                                   # id name group job_type notes tags host state times ...
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: Iterable[dict] = ()                # rows as W&B logged them (_step, _timestamp in s)
    system: Iterable[dict] = ()                 # {"_timestamp_ms": int, "<key>": value}
    metadata: dict = field(default_factory=dict)  # wandb-metadata.json / environment records
    # Offline: instead of `history`, a callable reading the HistoryRecords again, and the rows that log media
    history_records: Any = None
    media_rows: list[dict] = field(default_factory=list)


# Files W&B writes about the run itself: mapped to texts/system/params, not kept as assets.
SPECIAL_FILES = {
    "output.log": "output",
    "requirements.txt": "requirements",
    "diff.patch": "git_patch",
}
BOOKKEEPING_FILES = {"wandb-metadata.json", "wandb-summary.json", "config.yaml", "wandb-events.jsonl",
                     "wandb-history.jsonl", "wandb-resume.json"}

_EXT_TYPES = {
    "image": (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".svg"),
    "audio": (".wav", ".mp3", ".flac", ".ogg", ".m4a"),
    "video": (".mp4", ".webm", ".mov", ".avi"),
    "html": (".html", ".htm"),
    "notebook": (".ipynb",),
    "source_code": (".py",),
}


def asset_type(path: str) -> str:
    """The Comet asset type for a file under a W&B run's files/."""
    low = path.lower()
    if low.endswith(".table.json") or low.startswith(("media/table/", "media/joined-table/",
                                                      "media/partitioned-table/")):
        return "dataframe"
    if low.startswith("media/images/"):
        return "image"
    if low.startswith("media/audio/"):
        return "audio"
    if low.startswith("media/videos/"):
        return "video"
    if low.startswith("media/html/"):
        return "html"
    if low.startswith("code/"):
        return "notebook" if low.endswith(".ipynb") else "source_code"
    for kind, exts in _EXT_TYPES.items():
        if low.endswith(exts):
            return kind
    return "asset"


def _point(value: Any) -> tuple[float, str | None] | None:
    """(double, exact text or None) of a logged number; None for anything else.

    The history keeps types: a real NaN is a float (W&B writes it as the bare JSON
    token NaN), while a string logged as "NaN" or "nan" is a string, and strings are
    not metric points, so the two never meet.
    """
    if type(value) is float:
        return value, None
    if isinstance(value, (bool, int)):
        return model.metric_from_value(value)
    return None


def _epoch(row: dict) -> int | None:
    value = row.get("epoch")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else None


def _typed(value: Any) -> Any:
    """W&B keeps types, so the typed value is known, and a logged null is a JSON null."""
    return model.JSON_NULL if value is None else value


def _params(config: dict) -> list[Param]:
    out = []
    for key in sorted(config):
        if key in INTERNAL_KEYS:
            continue
        value = config[key]
        for name, leaf in (flatten({key: value}) if isinstance(value, dict) else [(key, value)]):
            out.append(Param(name=name, value=value_str(leaf), raw=_typed(leaf)))
    return out


def _others(state: RunState) -> list[Other]:
    out = []
    for name, value in flatten(state.summary, stop=is_media):
        if name.split(".")[0].startswith("_") or is_media(value):
            continue
        out.append(Other(name=name, value=value_str(value), raw=_typed(value)))
    run = state.run
    for field_name in ("group", "job_type", "notes", "sweep_id", "host", "exit_code", "user"):
        value = run.get(field_name)
        if value not in (None, ""):
            out.append(Other(name=f"wandb.{field_name}", value=value_str(value), raw=value))
    return sorted(out, key=lambda o: o.name)


_INT64 = 1 << 63


def _step(row: dict) -> int | None:
    """A row's `_step` when it is a whole number the index can hold; None (the step unknown,
    the row's values still points) for NaN, an infinity, a fraction or a number past int64,
    which only a writer other than W&B's own puts there (W&B counts steps in int64)."""
    step = row.get("_step")
    if type(step) is int:
        return step if -_INT64 <= step < _INT64 else None
    if type(step) is float and step.is_integer() and -_INT64 <= step < _INT64:
        return int(step)
    return None


def _row_axes(row: dict) -> tuple[int | None, int | None, int | None]:
    ts = row.get("_timestamp")
    ts = int(ts * 1000) if isinstance(ts, (int, float)) and math.isfinite(ts) else None
    return _step(row), ts, _epoch(row)


def _row_points(row: dict, out: Metrics, media: dict | None) -> None:
    """One history row's points into `out`; media files it logs into `media` (first wins)."""
    step, ts, epoch = _row_axes(row)
    for name, value in flatten(row, stop=is_media):
        if name in HISTORY_AXES:
            continue
        if is_media(value):
            path = value.get("path")
            if media is not None and isinstance(path, str) and path not in media:
                media[path] = {"key": name, "step": step, "timestamp": ts, "media": value}
            continue
        point = _point(value)
        if point is not None:
            out.add(name, point[0], step=step, epoch=epoch, timestamp=ts, text=point[1])


_NUMBER = model._JSON_NUMBER
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _record_points(r, out: Metrics) -> bool:
    """A HistoryRecord's points into `out` straight from its items, as _row_points would
    give them; False (nothing added) when the record needs the row built: a nested key, a
    key twice, a typed value, a dict value (nested metrics or media)."""
    names, texts, seen = [], [], set()
    axes: dict = {}
    for it in r.item:
        nested = it.nested_key
        if len(nested) > 1 or it.WhichOneof("value") is not None:
            return False
        key = nested[0] if nested else it.key
        if key in seen:
            return False
        seen.add(key)
        text = it.value_json
        if text[:1] == "{":
            return False
        if key in HISTORY_AXES or key == "epoch":
            axes[key] = _loads(text)
        if key not in HISTORY_AXES:
            names.append(key)
            texts.append(text)
    if "_step" not in axes and r.HasField("step"):
        axes["_step"] = r.step.num
    step, ts, epoch = _row_axes(axes)
    add = out.add
    for name, text in zip(names, texts):
        point = _text_point(text)
        if point is not None:
            add(name, point[0], step, epoch, ts, None, point[1])
    return True


def _text_point(text: str) -> tuple[float, str | None] | None:
    """(double, exact text or None) of a history value's JSON text; None when it is no number."""
    if _NUMBER.fullmatch(text):
        if "." in text or "e" in text or "E" in text:
            return float(text), None
        number = int(text)
        return float(number), str(number)
    if text in _NON_FINITE:
        return _NON_FINITE[text], None
    return _point(_loads(text))


def _system_points(state: RunState, out: Metrics) -> None:
    for sample in state.system:
        ts = sample.get("_timestamp_ms")
        for key in sorted(sample):
            if key.startswith("_"):
                continue
            point = _point(sample[key])
            if point is not None:
                name = key[len("system."):] if key.startswith("system.") else key
                out.add(f"sys.{name}", point[0], timestamp=ts, text=point[1])


def _stream(state: RunState):
    """The points of an offline run, a batch at a time, read again from its log."""
    from . import history_bulk      # (NumPy: imported only when points are read)
    last = None
    for batch in history_bulk.stream_points(state.history_records(), _row_axes, _text_point, _slow_points,
                                            metric_stream.BATCH_POINTS):
        if last is not None:
            yield last
        last = batch
    if isinstance(last, metric_stream.ArrayBatch):
        yield last                    # (its arrays are what the index inserts: nothing is added to them)
        last = Metrics()
    _system_points(state, last)       # the system samples close the last batch
    yield last


def _slow_points(r, out: Metrics) -> None:
    if not _record_points(r, out):
        _row_points(history_row(r), out, None)


def _metrics(state: RunState) -> tuple[Metrics, dict[str, dict]]:
    """History rows and system samples as metric points; also where each media file was logged."""
    media: dict[str, dict] = {}
    if state.history_records is not None:
        for row in state.media_rows:
            _row_points(row, Metrics(), media)
        return MetricStream(lambda: _stream(state)), media
    metrics = Metrics()
    for row in state.history:
        _row_points(row, metrics, media)
    _system_points(state, metrics)
    return metrics, media


def _assets(files: dict, media: dict) -> tuple[list[Asset], list[Text]]:
    assets, texts = [], []
    for path in sorted(files):
        entry = files[path]
        if path in SPECIAL_FILES:
            texts.append(Text(kind=SPECIAL_FILES[path], object_id=entry["object"], size=entry["size"],
                              name=path))
            continue
        if path in BOOKKEEPING_FILES:
            continue
        logged = media.get(path, {})
        meta = None
        if logged:
            info = logged["media"]
            meta = {"wandb_key": logged["key"], "wandb_type": info.get("_type")}
            for k in ("caption", "width", "height", "format", "ncols", "nrows", "sha256"):
                if k in info:
                    meta[k] = info[k]
        md5 = entry.get("md5")
        assets.append(Asset(
            asset_id=path, file_name=path, type=asset_type(path), size=entry["size"],
            object_id=entry["object"], step=logged.get("step"), metadata=meta,
            checksum=f"md5:{md5}" if md5 else None, created_at=logged.get("timestamp"),
            extra={"wandb_path": path, **({"updated_at": entry["updated_at"]} if entry.get("updated_at") else {})}))
    return assets, texts


def _system(metadata: dict) -> dict[str, Any]:
    """wandb-metadata.json / environment records, flattened, with Comet's names added."""
    system = {name: value for name, value in flatten(metadata) if value not in (None, "", [], {})}
    aliases = {"hostname": "host", "os": "os", "python_version": "python", "python_exe": "executable",
               "user": "username", "cpu_count": "cpu_count", "gpu_count": "gpu_count"}
    for comet_name, wandb_name in aliases.items():
        if metadata.get(wandb_name) not in (None, ""):
            system[comet_name] = metadata[wandb_name]
    if metadata.get("program"):
        system["command"] = " ".join([str(metadata["program"])] + [str(a) for a in metadata.get("args") or []])
    return system


def to_experiment(manifest: dict, state: RunState, files: dict, texts: dict) -> Experiment:
    run = state.run
    metrics, media = _metrics(state)
    assets, file_texts = _assets(files, media)
    all_texts = list(file_texts)
    have = {t.kind for t in all_texts if t.size}
    for kind in sorted(texts):                  # texts the reader derived (notes, output without output.log)
        if kind not in have:                    # an empty file (0.19's offline output.log) gives way
            all_texts = [t for t in all_texts if t.kind != kind]
            all_texts.append(Text(kind=kind, object_id=texts[kind]["object"], size=texts[kind]["size"]))
    return Experiment(
        source=SOURCE, workspace=manifest["workspace"], project=manifest["project"], key=manifest["key"],
        name=run.get("name") or manifest["key"], created_at=run.get("created_at"),
        started_at=run.get("started_at"), ended_at=run.get("ended_at"), updated_at=run.get("updated_at"),
        state=run.get("state"), params=_params(state.config), others=_others(state),
        tags=list(run.get("tags") or []), system=_system(state.metadata), texts=all_texts,
        assets=assets, metrics=metrics,
        extra={k: run[k] for k in ("group", "job_type", "sweep_id", "producer", "user", "url")
               if run.get(k) not in (None, "")})


# -- offline ------------------------------------------------------------------

def _log_fold(mirror, manifest: dict):
    """The log's fold without its history points: the one the fetch saved, else folded now
    (a manifest from before fold_state)."""
    from .offline import saved_state
    log_entry = manifest["log"]
    state = saved_state(mirror, log_entry) if "resume" in log_entry else None
    if state is not None:
        return fold_state.resolved(state, mirror.objects)
    with open_log(mirror, log_entry) as stream:     # never the whole log in memory
        return fold(stream, manifest.get("log_name", "run.wandb"), history=False)


def offline_state(mirror, manifest: dict, log=None, history_from: int = 0, head: bytes = b"") -> RunState:
    """`log`: the fold to take (else _log_fold); `history_from`: where the points start (a
    record boundary, a grown log's last fold end: see grown_offline), `head` the stored bytes
    from there to the end of the part holding it, if known (log_parts.open_log)."""
    log_entry, log_name = manifest["log"], manifest.get("log_name", "run.wandb")
    log = _log_fold(mirror, manifest) if log is None else log
    run = dict(log.run)
    start = run.get("start_time")
    if log.exit is not None:
        state = "finished" if log.exit["exit_code"] == 0 else "failed"
        ended = max(x for x in (log.last_time_ms, (start or 0) + 1000 * int(log.exit["runtime"] or 0))
                    if x is not None) if start or log.last_time_ms else None
    else:
        state, ended = "running", None
    run.update(state=state, created_at=start, started_at=start, ended_at=ended,
               updated_at=log.last_time_ms, producer=log.producer,
               exit_code=log.exit["exit_code"] if log.exit else None)
    metadata = dict(log.environment)
    if not metadata and "wandb-metadata.json" in manifest.get("files", {}):
        metadata = _json_object(mirror, manifest["files"]["wandb-metadata.json"])
    summary = log.summary
    if not summary and "wandb-summary.json" in manifest.get("files", {}):
        summary = _json_object(mirror, manifest["files"]["wandb-summary.json"])
    return RunState(run=run, config=log.config, summary=summary, system=log.system, metadata=metadata,
                    history_records=lambda: _history_records(mirror, log_entry, log_name, history_from, head),
                    media_rows=log.media_rows)


def _history_records(mirror, log_entry: dict, log_name: str, start: int = 0, head: bytes = b""):
    spilled = history_spill.take_spans(log_parts.parts(log_entry), start, log_name)
    if spilled is not None:       # the spans this fetch's fold framed: the stored log is not framed again
        yield from spilled
        return
    with open_log(mirror, log_entry, start, head) as stream:     # (it skips the parts before `start`)
        yield from iter_history_spans(stream, log_name, start)


def _json_object(mirror, entry: dict) -> dict:
    try:
        value = json.loads(mirror.objects.get_bytes(entry["object"]))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@normalizer("wandb-offline/1")
def normalize_offline(mirror, manifest: dict) -> Experiment:
    state = offline_state(mirror, manifest)
    return to_experiment(manifest, state, manifest.get("files", {}), manifest.get("texts", {}))


@grown_normalizer("wandb-offline/1", maybe=lambda manifest: "parts" in (manifest.get("log") or {}))
def grown_offline(mirror, manifest: dict, indexed: dict) -> Experiment | None:
    """The run of `manifest` with only the points logged after those of `indexed` (the
    manifest whose rows the index holds), when its log is that log grown: the same stored
    parts, then more, both with a saved fold (fold_state).  None otherwise: read it whole.

    Every metric row depends on its own record alone (its _step, _timestamp and epoch are
    in it), so the points from the old fold's end, plus the system samples after the old
    ones, are exactly what the index lacks; the other tables come whole from the new fold."""
    from .offline import saved_state
    old_entry, new_entry = indexed.get("log") or {}, manifest.get("log") or {}
    same_run = all(indexed.get(k) == manifest.get(k)
                   for k in ("normalizer", "workspace", "project", "key", "folder", "log_name"))
    old_parts, new_parts = log_parts.parts(old_entry) if old_entry else [], log_parts.parts(new_entry)
    if not same_run or not old_parts or new_parts[:len(old_parts)] != old_parts:
        return None
    old = saved_state(mirror, old_entry) if "resume" in old_entry else None
    new = saved_state(mirror, new_entry) if "resume" in new_entry else None
    if old is None or new is None or any(new[k] < old[k] for k in ("complete_end", "history_rows")) \
            or new["system"][:len(old["system"])] != old["system"]:
        return None
    log = fold_state.resolved(new, mirror.objects)
    log.system = log.system[len(old["system"]):]        # the samples the index lacks
    state = offline_state(mirror, manifest, log, history_from=old["complete_end"], head=fold_state.torn(old))
    return to_experiment(manifest, state, manifest.get("files", {}), manifest.get("texts", {}))


# -- online -------------------------------------------------------------------

def _json_field(value: Any) -> Any:
    """W&B sends config/summaryMetrics/systemMetrics as JSON strings."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return {}
    return value or {}


def _unwrap_config(config: dict) -> dict:
    # The server wraps each config value as {"value": v, "desc": ...}.
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
            value = value["value"]
        out[key] = value
    return out


def _jsonl_rows(mirror, pages: list[dict]) -> Iterable[dict]:
    for page in pages:
        legacy = page.get("floats") != FLOAT_TOKENS
        for line in mirror.objects.get_bytes(page["object"]).splitlines():
            if line.strip():
                row = json.loads(line)
                yield _legacy_floats(row) if legacy else row


def _legacy_floats(value: Any) -> Any:
    """Pages stored before FLOAT_TOKENS spelled a non-finite float as the string "nan",
    "inf" or "-inf" (canonical JSON); read those back as floats, as they were then."""
    if isinstance(value, str):
        return float(value) if value in ("nan", "inf", "-inf") else value
    if isinstance(value, dict):
        return {k: _legacy_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_legacy_floats(v) for v in value]
    return value


def online_state(mirror, manifest: dict) -> RunState:
    node = mirror.get_json(manifest["run"]["object"])
    heartbeat = iso_ms(node.get("heartbeatAt"))
    created = iso_ms(node.get("createdAt"))
    state = node.get("state")
    user = node.get("user") or {}
    run = {"id": node.get("name"), "name": node.get("displayName"), "group": node.get("group"),
           "job_type": node.get("jobType"), "notes": node.get("notes"), "tags": node.get("tags") or [],
           "sweep_id": node.get("sweepName"), "user": user.get("username") or user.get("name"),
           "state": state, "created_at": created, "started_at": created,
           "ended_at": heartbeat if state not in (None, "running", "pending") else None,
           "updated_at": heartbeat, "url": manifest.get("url")}
    files = manifest.get("files", {})
    metadata = _json_object(mirror, files["wandb-metadata.json"]) if "wandb-metadata.json" in files else {}
    if metadata.get("host"):
        run["host"] = metadata["host"]
    system_rows = []
    for row in _jsonl_rows(mirror, manifest.get("system", [])):
        ts = row.get("_timestamp")
        row = dict(row)
        row["_timestamp_ms"] = int(ts * 1000) if isinstance(ts, (int, float)) else None
        system_rows.append(row)
    config = _json_field(node.get("config"))
    # wandb.Api unwraps {"value": v, "desc": ...} itself and keeps the wrapped form in rawconfig
    config = config if "rawconfig" in node else _unwrap_config(config)
    return RunState(run=run, config=config,
                    summary=_json_field(node.get("summaryMetrics")),
                    history=_jsonl_rows(mirror, manifest.get("history", [])), system=system_rows,
                    metadata=metadata)


@normalizer("wandb-online/1")
def normalize_online(mirror, manifest: dict) -> Experiment:
    state = online_state(mirror, manifest)
    return to_experiment(manifest, state, manifest.get("files", {}), manifest.get("texts", {}))


# -- artifacts ----------------------------------------------------------------

@normalizer("wandb-artifact/1")
def normalize_artifact(mirror, manifest: dict) -> Artifact:
    """Artifact manifests carry the versions already extracted (from records or API nodes)."""
    versions = []
    for v in manifest.get("versions", []):
        files = [ArtifactFile(path=f["path"], size=f.get("size"), object_id=f.get("object"),
                              remote=bool(f.get("ref")), link=f.get("ref"),
                              checksum=(f"md5:{b64md5_to_hex(f.get('digest'))}"
                                        if b64md5_to_hex(f.get("digest")) else None))
                 for f in sorted(v.get("files", []), key=lambda f: f["path"])]
        versions.append(ArtifactVersion(
            version=v["version"], aliases=list(v.get("aliases", [])), tags=list(v.get("tags", [])),
            metadata=v.get("metadata"), state=v.get("state"), created_at=v.get("created_at"),
            experiment_key=v.get("run"), files=files,
            extra={k: v[k] for k in ("digest", "used_by") if v.get(k)}))
    return Artifact(source=SOURCE, workspace=manifest["workspace"], project=manifest.get("project"),
                    name=manifest["name"], type=manifest.get("artifact_type"),
                    description=manifest.get("description"), metadata=None, versions=versions)



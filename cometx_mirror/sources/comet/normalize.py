"""Comet manifests -> the common model.  Pure: reads objects, writes nothing."""
from __future__ import annotations

import json
from typing import Any

from ... import model
from ...metric_stream import MetricStream
from ...store import canonical
from .. import normalizer
from . import full_metrics, metric_answer
from .metric_columns import as_int


def _load(mirror, ref: dict | None) -> Any:
    if not ref:
        return None
    return canonical.loads(mirror.objects.get_bytes(ref["object"]))


def json_value(text: Any) -> Any:
    """Comet returns every value as a string; keep the typed value where it parses."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def experiment_state(meta: dict) -> str:
    if meta.get("running"):
        return "running"
    if meta.get("hasCrashed"):
        return "crashed"
    return "finished"


@normalizer("comet-experiment/1")
def experiment(mirror, manifest: dict) -> model.Experiment:
    meta = _load(mirror, manifest["metadata"]) or {}
    res = manifest.get("resources", {})
    exp = model.Experiment(
        source="comet", workspace=manifest["workspace"], project=manifest["project"],
        key=manifest["key"], name=meta.get("experimentName"),
        started_at=as_int(meta.get("startTimeMillis")), ended_at=as_int(meta.get("endTimeMillis")),
        created_at=as_int(meta.get("startTimeMillis")), state=experiment_state(meta),
        archived=bool(meta.get("archived")),
        extra={k: meta[k] for k in ("filePath", "fileName", "optimizationId", "durationMillis")
               if meta.get(k) is not None})

    # Comet's REST gives every value as text ("All value* fields are strings"): the text is
    # kept verbatim, and no type is guessed from it ("1.50", "true" and '["a"]' stay text).
    for p in (_load(mirror, res.get("parameters")) or {}).get("values", []):
        exp.params.append(model.Param(p["name"], p.get("valueCurrent"), None, p.get("source")))
    for o in (_load(mirror, res.get("others")) or {}).get("values", []):
        exp.others.append(model.Other(o["name"], o.get("valueCurrent"), None, as_int(o.get("timestampCurrent"))))
        if o["name"] == "Name" and not exp.name:
            exp.name = o.get("valueCurrent")   # the SDK names experiments through this other
    exp.tags = list((_load(mirror, res.get("tags")) or {}).get("tags", []))

    system = _load(mirror, res.get("system")) or {}
    exp.system = {k: v for k, v in system.items() if k != "experimentKey"}

    exp.metrics = metric_answer.points(mirror.objects, res.get("metrics"))

    for kind, ref in sorted(manifest.get("texts", {}).items()):
        exp.texts.append(model.Text(kind, ref["object"], ref["size"]))

    fetched = manifest.get("assets", {})
    listed = full_metrics.listed_assets(_load(mirror, res.get("asset_list")), _load(mirror, res.get("full_metric_list")))
    for a in listed:
        got = fetched.get(a.get("assetId"))
        metadata = a.get("metadata")
        metadata_text = metadata if isinstance(metadata, str) and metadata else None
        if isinstance(metadata, str):
            metadata = json_value(metadata) if metadata else None
        exp.assets.append(model.Asset(
            asset_id=a["assetId"], file_name=a.get("fileName", ""), type=a.get("type") or "asset",
            size=as_int(a.get("fileSize")), object_id=got["object"] if got else None,
            step=as_int(a.get("step")), epoch=as_int(a.get("epoch")), context=a.get("runContext"),
            metadata=metadata if isinstance(metadata, dict) else ({"value": metadata} if metadata else None),
            remote=bool(a.get("remote")), link=a.get("link") if a.get("remote") else None,
            checksum=f"etag:{a['etag']}" if a.get("etag") else None, created_at=as_int(a.get("createdAt")),
            metadata_text=metadata_text,
            extra={k: a[k] for k in ("dir", "tags") if a.get(k)}))
    # a metric Comet may have sampled: its total-fidelity files, or a mark that it is a sample
    counted = metric_answer.counts(mirror.objects, res["metrics"]["object"]) \
        if isinstance(exp.metrics, MetricStream) else None       # a large answer: its names alone
    full_metrics.complete(exp, listed, fetched, mirror.objects.open_seekable, counted)
    return exp


@normalizer("comet-project/1")
def project(mirror, manifest: dict) -> model.Project:
    meta = _load(mirror, manifest["metadata"]) or {}
    notes = (_load(mirror, manifest.get("notes")) or {}).get("notes")
    public = meta.get("public", meta.get("isPublic"))
    return model.Project(source="comet", workspace=manifest["workspace"], name=manifest["project"],
                         description=meta.get("projectDescription"), notes=notes or None,
                         public=None if public is None else bool(public),
                         created_at=as_int(meta.get("createdAt")),
                         extra={"projectId": meta.get("projectId")} if meta.get("projectId") else {})


@normalizer("comet-artifact/1")
def artifact(mirror, manifest: dict) -> model.Artifact:
    details = _load(mirror, manifest["details"]) or {}
    art = model.Artifact(source="comet", workspace=manifest["workspace"], name=details.get("name", manifest["name"]),
                         type=details.get("type"), project=details.get("project"),
                         description=details.get("description"), tags=list(details.get("tags") or []),
                         metadata=None)
    for v in sorted(details.get("versions", []), key=lambda v: _version_key(str(v.get("version")))):
        vid = v.get("artifactVersionId")
        files_ref = manifest.get("versions", {}).get(vid, {})
        files = (_load(mirror, files_ref.get("files")) or {}).get("files", [])
        got = files_ref.get("objects", {})
        metadata = v.get("metadata")
        version = model.ArtifactVersion(
            version=str(v.get("version")), aliases=list(v.get("alias") or []), tags=list(v.get("tags") or []),
            metadata=json_value(metadata) if isinstance(metadata, str) and metadata else metadata,
            state=v.get("state"), created_at=as_int(v.get("added")),
            experiment_key=v.get("experimentKey") or v.get("createdFrom"))
        for f in files:
            obj = got.get(f.get("assetId"))
            md = f.get("metadata")
            version.files.append(model.ArtifactFile(
                path=f.get("fileName", ""), size=as_int(f.get("fileSize")), object_id=obj["object"] if obj else None,
                remote=bool(f.get("remote")), link=f.get("link") if f.get("remote") else None,
                metadata=json_value(md) if isinstance(md, str) and md else md))
        art.versions.append(version)
    return art


def _version_key(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in v.split("."))


@normalizer("comet-registry/1")
def registry_model(mirror, manifest: dict) -> model.RegistryModel:
    details = _load(mirror, manifest["details"]) or {}
    notes = (_load(mirror, manifest.get("notes")) or {}).get("notes")
    rm = model.RegistryModel(source="comet", workspace=manifest["workspace"],
                             name=details.get("modelName", manifest["name"]),
                             description=details.get("description"), notes=notes or None,
                             public=details.get("isPublic"), tags=list(details.get("tags") or []))
    zips = manifest.get("zips", {})
    for v in sorted(details.get("versions", []), key=lambda v: _version_key(str(v.get("version")))):
        z = zips.get(str(v.get("version")))
        em = v.get("experimentModel") or {}
        rm.versions.append(model.ModelVersion(
            version=str(v.get("version")), stages=list(v.get("stages") or []), status=v.get("status"),
            tags=list(v.get("tags") or []), comment=v.get("comment"),
            experiment_key=em.get("experimentKey"), created_at=as_int(v.get("createdAt")),
            object_id=z["object"] if z else None, size=z["size"] if z else None,
            extra={"experimentModel": em} if em else {}))
    return rm


@normalizer("comet-panel/1")
def panel(mirror, manifest: dict) -> model.Panel:
    row = _load(mirror, manifest["row"]) or {}
    z = manifest.get("zip")
    return model.Panel(source="comet", workspace=manifest["workspace"], panel_id=str(row.get("templateId")),
                       name=row.get("templateName") or str(row.get("templateId")),
                       kind=row.get("scopeType") or "code",
                       object_id=z["object"] if z else None, size=z["size"] if z else None,
                       extra={k: row[k] for k in ("queryBuilderId", "revisionId", "createdAt") if row.get(k)})

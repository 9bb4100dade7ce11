"""cometx download folders -> the common model.  Pure: reads objects, writes nothing.

cometx writes Comet's REST answers nearly as they came (metadata.json is
experiment/metadata plus tags, parameters.json the parameter values,
others.jsonl and metrics.jsonl one REST entry per line, assets_metadata.jsonl
the asset list), so the mapping is the Comet source's, read from files.  What
cometx changed on the way is undone where the folder says how (an audio file
renamed `<name>-<step>.<ext>` keeps its name in logAsFileName; a repeated name
is on disk as diskFileName) and documented where it cannot be (docs/cometx.md).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator

from ... import model
from .. import normalizer
from ..comet import metric_columns
from ..comet.metric_columns import as_int, metric_points, streamed_points   # the same REST shapes
from ..comet.normalize import experiment_state, json_value
from .reader import SOURCE

GENERATED = {"run/README.md"}      # cometx writes it from git_metadata.json: nothing of its own


def _bytes(mirror, ref: dict | None) -> bytes | None:
    return mirror.objects.get_bytes(ref["object"]) if ref else None


def _json(mirror, ref: dict | None) -> Any:
    data = _bytes(mirror, ref)
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _lines(mirror, ref: dict | None) -> Iterator[dict]:
    """The JSON objects of a .jsonl file (a torn or foreign line is skipped), read in chunks:
    a metrics file of 10^7 lines is never held."""
    if not ref:
        return
    for line in _split_lines(mirror.objects.read_chunks(ref["object"])):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def _split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """bytes.splitlines over the whole text, from its chunks."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).splitlines(keepends=True)
        rest = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        for line in lines:
            yield line.rstrip(b"\r\n")
    if rest:
        yield rest


def _metric_files(files: dict) -> list[str]:
    """metrics.jsonl (Comet), or metrics/metric_NNNNN.jsonl (cometx --from wandb)."""
    out = ["metrics.jsonl"] if "metrics.jsonl" in files else []
    return out + sorted(p for p in files if p.startswith("metrics/") and p.endswith(".jsonl"))


@normalizer("cometx-experiment/1")
def experiment(mirror, manifest: dict) -> model.Experiment:
    files = manifest.get("files", {})
    meta = _json(mirror, files.get("metadata.json"))
    meta = meta if isinstance(meta, dict) else {}
    exp = model.Experiment(
        source=SOURCE, workspace=manifest["workspace"], project=manifest["project"], key=manifest["key"],
        name=meta.get("experimentName"), started_at=as_int(meta.get("startTimeMillis")),
        ended_at=as_int(meta.get("endTimeMillis")), created_at=as_int(meta.get("startTimeMillis")),
        state=experiment_state(meta), archived=bool(meta.get("archived")),
        extra={k: meta[k] for k in ("filePath", "fileName", "optimizationId", "durationMillis", "userName")
               if meta.get(k) is not None})

    params = _json(mirror, files.get("parameters.json"))
    for p in params if isinstance(params, list) else []:
        if isinstance(p, dict) and isinstance(p.get("name"), str):
            exp.params.append(model.Param(p["name"], _text(p.get("valueCurrent")), None, p.get("source")))
    for o in _lines(mirror, files.get("others.jsonl")):
        if not isinstance(o.get("name"), str):
            continue
        exp.others.append(model.Other(o["name"], _text(o.get("valueCurrent")), None, as_int(o.get("timestampCurrent"))))
        if o["name"] == "Name" and not exp.name:
            exp.name = o.get("valueCurrent")
    exp.tags = [t for t in meta.get("tags") or [] if isinstance(t, (str, int, float))]

    system = _json(mirror, files.get("system_details.json"))
    exp.system = {k: v for k, v in (system if isinstance(system, dict) else {}).items() if k != "experimentKey"}
    if system is not None and "installedPackages" not in exp.system and "osPackages" not in exp.system:
        # cometx deleted both lists and wrote one of them (installed, else OS packages) to
        # run/requirements.txt: read back as the installed packages (docs/cometx.md)
        req = _bytes(mirror, files.get("run/requirements.txt"))
        exp.system["installedPackages"] = req.decode("utf-8", "replace").splitlines() if req else []
        exp.system["osPackages"] = []

    metric_refs = [files[path] for path in _metric_files(files)]

    def points() -> Iterator[dict]:
        for ref in metric_refs:
            yield from (m for m in _lines(mirror, ref) if isinstance(m.get("metricName"), str))
    large = sum(ref.get("size", 0) for ref in metric_refs) > metric_columns.WHOLE_BYTES
    if large:
        for ref in metric_refs:     # damage found now, while the fetch can leave the run out, not mid-ingest
            mirror.objects.check(ref["object"])
    exp.metrics = streamed_points(points) if large else metric_points(list(points()))

    for kind, ref in sorted(manifest.get("texts", {}).items()):
        exp.texts.append(model.Text(kind, ref["object"], ref["size"]))
    exp.assets = _assets(mirror, files)
    return exp


def _text(value: Any) -> str | None:
    """Comet sends values as strings; a folder written by other tools may hold typed ones."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def disk_path(entry: dict) -> str:
    """Where cometx wrote an asset: assets/<type>/<diskFileName or fileName>, sanitized as it does."""
    name = "/" + str(entry.get("diskFileName") or entry.get("fileName") or "")
    name = name.replace("/../", "/").replace(":", "-").lstrip("/")
    return f"assets/{entry.get('type') or 'asset'}/{name}"


def _assets(mirror, files: dict) -> list[model.Asset]:
    out: list[model.Asset] = []
    claimed = {"assets/assets_metadata.jsonl", "assets/html/experiment.html"}
    for a in _lines(mirror, files.get("assets/assets_metadata.jsonl")):
        path = disk_path(a)
        got = files.get(path) if not a.get("remote") else None
        claimed.add(path)
        metadata = a.get("metadata")
        metadata_text = metadata if isinstance(metadata, str) and metadata else None
        if isinstance(metadata, str):
            metadata = json_value(metadata) if metadata else None
        # an audio asset with a step was renamed on disk and in fileName; logAsFileName has the name
        file_name = a.get("logAsFileName") or a.get("fileName") or ""
        out.append(model.Asset(
            asset_id=str(a.get("assetId") or _derived_id(path)), file_name=file_name,
            # cometx --from wandb writes no fileSize: the file on disk has it
            type=a.get("type") or "asset", size=as_int(a.get("fileSize", got and got["size"])),
            object_id=got["object"] if got else None,
            step=as_int(a.get("step")), epoch=as_int(a.get("epoch")), context=a.get("runContext"),
            metadata=metadata if isinstance(metadata, dict) else ({"value": metadata} if metadata else None),
            remote=bool(a.get("remote")), link=a.get("link") if a.get("remote") else None,
            checksum=f"etag:{a['etag']}" if a.get("etag") else None, created_at=as_int(a.get("createdAt")),
            metadata_text=metadata_text,
            extra={k: a[k] for k in ("dir", "tags") if a.get(k)}))
    # files no metadata line names (cometx --from wandb writes some; a user may add them): kept as assets
    for path, ref in files.items():
        if path in claimed or path in GENERATED or not _loose_asset(path):
            continue
        parts = path.split("/")
        kind = parts[1] if parts[0] == "assets" and len(parts) > 2 else (
            "source_code" if path.startswith("run/code/") else "asset")
        name = "/".join(parts[2:]) if parts[0] == "assets" and len(parts) > 2 else (
            path[len("run/code/"):] if path.startswith("run/code/") else path)
        out.append(model.Asset(asset_id=_derived_id(path), file_name=name, type=kind, size=ref["size"],
                               object_id=ref["object"], extra={"path": path}))
    return out


KNOWN_FILES = {"metadata.json", "parameters.json", "others.jsonl", "system_details.json", "metrics.jsonl",
               "metrics_summary.jsonl", "run/script.py", "run/output.txt", "run/graph_definition.txt",
               "run/requirements.txt", "run/git_metadata.json", "run/git_diff.patch"}


def _loose_asset(path: str) -> bool:
    """Any file the mapping above does not read (cometx --from wandb's run/code/ and artifacts/,
    a file a user put there) is kept as an asset, so push carries it too."""
    return path not in KNOWN_FILES and not (path.startswith("metrics/") and path.endswith(".jsonl"))


def _derived_id(path: str) -> str:
    """An id for a file with no Comet asset id: fixed by its path, 32 hex like Comet's."""
    return hashlib.blake2b(f"cometx-file:{path}".encode(), digest_size=16).hexdigest()


@normalizer("cometx-project/1")
def project(mirror, manifest: dict) -> model.Project:
    files = manifest.get("files", {})
    meta = _json(mirror, files.get("project_metadata.json"))
    meta = meta if isinstance(meta, dict) else {}
    notes = _bytes(mirror, files.get("project_notes.md"))
    public = meta.get("public", meta.get("isPublic"))
    return model.Project(source=SOURCE, workspace=manifest["workspace"], name=manifest["project"],
                         description=meta.get("projectDescription"),
                         notes=notes.decode("utf-8", "replace") if notes else None,
                         public=None if public is None else bool(public), created_at=as_int(meta.get("createdAt")),
                         extra={"projectId": meta.get("projectId")} if meta.get("projectId") else {})


# cometx writes one version of an artifact or registry model with no version number: the
# latest one at download time.  The number is not in the folder; this is what we call it.
UNKNOWN_VERSION = "1.0.0"


@normalizer("cometx-artifact/1")
def artifact(mirror, manifest: dict) -> model.Artifact:
    version = model.ArtifactVersion(version=UNKNOWN_VERSION, extra={"version_unknown": True})
    for path, ref in manifest.get("files", {}).items():
        version.files.append(model.ArtifactFile(path=path, size=ref["size"], object_id=ref["object"]))
    return model.Artifact(source=SOURCE, workspace=manifest["workspace"], name=manifest["name"],
                          versions=[version])


@normalizer("cometx-registry/1")
def registry_model(mirror, manifest: dict) -> model.RegistryModel:
    z = manifest.get("zip")
    version = model.ModelVersion(version=UNKNOWN_VERSION, object_id=z["object"] if z else None,
                                 size=z["size"] if z else None,
                                 extra={"version_unknown": True, "files": sorted(manifest.get("files", {}))})
    return model.RegistryModel(source=SOURCE, workspace=manifest["workspace"], name=manifest["name"],
                               versions=[version])


@normalizer("cometx-panel/1")
def panel(mirror, manifest: dict) -> model.Panel:
    z = manifest.get("zip")
    return model.Panel(source=SOURCE, workspace=manifest["workspace"], panel_id=manifest["panel_id"],
                       name=manifest.get("name") or manifest["panel_id"], kind="code",
                       object_id=z["object"] if z else None, size=z["size"] if z else None)

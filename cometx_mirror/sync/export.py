"""`export PATH DIR`: write mirrored experiments in cometx's download layout.

The layout is the one `cometx download` writes and `cometx copy` reads back
(one folder per experiment: metadata.json, metrics.jsonl, parameters.json,
others.jsonl, system_details.json, assets/<type>/<file> with
assets/assets_metadata.jsonl, run/...).  Rows come from the index, bytes from
the object store, streamed.  Field names follow the Comet REST shapes cometx
writes; values that Comet sends as strings (metric values, params) are strings.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Any

from ..index import queries
from ..store.mirror import Mirror
from . import browse

# text kind -> file under the experiment folder (cometx.md §1.4)
TEXT_FILES = {
    "code": "run/script.py", "output": "run/output.txt", "graph": "run/graph_definition.txt",
    "requirements": "run/requirements.txt", "git_metadata": "run/git_metadata.json",
    "git_patch": "run/git_diff.patch", "html": "assets/html/experiment.html",
}
METRIC_BATCH = 100_000


@dataclass
class ExportReport:
    experiments: int = 0
    projects: int = 0
    files: int = 0
    bytes: int = 0
    skipped_remote: int = 0
    errors: list[str] = field(default_factory=list)


def safe_relpath(name: str) -> str:
    """cometx's sanitize_filename, plus: no absolute paths or '..' escapes."""
    parts = [p.replace(":", "-") for p in name.replace("\\", "/").split("/")]
    parts = [p for p in parts if p not in ("", ".", "..")]
    return "/".join(parts) or "_"


def export(mirror: Mirror, path: str, out_dir: str | os.PathLike) -> ExportReport:
    parts = [p for p in (path or "").strip("/").split("/") if p]
    if not parts:
        raise queries.NotFound("name what to export: WORKSPACE[/PROJECT[/EXPERIMENT]]")
    out = Path(out_dir)
    report = ExportReport()
    if len(parts) >= 2 and parts[1] in WORKSPACE_KINDS:
        with browse.reading_index(mirror) as con:
            _export_workspace_entities(mirror, con, parts[0], parts[1], parts[2] if len(parts) > 2 else None,
                                       out, report)
        if not report.files:
            raise queries.NotFound(f"nothing at {'/'.join(parts)} in the mirror")
        return report
    with browse.reading_index(mirror) as con:
        if len(parts) >= 3:
            exp_ids = [queries.find_experiment(con, "/".join(parts))]
        elif len(parts) == 2:
            exp_ids = [r[0] for r in con.execute(
                "SELECT exp_id FROM experiments WHERE workspace = ? AND project = ? ORDER BY exp_id",
                parts).fetchall()]
        else:
            exp_ids = [r[0] for r in con.execute(
                "SELECT exp_id FROM experiments WHERE workspace = ? ORDER BY exp_id", parts).fetchall()]
        projects = queries.select(con, "SELECT * FROM projects WHERE workspace = ?"
                                  + (" AND project = ?" if len(parts) >= 2 else ""),
                                  parts[:2]).records()
        if len(parts) == 1:
            for kind in WORKSPACE_KINDS:
                _export_workspace_entities(mirror, con, parts[0], kind, None, out, report)
        if not exp_ids and not projects and not report.files:
            raise queries.NotFound(f"nothing at {'/'.join(parts)} in the mirror")
        for p in projects:
            _export_project(mirror, p, out, report)
        for exp_id in exp_ids:
            _export_experiment(mirror, con, exp_id, out, report)
    return report


WORKSPACE_KINDS = ("artifacts", "model-registry", "panels")


def _export_workspace_entities(mirror: Mirror, con, workspace: str, kind: str, name: str | None,
                               out: Path, report: ExportReport) -> None:
    """cometx's WS/artifacts/NAME/<path>, WS/model-registry/NAME/<zip contents>, WS/panels/panel-<id>.zip.

    Like cometx, artifacts and models get no version folder: the latest version is written.
    """
    folder = out / safe_relpath(workspace) / kind
    if kind == "artifacts":
        rows = con.execute("""
            WITH latest AS (
                SELECT artifact, version FROM artifact_versions WHERE workspace = ?
                QUALIFY row_number() OVER (PARTITION BY source, artifact
                                           ORDER BY created_at DESC NULLS LAST, version DESC) = 1)
            SELECT f.artifact, f.path, f.object_id FROM artifact_files f JOIN latest l
              ON f.artifact = l.artifact AND f.version = l.version
            WHERE f.workspace = ? AND (? IS NULL OR f.artifact = ?) ORDER BY 1, 2""",
                           [workspace, workspace, name, name]).fetchall()
        for artifact, path, oid in rows:
            if oid:
                _write_object(mirror, oid, folder / safe_relpath(artifact) / safe_relpath(path), report)
            else:
                report.skipped_remote += 1
    elif kind == "model-registry":
        rows = con.execute("""
            SELECT model, object_id FROM registry_versions WHERE workspace = ? AND (? IS NULL OR model = ?)
            QUALIFY row_number() OVER (PARTITION BY source, model
                                       ORDER BY created_at DESC NULLS LAST, version DESC) = 1
            ORDER BY 1""", [workspace, name, name]).fetchall()
        for model_name, oid in rows:
            if oid:
                _extract_zip(mirror, oid, folder / safe_relpath(model_name), report)
    elif kind == "panels":
        rows = con.execute("""SELECT panel_id, object_id FROM panels WHERE workspace = ?
                              AND (? IS NULL OR panel_id = ? OR name = ?) ORDER BY 1""",
                           [workspace, name, name, name]).fetchall()
        for panel_id, oid in rows:
            if oid:
                _write_object(mirror, oid, folder / safe_relpath(f"panel-{panel_id}.zip"), report)


def _extract_zip(mirror: Mirror, object_id: str, target: Path, report: ExportReport) -> None:
    """Unzip a stored zip into `target`, member names sanitized (no escaping the folder)."""
    with tempfile.TemporaryFile() as tmp:
        for chunk in mirror.objects.read_chunks(object_id):
            tmp.write(chunk)
        tmp.seek(0)
        with zipfile.ZipFile(tmp) as z:
            for info in z.infolist():
                if info.is_dir():
                    continue
                dest = target / safe_relpath(info.filename)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                report.files += 1
                report.bytes += info.file_size


def _write(path: Path, data: bytes | str, report: ExportReport) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    report.files += 1
    report.bytes += len(data)


def _write_object(mirror: Mirror, object_id: str, path: Path, report: ExportReport) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        for chunk in mirror.objects.read_chunks(object_id):   # verified as it streams
            f.write(chunk)
            report.bytes += len(chunk)
    os.replace(tmp, path)
    report.files += 1


def _dump(value: Any) -> str:
    return json.dumps(value, default=str)


def _ms(ts) -> int | None:
    # The index keeps naive UTC timestamps; .timestamp() alone would apply the local zone.
    return None if ts is None else round(ts.replace(tzinfo=timezone.utc).timestamp() * 1000)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _export_project(mirror: Mirror, p: dict, out: Path, report: ExportReport) -> None:
    folder = out / safe_relpath(p["workspace"]) / safe_relpath(p["project"])
    meta = dict(_loads(p["extra"]) or {})
    meta.update({"projectName": p["project"], "workspaceName": p["workspace"],
                 "projectDescription": p["description"], "public": bool(p["public"]),
                 "cometDownloadVersion": "cometx-mirror"})
    _write(folder / "project_metadata.json", _dump(meta), report)
    if p["notes"]:
        _write(folder / "project_notes.md", p["notes"], report)
    report.projects += 1


def _metric_value(v: float | None) -> str | None:
    if v is None:
        return None
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(v)


def _export_experiment(mirror: Mirror, con, exp_id: str, out: Path, report: ExportReport) -> None:
    e = queries.select(con, "SELECT * FROM experiments WHERE exp_id = ?", [exp_id]).records()[0]
    folder = (out / safe_relpath(e["workspace"]) / safe_relpath(e["project"])
              / safe_relpath(e["experiment_key"]))
    texts = queries.select(con, "SELECT kind, name, object_id FROM texts WHERE exp_id = ? ORDER BY kind, name",
                           [exp_id]).records()

    # metadata.json: the source's own metadata object when it kept one, our fields over it
    meta: dict[str, Any] = {}
    for t in texts:
        if t["kind"] == "metadata":
            try:
                loaded = json.loads(mirror.objects.get_bytes(t["object_id"]))
                meta = loaded if isinstance(loaded, dict) else {}
            except ValueError:
                pass
    tags = [r[0] for r in con.execute("SELECT tag FROM tags WHERE exp_id = ? ORDER BY tag", [exp_id]).fetchall()]
    start, end = _ms(e["started_at"] or e["created_at"]), _ms(e["ended_at"])
    meta.update({"experimentKey": e["experiment_key"], "experimentName": e["name"],
                 "projectName": e["project"], "workspaceName": e["workspace"],
                 "startTimeMillis": start, "endTimeMillis": end,
                 "durationMillis": (end - start) if start is not None and end is not None else None,
                 "archived": bool(e["archived"]), "running": e["state"] == "running",
                 "tags": tags, "cometDownloadVersion": "cometx-mirror"})
    _write(folder / "metadata.json", _dump(meta), report)

    params = con.execute("SELECT name, value FROM params WHERE exp_id = ? ORDER BY name", [exp_id]).fetchall()
    _write(folder / "parameters.json",
           _dump([{"name": n, "valueCurrent": v, "valueMax": v, "valueMin": v} for n, v in params]), report)

    others = con.execute("SELECT name, value, timestamp FROM others WHERE exp_id = ? ORDER BY name",
                         [exp_id]).fetchall()
    if e["name"] and not any(n == "Name" for n, _, _ in others):
        others.insert(0, ("Name", e["name"], None))   # cometx copy takes the name from here
    _write(folder / "others.jsonl", "".join(
        _dump({"name": n, "valueCurrent": v, "valueMax": v, "valueMin": v,
               "timestampCurrent": _ms(ts)}) + "\n" for n, v, ts in others), report)

    system = {n: _loads(v) for n, v in con.execute(
        "SELECT name, value FROM system_details WHERE exp_id = ? ORDER BY name", [exp_id]).fetchall()}
    for key in ("osPackages", "installedPackages"):
        system.pop(key, None)
    _write(folder / "system_details.json", _dump(system), report)

    _export_metrics(con, exp_id, folder / "metrics.jsonl", report)

    for t in texts:
        target = TEXT_FILES.get(t["kind"])
        if target and t["object_id"]:
            _write_object(mirror, t["object_id"], folder / target, report)
    _export_assets(mirror, con, exp_id, folder, report)
    report.experiments += 1


def _export_metrics(con, exp_id: str, path: Path, report: ExportReport) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cur = con.execute("""SELECT name, value, epoch_ms(timestamp), step, epoch, context FROM metrics
                         WHERE exp_id = ? ORDER BY timestamp NULLS FIRST, step NULLS FIRST, name""", [exp_id])
    with open(path, "w", encoding="utf-8") as f:
        offset = 0
        while rows := cur.fetchmany(METRIC_BATCH):
            lines = []
            for name, value, ts, step, epoch, context in rows:
                lines.append(_dump({"metricName": name, "metricValue": _metric_value(value),
                                    "timestamp": ts, "step": step, "epoch": epoch,
                                    "runContext": context, "offset": offset}))
                offset += 1
            text = "\n".join(lines) + "\n"
            f.write(text)
            report.bytes += len(text)
    report.files += 1


def _export_assets(mirror: Mirror, con, exp_id: str, folder: Path, report: ExportReport) -> None:
    rows = queries.select(con, """SELECT * FROM assets WHERE exp_id = ?
                                  ORDER BY created_at NULLS FIRST, asset_id""", [exp_id]).records()
    if not rows:
        return
    seen: dict[str, int] = {}     # cometx numbers repeated file names across all types
    lines = []
    for a in rows:
        entry = dict(_loads(a["extra"]) or {})
        file_name = a["file_name"]
        disk_name = file_name
        if not a["remote"]:
            n = seen.get(file_name, 0)
            seen[file_name] = n + 1
            if n:
                base, dot, ext = file_name.rpartition(".")
                disk_name = f"{base}_{n}.{ext}" if dot and base else f"{file_name}_{n}"
        metadata = _loads(a["metadata"])
        entry.update({"assetId": a["asset_id"], "fileName": file_name, "type": a["type"] or "asset",
                      "fileSize": a["size"], "step": a["step"], "epoch": a["epoch"],
                      "runContext": a["context"], "remote": bool(a["remote"]), "link": a["link"],
                      "metadata": json.dumps(metadata) if metadata is not None else None,
                      "createdAt": _ms(a["created_at"]), "diskFileName": disk_name,
                      "logAsFileName": file_name})
        lines.append(_dump(entry))
        if a["remote"] or not a["object_id"]:
            report.skipped_remote += 1
            continue
        target = folder / "assets" / safe_relpath(a["type"] or "asset") / safe_relpath(disk_name)
        _write_object(mirror, a["object_id"], target, report)
    _write(folder / "assets" / "assets_metadata.jsonl", "\n".join(lines) + "\n", report)

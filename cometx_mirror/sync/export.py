"""`export PATH DIR`: write mirrored experiments in cometx's download layout.

The layout is the one `cometx download` writes and `cometx copy` reads back
(one folder per experiment: metadata.json, metrics.jsonl, parameters.json,
others.jsonl, system_details.json, assets/<type>/<file> with
assets/assets_metadata.jsonl, run/...).  Rows come from the index, bytes from
the object store, streamed.  Field names follow the Comet REST shapes cometx
writes; values that Comet sends as strings (metric values, params) are strings.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import IO, Any, Iterator

from .. import model, paths
from ..errors import ExpectedError
from ..index import queries
from ..store.mirror import Mirror
from ..store.objects import ObjectError
from . import browse

# text kind -> file under the experiment folder (cometx.md §1.4)
TEXT_FILES = {
    "code": "run/script.py", "output": "run/output.txt", "graph": "run/graph_definition.txt",
    "requirements": "run/requirements.txt", "git_metadata": "run/git_metadata.json",
    "git_patch": "run/git_diff.patch", "html": "assets/html/experiment.html",
}
METRIC_BATCH = 100_000


class ExportError(ExpectedError):
    """The target folder cannot take the export (not empty without --force, a file in the way)."""


@dataclass
class ExportReport:
    experiments: int = 0
    projects: int = 0
    files: int = 0
    bytes: int = 0
    skipped_remote: int = 0
    errors: list[str] = field(default_factory=list)
    root: Path | None = field(default=None, repr=False)    # the target folder; nothing is written outside it


def safe_relpath(name: str) -> str:
    """cometx's sanitize_filename, plus: no absolute paths or '..' escapes."""
    parts = [p.replace(":", "-") for p in name.replace("\\", "/").split("/")]
    parts = [p for p in parts if p not in ("", ".", "..")]
    return "/".join(parts) or "_"


def export(mirror: Mirror, path: str, out_dir: str | os.PathLike, force: bool = False) -> ExportReport:
    """Export what `path` names.  The index is read per entity over short read-only
    connections and closed while files are written: an open DuckDB connection,
    even read-only, keeps a fetch from writing the index.

    A folder that already holds files is refused unless `force`; even then no
    symlink inside it is followed: a link where a file or folder goes is replaced."""
    parts = paths.split(path)
    if not parts:
        raise queries.NotFound("name what to export: WORKSPACE[/PROJECT[/EXPERIMENT]]")
    out = Path(out_dir)
    _check_target(out, force)
    report = ExportReport(root=out)
    workspace = parts[0]
    project = parts[1] if len(parts) >= 2 else None
    with browse.reading_index(mirror) as con:
        if project in WORKSPACE_KINDS:            # WS/artifacts[/NAME], WS/model-registry[/NAME], WS/panels[/ID]
            exp_ids, projects = [], []
            files = _workspace_files(con, workspace, project, parts[2] if len(parts) > 2 else None)
        else:
            if len(parts) >= 3:
                exp_ids = [queries.find_experiment(con, "/".join(parts))]
            else:
                exp_ids = [r[0] for r in con.execute(
                    "SELECT exp_id FROM experiments WHERE workspace = ? AND (? IS NULL OR project = ?) "
                    "ORDER BY exp_id", [workspace, project, project]).fetchall()]
            projects = queries.select(con, "SELECT * FROM projects WHERE workspace = ? AND (? IS NULL OR project = ?)"
                                      " ORDER BY project", [workspace, project, project]).records()
            files = [f for kind in WORKSPACE_KINDS if project is None
                     for f in _workspace_files(con, workspace, kind, None)]
    for kind, rel, oid in files:
        _write_workspace_file(mirror, kind, out / safe_relpath(workspace) / kind / rel, oid, report)
    if not exp_ids and not projects and not files:
        raise queries.NotFound(f"nothing at {path.strip('/')} in the mirror")
    for p in projects:
        _export_project(mirror, p, out, report)
    for exp_id in exp_ids:
        with browse.reading_index(mirror, refresh=False) as con:
            rows = _experiment_rows(con, exp_id)
        try:
            _write_experiment(mirror, rows, out, report)
        except ObjectError as e:      # a damaged object fails its experiment; the others go on
            report.errors.append(f"{exp_id}: {' '.join(str(e).split())}")
    return report


WORKSPACE_KINDS = ("artifacts", "model-registry", "panels")


def _workspace_files(con, workspace: str, kind: str, name: str | None) -> list[tuple[str, str, str | None]]:
    """cometx's WS/artifacts/NAME/<path>, WS/model-registry/NAME/<zip contents>, WS/panels/panel-<id>.zip.

    Like cometx, artifacts and models get no version folder: the latest version is written.
    """
    if kind == "artifacts":
        rows = con.execute("""
            WITH latest AS (
                SELECT source, project, artifact, version FROM artifact_versions WHERE workspace = ?
                QUALIFY row_number() OVER (PARTITION BY source, project, artifact
                                           ORDER BY created_at DESC NULLS LAST, version DESC) = 1)
            SELECT f.artifact, f.path, f.object_id FROM artifact_files f JOIN latest l
              ON f.source = l.source AND f.project IS NOT DISTINCT FROM l.project
             AND f.artifact = l.artifact AND f.version = l.version
            WHERE f.workspace = ? AND (? IS NULL OR f.artifact = ?) ORDER BY 1, 2""",
                           [workspace, workspace, name, name]).fetchall()
        return [(kind, f"{safe_relpath(a)}/{safe_relpath(p)}", oid) for a, p, oid in rows]
    if kind == "model-registry":
        rows = con.execute("""
            SELECT model, object_id FROM registry_versions WHERE workspace = ? AND (? IS NULL OR model = ?)
            QUALIFY row_number() OVER (PARTITION BY source, model
                                       ORDER BY created_at DESC NULLS LAST, version DESC) = 1
            ORDER BY 1""", [workspace, name, name]).fetchall()
        return [(kind, safe_relpath(m), oid) for m, oid in rows]
    rows = con.execute("""SELECT panel_id, object_id FROM panels WHERE workspace = ?
                          AND (? IS NULL OR panel_id = ? OR name = ?) ORDER BY 1""",
                       [workspace, name, name, name]).fetchall()
    return [(kind, safe_relpath(f"panel-{pid}.zip"), oid) for pid, oid in rows]


def _write_workspace_file(mirror: Mirror, kind: str, target: Path, oid: str | None, report: ExportReport) -> None:
    if not oid:
        report.skipped_remote += 1
    elif kind == "model-registry":
        _extract_zip(mirror, oid, target, report)
    else:
        _write_object(mirror, oid, target, report)


def _check_target(out: Path, force: bool) -> None:
    if out.is_dir():
        if not force and any(out.iterdir()):
            raise ExportError(f"{out} is not empty: pass --force to write into it "
                              "(files the export writes are replaced, others are left alone)")
    elif out.exists() or out.is_symlink():
        raise ExportError(f"{out} exists and is not a folder")


def _folder(report: ExportReport, folder: Path) -> None:
    """Create `folder` under the target, replacing any symlink on the way (never followed)."""
    rel = folder.relative_to(report.root)     # every path here is built under the target
    report.root.mkdir(parents=True, exist_ok=True)
    d = report.root
    for part in rel.parts:
        d = d / part
        if d.is_symlink():
            d.unlink()
        if not d.exists():
            d.mkdir()
        elif not d.is_dir():
            raise ExportError(f"{d} is a file where the export needs a folder")


@contextlib.contextmanager
def _created(report: ExportReport, path: Path) -> Iterator[IO[bytes]]:
    """A new file at `path`, written beside it and renamed over it: a symlink at `path`
    is replaced, not written through, and a cut export leaves no half file."""
    _folder(report, path.parent)
    tmp = path.with_name(path.name + ".part")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


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
                with z.open(info) as src, _created(report, dest) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                report.files += 1
                report.bytes += info.file_size


def _write(path: Path, data: bytes | str, report: ExportReport) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    with _created(report, path) as f:
        f.write(data)
    report.files += 1
    report.bytes += len(data)


def _write_object(mirror: Mirror, object_id: str, path: Path, report: ExportReport) -> None:
    chunks = mirror.objects.read_chunks(object_id)     # verified before a file is created
    with _created(report, path) as f:
        for chunk in chunks:
            f.write(chunk)
            report.bytes += len(chunk)
    report.files += 1


def _dump(value: Any) -> str:
    return json.dumps(value, default=str)


def _ms(ts) -> int | None:
    # The index keeps naive UTC timestamps; .timestamp() alone would apply the local zone.
    return None if ts is None else round(ts.replace(tzinfo=timezone.utc).timestamp() * 1000)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _comet_raw(mirror: Mirror, manifest_id: str | None, kind: str) -> dict | None:
    """The REST answers a Comet fetch kept for this entity (its manifest's objects), or None
    for another source: cometx writes those answers, so export writes them as they came."""
    if not manifest_id or not mirror.objects.exists(manifest_id):
        return None
    manifest = mirror.get_json(manifest_id)
    if not str(manifest.get("normalizer", "")).startswith(f"comet-{kind}/"):
        return None
    load = lambda ref: mirror.get_json(ref["object"]) if ref and ref.get("object") else None  # noqa: E731
    resources = manifest.get("resources") or {}
    return {"metadata": load(manifest.get("metadata")),
            **{name: load(resources.get(name)) for name in ("parameters", "others", "system", "asset_list")}}


def _export_project(mirror: Mirror, p: dict, out: Path, report: ExportReport) -> None:
    folder = out / safe_relpath(p["workspace"]) / safe_relpath(p["project"])
    raw = _comet_raw(mirror, p["manifest_id"], "project") or {}
    meta = dict(raw.get("metadata") or _loads(p["extra"]) or {})
    if not raw.get("metadata"):        # another source: the fields cometx's project JSON has
        meta.update({"projectName": p["project"], "workspaceName": p["workspace"],
                     "projectDescription": p["description"], "public": bool(p["public"]),
                     "isPublic": bool(p["public"]), "createdAt": _ms(p["created_at"])})
    meta["cometDownloadVersion"] = "cometx-mirror"
    _write(folder / "project_metadata.json", _dump(meta), report)
    if p["notes"]:
        _write(folder / "project_notes.md", p["notes"], report)
    report.projects += 1


def _metric_value(v: float | None) -> str | None:
    return None if v is None else model.double_text(v)


@dataclass
class ExperimentRows:
    """Everything the index holds for one experiment, read in one short connection."""
    exp: dict
    texts: list[dict]
    tags: list[str]
    params: list[tuple]
    others: list[tuple]
    system: dict
    metrics: Any          # a pyarrow Table
    assets: list[dict]


def _experiment_rows(con, exp_id: str) -> ExperimentRows:
    import duckdb   # the package's relational API, for an Arrow table (the index opens only its core)
    rows = lambda sql: con.execute(sql, [exp_id]).fetchall()  # noqa: E731
    return ExperimentRows(
        exp=queries.select(con, "SELECT * FROM experiments WHERE exp_id = ?", [exp_id]).records()[0],
        texts=queries.select(con, "SELECT kind, name, object_id FROM texts WHERE exp_id = ? ORDER BY kind, name",
                             [exp_id]).records(),
        tags=[r[0] for r in rows("SELECT tag FROM tags WHERE exp_id = ? ORDER BY tag")],
        params=rows("SELECT name, value FROM params WHERE exp_id = ? ORDER BY name"),
        others=rows("SELECT name, value, timestamp FROM others WHERE exp_id = ? ORDER BY name"),
        system={n: _loads(v) for n, v in rows("SELECT name, value FROM system_details WHERE exp_id = ? ORDER BY name")},
        metrics=duckdb.sql("""SELECT name, value, text, epoch_ms(timestamp) AS ts, step, epoch, context FROM metrics
                              WHERE exp_id = ? ORDER BY timestamp NULLS FIRST, step NULLS FIRST, name""",
                           params=[exp_id], connection=con).to_arrow_table(),
        assets=queries.select(con, "SELECT * FROM assets WHERE exp_id = ? ORDER BY created_at NULLS FIRST, asset_id",
                              [exp_id]).records())


def _write_experiment(mirror: Mirror, r: ExperimentRows, out: Path, report: ExportReport) -> None:
    e = r.exp
    folder = (out / safe_relpath(e["workspace"]) / safe_relpath(e["project"])
              / safe_relpath(e["experiment_key"]))
    raw = _comet_raw(mirror, e["manifest_id"], "experiment") or {}
    _write(folder / "metadata.json", _dump(_metadata(mirror, r, raw)), report)
    params = (raw.get("parameters") or {}).get("values")
    if params is None:
        params = [_summary(n, v, None, steps=True) for n, v in r.params]
    _write(folder / "parameters.json", _dump(params), report)
    others = (raw.get("others") or {}).get("values")
    if others is None:
        others = [_summary(n, v, ts) for n, v, ts in r.others]
        if e["name"] and not any(o["name"] == "Name" for o in others):
            others.insert(0, _summary("Name", e["name"], None))   # cometx copy takes the name from here
    _write(folder / "others.jsonl", "".join(_dump(o) + "\n" for o in others), report)

    system = {k: v for k, v in (raw.get("system") or r.system).items()
              if k not in ("osPackages", "installedPackages")}   # cometx writes the packages apart
    _write(folder / "system_details.json", _dump(system), report)
    _export_metrics(r.metrics, folder / "metrics.jsonl", report)

    kinds = {t["kind"] for t in r.texts}
    for t in r.texts:
        target = TEXT_FILES.get(t["kind"])
        if target and t["kind"] == "git_patch" and t["object_id"]:
            _write_patch(mirror, t["object_id"], folder / target, report)
        elif target and t["object_id"]:
            _write_object(mirror, t["object_id"], folder / target, report)
    packages = r.system.get("installedPackages") or r.system.get("osPackages")
    if "requirements" not in kinds and packages:    # cometx writes Comet's package list, one a line
        _write(folder / TEXT_FILES["requirements"], "\n".join(map(str, packages)), report)
    git = next((t for t in r.texts if t["kind"] == "git_metadata" and t["object_id"]), None)
    if git is not None:
        readme = _git_readme(json.loads(mirror.objects.get_bytes(git["object_id"]) or b"{}"),
                             patch="git_patch" in kinds)
        if readme:
            _write(folder / "run" / "README.md", readme, report)
    _export_assets(mirror, r.assets, folder, report, (raw.get("asset_list") or {}).get("assets"))
    report.experiments += 1


def _metadata(mirror: Mirror, r: ExperimentRows, raw: dict) -> dict:
    """metadata.json: Comet's own experiment metadata where the fetch kept it, else the source's
    own metadata object with the fields cometx's has over it; tags as cometx adds them."""
    e = r.exp
    if raw.get("metadata"):
        return {**raw["metadata"], "tags": r.tags, "cometDownloadVersion": "cometx-mirror"}
    meta: dict[str, Any] = {}
    for t in r.texts:
        if t["kind"] == "metadata":
            with contextlib.suppress(ValueError):
                loaded = json.loads(mirror.objects.get_bytes(t["object_id"]))
                meta = loaded if isinstance(loaded, dict) else {}
    start, end = _ms(e["started_at"] or e["created_at"]), _ms(e["ended_at"])
    extra = _loads(e["extra"]) or {}
    meta.update({k: extra[k] for k in ("filePath", "fileName", "optimizationId") if k in extra})
    meta.update({"experimentKey": e["experiment_key"], "experimentName": e["name"],
                 "projectName": e["project"], "workspaceName": e["workspace"],
                 "startTimeMillis": start, "endTimeMillis": end,
                 "durationMillis": (end - start) if start is not None and end is not None else None,
                 "archived": bool(e["archived"]), "running": e["state"] == "running",
                 "hasCrashed": e["state"] == "crashed", "tags": r.tags, "cometDownloadVersion": "cometx-mirror"})
    return meta


def _summary(name: str, value: str | None, timestamp, steps: bool = False) -> dict:
    """One entry of Comet's parameter/other summary, for a source that kept only the value."""
    ts = _ms(timestamp)
    out = {"name": name, "valueMax": value, "valueMin": value, "valueCurrent": value,
           "timestampMax": ts, "timestampMin": ts, "timestampCurrent": ts, "editable": False}
    if steps:
        out.update(stepMax=None, stepMin=None, stepCurrent=None)
    return out


def _git_readme(git: dict, patch: bool) -> str | None:
    """run/README.md: how to get back to the code this run saw (cometx writes one when the
    origin is known).  Our own wording; the commands are git's."""
    origin = git.get("origin")
    if not origin:
        return None
    folder = origin.rstrip("/").split("/")[-1].split(":")[-1].removesuffix(".git") or "repo"
    branch = (git.get("branch") or "").split("/")[-1]
    lines = ["# The code of this run", "", "Clone the repository and go to the commit the run started from"
             + (", then apply the uncommitted changes it carried" if patch else "") + ":", "", "```",
             f"git clone {origin} {folder}", f"cd {folder}"]
    if branch:
        lines.append(f"git checkout {branch}")
    if git.get("parent"):
        lines.append(f"git checkout {git['parent']}")
    if patch:
        lines.append("git apply ../git_diff.patch")
    return "\n".join(lines + ["```", ""])


def _write_patch(mirror: Mirror, object_id: str, path: Path, report: ExportReport) -> None:
    """run/git_diff.patch as cometx writes it: the patch text.  Comet answers the patch
    as a zip holding git_diff.patch; that zip is what the mirror keeps, so it is opened
    here (`cometx copy` zips the file itself: copying the zip would nest two)."""
    with tempfile.TemporaryFile() as tmp:
        for chunk in mirror.objects.read_chunks(object_id):
            tmp.write(chunk)
        tmp.seek(0)
        if zipfile.is_zipfile(tmp):
            with zipfile.ZipFile(tmp) as z:
                files = [i for i in z.infolist() if not i.is_dir()]
                member = next((i for i in files if i.filename.rsplit("/", 1)[-1] == "git_diff.patch"),
                              files[0] if files else None)
                if member is None:
                    return      # an empty zip: no patch to write
                with z.open(member) as src, _created(report, path) as dst:
                    report.bytes += _copy(src, dst)
        else:                   # already text (another source, or a server that sends it plain)
            tmp.seek(0)
            with _created(report, path) as dst:
                report.bytes += _copy(tmp, dst)
    report.files += 1


def _copy(src: IO[bytes], dst: IO[bytes]) -> int:
    n = 0
    while chunk := src.read(1 << 20):
        dst.write(chunk)
        n += len(chunk)
    return n


def _export_metrics(table, path: Path, report: ExportReport) -> None:
    with _created(report, path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
        offset = 0
        for batch in table.to_batches(METRIC_BATCH):
            lines = []
            for row in batch.to_pylist():
                value = row["text"] if row["text"] is not None else _metric_value(row["value"])
                lines.append(_dump({"metricName": row["name"], "metricValue": value,
                                    "timestamp": row["ts"], "step": row["step"], "epoch": row["epoch"],
                                    "runContext": row["context"], "offset": offset}))
                offset += 1
            if lines:
                text = "\n".join(lines) + "\n"
                f.write(text)
                report.bytes += len(text)
    report.files += 1


def _export_assets(mirror: Mirror, rows: list[dict], folder: Path, report: ExportReport,
                   listed: list[dict] | None = None) -> None:
    """assets/<type>/<file> and assets_metadata.jsonl as cometx writes them: the asset list
    entries (Comet's own where the fetch kept them), an audio file with a step renamed
    `<name>-<step>.<ext>` (logAsFileName keeps the name), and a repeated name numbered
    `<name>_<n>.<ext>` on disk (diskFileName), counting every asset, remote ones too."""
    if not rows:
        return
    by_id = {entry.get("assetId"): entry for entry in listed or []}
    order = {asset_id: i for i, asset_id in enumerate(by_id)}
    rows = sorted(rows, key=lambda a: order.get(a["asset_id"], len(order)))   # the list's order, as cometx
    seen: dict[str, int] = {}
    lines = []
    for a in rows:
        entry = dict(by_id.get(a["asset_id"]) or _loads(a["extra"]) or {})
        if a["asset_id"] not in by_id:
            entry.update({"assetId": a["asset_id"], "fileName": a["file_name"], "type": a["type"] or "asset",
                          "fileSize": a["size"], "step": a["step"], "epoch": a["epoch"],
                          "runContext": a["context"], "remote": bool(a["remote"]), "link": a["link"],
                          "metadata": a["metadata"],      # the text the source sent (index/ingest)
                          "createdAt": _ms(a["created_at"])})
        file_name = entry["fileName"]
        if entry.get("type") == "audio" and entry.get("step") is not None:
            base, dot, ext = file_name.partition(".")
            entry["logAsFileName"] = file_name
            file_name = entry["fileName"] = f"{base}-{entry['step']}.{ext}"
        n = seen.get(file_name)
        seen[file_name] = 0 if n is None else n + 1
        disk_name = file_name
        if n is not None:
            base, dot, ext = file_name.rpartition(".")
            disk_name = entry["diskFileName"] = (f"{base}_{n + 1}.{ext}" if dot else f"{file_name}_{n + 1}")
        lines.append(_dump(entry))
        if a["remote"] or not a["object_id"]:
            report.skipped_remote += 1
            continue
        target = folder / "assets" / safe_relpath(a["type"] or "asset") / safe_relpath(disk_name)
        _write_object(mirror, a["object_id"], target, report)
    _write(folder / "assets" / "assets_metadata.jsonl", "\n".join(lines) + "\n", report)

"""Fetching runs from a W&B server through `wandb.Api`.

Per run we store the run node as the API returned it (config, summary, state,
heartbeat, ...), the full history through `scan_history` (never the sampled
`history()`) as JSON-lines pages, the system-metrics stream, every run file
(skipping ones whose md5 we already hold) and the logged and used artifacts.

A run whose watermark (heartbeat, state, historyLineCount, config, summary,
tags, notes ...) equals the one in the previous snapshot is not touched: its
manifest is reused.  A changed run only pulls history past the
last step we hold.
"""
from __future__ import annotations

import base64
import json
import netrc
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

from ...net.urls import host_of, redact
from ...store import canonical
from ...store.refs import ref_part
from .. import SourceError
from .common import (FLOAT_TOKENS, SOURCE, artifact_label, b64md5_to_hex, exp_label, history_jsonl, iso_ms,
                     store_bytes, store_file, store_json)
from .request_count import RequestCount

HISTORY_PAGE_ROWS = 10_000     # rows per stored history object
SCAN_PAGE_SIZE = 1_000         # rows per scan_history request
SYSTEM_SAMPLES = 1_000_000     # events(samples:) is sampled server-side; ask for everything


# -- connecting ---------------------------------------------------------------

def base_url(options) -> str:
    url = options.url or os.environ.get("WANDB_BASE_URL")
    if not url:
        from wandb.sdk.lib.urls import DEFAULT_BASE_URL
        url = DEFAULT_BASE_URL
    return url.rstrip("/")


def api_key(options, url: str) -> str:
    """--api-key, then WANDB_API_KEY, then ~/.netrc (as `wandb login` writes it)."""
    key = options.api_key or os.environ.get("WANDB_API_KEY")
    if key:
        return key
    parsed = urlparse(url)
    try:
        auth = netrc.netrc(os.environ.get("NETRC") or None)
    except (OSError, netrc.NetrcParseError):
        auth = None
    for machine in (parsed.netloc, parsed.hostname):
        found = auth.authenticators(machine) if auth and machine else None
        if found and found[2]:
            return found[2]
    raise SourceError("no W&B API key: pass --api-key, set WANDB_API_KEY or run `wandb login`")


def probe(url: str, key: str) -> None:
    """One cheap request first, so a bad key or a dead server is one clear line
    instead of wandb-core's long retry loop."""
    import requests
    token = base64.b64encode(f"api:{key}".encode()).decode()
    host = host_of(url) or redact(url)
    try:
        r = requests.post(f"{url}/graphql", json={"query": "query Viewer { viewer { id entity } }"},
                          headers={"Authorization": f"Basic {token}"}, timeout=20)
    except requests.RequestException as e:
        reason = type(e).__name__
        if isinstance(e, requests.ConnectionError):
            reason = "connection refused or host unreachable"
        raise SourceError(f"cannot reach W&B at {host}: {reason}") from None
    if r.status_code in (401, 403):
        raise SourceError(f"W&B at {host} rejected the API key (HTTP {r.status_code})")
    if r.status_code != 200:
        raise SourceError(f"W&B at {host} answered HTTP {r.status_code} to a login check")
    try:
        viewer = (r.json().get("data") or {}).get("viewer")
    except ValueError:
        raise SourceError(f"{host} does not look like a W&B server (no JSON from /graphql)") from None
    if not viewer:
        raise SourceError(f"W&B at {host} rejected the API key (no user for it)")


def connect(options):
    url = base_url(options)
    key = api_key(options, url)
    probe(url, key)
    import wandb
    _quiet(wandb)
    try:
        api = wandb.Api(api_key=key, overrides={"base_url": url}, timeout=60)
    except Exception as e:   # wandb raises many types; keep the message, never the key
        raise SourceError(f"cannot open the W&B API at {host_of(url)}: "
                          f"{str(e).replace(key, '***').splitlines()[0]}") from None
    return api, host_of(url) or redact(url)      # the origin: never a password in refs or messages


def _quiet(wandb) -> None:
    """Keep wandb's own terminal lines ("2 of 2 files downloaded.") out of our output: set up
    wandb silent (before wandb.Api() would set it up from the environment), and make its
    terminal silent too where another part of this process set wandb up already."""
    settings = wandb.Settings(silent=True)
    wandb.setup(settings=settings)
    wandb.termsetup(settings, None)


# -- one run ------------------------------------------------------------------

def _page(mirror, rows: list[dict]) -> dict:
    """Store rows as one page; its entry says how non-finite floats are spelled in it."""
    return dict(store_bytes(mirror, history_jsonl(rows)), rows=len(rows), floats=FLOAT_TOKENS)


def _history(mirror, run, previous: dict | None, line_count: int | None) -> list[dict]:
    pages = list((previous or {}).get("history", []))
    held = sum(p["rows"] for p in pages)
    if line_count is not None and held > line_count:
        pages, held = [], 0               # history was rewound (resume/fork): take it again
    start = pages[-1]["last_step"] + 1 if pages else 0
    rows: list[dict] = []

    def flush():
        if rows:
            steps = [r.get("_step", 0) for r in rows]
            pages.append(dict(_page(mirror, rows), first_step=min(steps), last_step=max(steps)))
            rows.clear()

    for row in run.scan_history(page_size=SCAN_PAGE_SIZE, min_step=start, use_cache=False):
        rows.append(dict(row))
        if len(rows) >= HISTORY_PAGE_ROWS:
            flush()
    flush()
    return pages


def _system(mirror, run) -> list[dict]:
    rows = run.history(stream="system", samples=SYSTEM_SAMPLES, pandas=False)
    return [_page(mirror, rows)] if rows else []


def _files(mirror, run, previous: dict | None, tmp: Path) -> dict:
    known = (previous or {}).get("files", {})
    out = {}
    for f in run.files(per_page=100):
        md5 = b64md5_to_hex(f.md5)
        old = known.get(f.name)
        if old and md5 and old.get("md5") == md5 and mirror.objects.exists(old["object"]):
            out[f.name] = old                 # same md5 as last time: no download
            continue
        f.download(root=str(tmp), replace=True, exist_ok=True)
        object_id, size = store_file(mirror, tmp / f.name)
        out[f.name] = {"object": object_id, "size": size, "md5": md5, "updated_at": iso_ms(f.updated_at)}
    return dict(sorted(out.items()))


def _artifact_version(mirror, art, known: dict | None, run_id: str | None, tmp: Path) -> dict:
    """One artifact version with its files stored (skipped when the digest is known)."""
    version = {"version": art.version, "digest": art.digest, "aliases": sorted(art.aliases),
               "tags": sorted(getattr(art, "tags", []) or []), "metadata": art.metadata or None,
               "state": art.state, "created_at": iso_ms(art.created_at), "run": run_id,
               "description": art.description, "type": art.type}
    if known and known.get("digest") == art.digest and all(
            f.get("object") is None or mirror.objects.exists(f["object"]) for f in known.get("files", [])):
        version["files"] = known["files"]
        return version
    root = tmp / f"artifact-{art.id}"
    art.download(root=str(root), skip_cache=True)
    files = []
    for path, entry in sorted(art.manifest.entries.items()):
        item = {"path": path, "digest": entry.digest, "size": entry.size, "ref": entry.ref or None}
        local = root / path
        if not entry.ref and local.is_file():
            item["object"], item["size"] = store_file(mirror, local)
        files.append(item)
    version["files"] = files
    return version


def fetch_run(mirror, run, entity: str, project: str, previous: dict | None, node_entry: dict,
              artifacts: dict[str, dict]) -> tuple[dict, list[tuple[str, dict]]]:
    """Fetch one changed run; return its manifest and the artifact versions it touched."""
    with tempfile.TemporaryDirectory(prefix="cometx-wandb-") as tmp_name:
        tmp = Path(tmp_name)
        line_count = run._attrs.get("historyLineCount")
        manifest = {
            "type": "experiment", "normalizer": "wandb-online/1", "source": SOURCE,
            "workspace": entity, "project": project, "key": run.id, "url": run.url,
            "run": node_entry, "history": _history(mirror, run, previous, line_count),
            "system": _system(mirror, run), "files": _files(mirror, run, previous, tmp), "texts": {},
        }
        if run._attrs.get("notes"):
            manifest["texts"]["notes"] = store_bytes(mirror, run._attrs["notes"].encode("utf-8"))
        # wandb >= 0.19 may leave output.log empty and keep the console only in its log stream
        if not manifest["files"].get("output.log", {}).get("size"):
            lines = _console(run)
            if lines:
                manifest["texts"]["output"] = store_bytes(mirror, lines.encode("utf-8"))
        touched = []
        used = []
        for kind, listing in (("logged", run.logged_artifacts()), ("used", run.used_artifacts())):
            for art in listing:
                collection = art.name.split(":")[0]
                label = artifact_label(art.entity, art.project, collection)
                known = next((v for v in artifacts.get(label, {}).get("versions", [])
                              if v["version"] == art.version), None)
                version = _artifact_version(mirror, art, known, run.id if kind == "logged" else
                                            (known or {}).get("run"), tmp)
                if kind == "used":
                    used.append(f"{art.entity}/{art.project}/{art.name}")
                touched.append((label, {"workspace": art.entity, "project": art.project,
                                        "name": collection, "artifact_type": art.type,
                                        "version": version, "used_by": run.id if kind == "used" else None}))
        if used:
            manifest["used_artifacts"] = sorted(used)
    return manifest, touched


def _console(run) -> str:
    """Console output for servers that keep it outside output.log (needs server >= 0.77)."""
    try:
        return "\n".join(line.content for line in run.console_logs())
    except Exception:
        return ""


def merge_artifact(artifacts: dict[str, dict], label: str, info: dict) -> None:
    m = artifacts.setdefault(label, {
        "type": "artifact", "normalizer": "wandb-artifact/1", "source": SOURCE,
        "workspace": info["workspace"], "project": info["project"], "name": info["name"], "versions": []})
    m = artifacts[label] = dict(m, versions=[dict(v) for v in m["versions"]])
    m["artifact_type"] = info["artifact_type"]
    v = info["version"]
    for other in m["versions"]:           # an alias names one version at a time
        if other["version"] != v["version"]:
            other["aliases"] = [a for a in other["aliases"] if a not in v["aliases"]]
    old = next((o for o in m["versions"] if o["version"] == v["version"]), None)
    if old is not None:
        used_by = sorted(set(old.get("used_by", [])) | ({info["used_by"]} if info["used_by"] else set()))
        old.update({k: val for k, val in v.items() if not (k == "run" and val is None)})
        if used_by:
            old["used_by"] = used_by
    else:
        if info["used_by"]:
            v = dict(v, used_by=[info["used_by"]])
        m["versions"].append(v)
    m["versions"].sort(key=lambda o: int(o["version"][1:]) if o["version"][1:].isdigit() else 1 << 30)


# -- scopes -------------------------------------------------------------------

def _parse_path(path: str) -> list[str]:
    parts = [p for p in path.strip().strip("/").split("/")]
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise SourceError(f"{path!r}: expected ENTITY, ENTITY/PROJECT or ENTITY/PROJECT/RUN_ID "
                          "(or an existing local wandb/ folder)")
    return parts


def fetch_online(mirror, path: str, options, commit, result) -> None:
    parts = _parse_path(path)
    count = RequestCount()
    try:
        with count.counting():
            _fetch_online(mirror, parts, options, commit, result)
    finally:
        result.requests += count.total
        result.requests_note = count.note()


def _fetch_online(mirror, parts: list[str], options, commit, result) -> None:
    api, origin = connect(options)
    entity = parts[0]
    if len(parts) == 1:
        try:
            projects = [p.name for p in api.projects(entity)]
        except Exception as e:
            raise SourceError(f"cannot list the projects of {entity!r}: {_one_line(e)}") from None
    else:
        projects = [parts[1]]
    for project in projects:
        fetch_project(mirror, api, origin, entity, project, parts[2] if len(parts) == 3 else None,
                      options, commit, result)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


# What says a run changed: heartbeat, state and history length move while it runs;
# config, summary, tags, notes ... can be edited after it finished.
WATERMARK_FIELDS = ("heartbeatAt", "state", "historyLineCount", "config", "summaryMetrics", "tags", "notes",
                    "description", "displayName", "group", "jobType", "sweepName")


def watermark(node: dict) -> str:
    import xxhash
    return xxhash.xxh3_128_hexdigest(canonical.dumps({k: node.get(k) for k in WATERMARK_FIELDS}))


def fetch_project(mirror, api, origin, entity, project, run_id, options, commit, result) -> None:
    ref = "/".join([SOURCE, ref_part(origin), ref_part(entity), ref_part(project)])
    snapshot_id = mirror.refs.get(ref)
    previous = dict(mirror.snapshot(snapshot_id).manifests) if snapshot_id else {}
    try:
        if run_id:
            runs = [api.run(f"{entity}/{project}/{run_id}")]
        else:
            runs = list(api.runs(f"{entity}/{project}", per_page=50, lazy=False, order="+created_at"))
    except Exception as e:
        raise SourceError(f"cannot list runs of {entity}/{project}: {_one_line(e)}") from None
    if options.list_only:
        result.listing.extend({"source": SOURCE, "path": f"{entity}/{project}/{r.id}",
                               "workspace": entity, "project": project, "key": r.id,
                               "name": r.name, "state": r.state} for r in runs)
        return
    artifacts = {label: mirror.get_json(mid) for label, mid in previous.items() if label.startswith("artifact/")}
    # A single-run fetch updates that run only; a project listing is the whole project.
    manifests = {k: v for k, v in previous.items() if run_id or k.startswith("artifact/")}
    todo = []
    for run in runs:
        label = exp_label(entity, project, run.id)
        node_entry = store_json(mirror, run._attrs)
        node_entry["watermark"] = watermark(run._attrs)
        prev_id = previous.get(label)
        prev = mirror.get_json(prev_id) if prev_id else None
        if prev and prev.get("run", {}).get("watermark") == node_entry["watermark"]:
            manifests[label] = prev_id                # unchanged since the last fetch
            result.unchanged += 1
            continue
        todo.append((run, label, prev_id, prev, node_entry))

    def one(item):
        run, label, prev_id, prev, node_entry = item
        return fetch_run(mirror, run, entity, project, prev, node_entry, artifacts)

    with ThreadPoolExecutor(max_workers=max(1, min(options.parallel or 1, 8))) as pool:
        futures = [(item, pool.submit(one, item)) for item in todo]
        for (run, label, prev_id, prev, _), future in futures:
            try:
                manifest, touched = future.result()
            except Exception as e:     # one failed run never aborts the others
                result.failed += 1
                result.errors.append(f"{entity}/{project}/{run.id}: {_one_line(e)}")
                if prev_id:
                    manifests[label] = prev_id
                continue
            for art_label, info in touched:
                merge_artifact(artifacts, art_label, info)
            manifests[label] = store_json(mirror, manifest)["object"]
            if callable(options.progress):
                options.progress("run", label=f"{entity}/{project}/{run.id}")
            if prev_id is None:
                result.new += 1
            else:
                result.changed += 1
    for label, m in artifacts.items():
        manifests[label] = store_json(mirror, m)["object"]
    stats = {"runs": len(runs), "fetched": len(todo)}
    commit(ref, origin, f"{entity}/{project}", dict(sorted(manifests.items())), stats)

"""A small W&B server emulator on 127.0.0.1 for the online fetch tests.

Answers the GraphQL operations `wandb.Api` (0.31) sends, by operation name,
with the response shapes the client accepts (see the W&B research notes,
Appendix A), plus plain GETs for run files, artifact manifests and artifact
files.  Runs are plain dicts (built from offline run folders by `run_from_folder`)
and can be changed between fetches.  Runs listings are paged `page_size` at a
time whatever the client asks, so pagination is exercised.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cometx_mirror.sources.wandb.records import fold


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def run_from_folder(folder: Path) -> dict:
    """An emulated server run from an offline run folder (files, history, artifacts)."""
    log_path = next(Path(folder).glob("run-*.wandb"))
    log = fold(log_path.read_bytes())
    files = {}
    base = Path(folder) / "files"
    for p in sorted(base.rglob("*")):
        if p.is_file():
            files[p.relative_to(base).as_posix()] = p.read_bytes()
    start = log.run["start_time"]
    artifacts = []
    for a in log.artifacts:
        artifacts.append({"name": a["name"], "type": a["type"], "digest": a["digest"],
                          "aliases": [x for x in a["aliases"] if x != "latest"], "metadata": a["metadata"],
                          "files": {e["path"]: Path(e["local_path"]).read_bytes() for e in a["files"]}})
    return {"id": log.run["id"], "entity": log.run["entity"], "project": log.run["project"],
            "name": log.run["name"], "tags": log.run["tags"], "group": log.run["group"] or None,
            "job_type": log.run["job_type"] or None, "notes": log.run["notes"] or None,
            "state": "finished" if log.exit else "running", "created": _iso(start),
            "heartbeat": _iso(log.last_time_ms or start), "config": log.config, "summary": log.summary,
            "history": log.history,
            "system": [{**{f"system.{k}": v for k, v in s.items() if not k.startswith("_")},
                        "_timestamp": s["_timestamp_ms"] / 1000} for s in log.system],
            "files": files, "artifacts": artifacts, "used": []}


class WandbServer:
    def __init__(self, api_key: str, page_size: int = 2):
        self.api_key = api_key
        self.page_size = page_size
        self.runs: list[dict] = []
        self.requests: list[str] = []     # operation names and GET paths, in order
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> "WandbServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- data --------------------------------------------------------------
    def _run(self, entity, project, name):
        for r in self.runs:
            if (r["entity"], r["project"], r["id"]) == (entity, project, name):
                return r
        return None

    def _versions(self):
        """(collection, digest) -> version index, in run order, one per digest."""
        out, counts = {}, {}
        for r in self.runs:
            for a in r["artifacts"]:
                key = (r["entity"], r["project"], a["name"])
                if (key, a["digest"]) not in out:
                    out[(key, a["digest"])] = counts.get(key, 0)
                    counts[key] = counts.get(key, 0) + 1
        return out, counts

    def _artifact_list(self):
        """Every artifact version: (id, run, artifact dict, version index, is latest)."""
        versions, counts = self._versions()
        out, seen = [], set()
        for r in self.runs:
            for a in r["artifacts"]:
                key = (r["entity"], r["project"], a["name"])
                idx = versions[(key, a["digest"])]
                if (key, idx) in seen:
                    continue
                seen.add((key, idx))
                aid = base64.b64encode(f"Artifact:{len(out)}".encode()).decode()
                out.append((aid, r, a, idx, idx == counts[key] - 1))
        return out

    def _run_node(self, r: dict, full: bool) -> dict:
        node = {"projectId": "1", "id": base64.b64encode(f"Run:v1:{r['id']}".encode()).decode(),
                "name": r["id"], "displayName": r["name"] or r["id"], "tags": r["tags"], "sweepName": None,
                "state": r["state"], "group": r["group"], "jobType": r["job_type"], "commit": None,
                "readOnly": False, "createdAt": r["created"], "heartbeatAt": r["heartbeat"],
                "description": r["notes"], "notes": r["notes"], "historyLineCount": len(r["history"]),
                "user": {"name": "u", "username": "u"}}
        if full:
            node.update(config=json.dumps({k: {"value": v, "desc": None} for k, v in r["config"].items()}),
                        summaryMetrics=json.dumps(r["summary"]), systemMetrics="{}",
                        historyKeys=self._history_keys(r))
        return node

    def _history_keys(self, r):
        return {"lastStep": max((h.get("_step", 0) for h in r["history"]), default=-1), "keys": {}}

    def _art_node(self, aid, r, a, idx, latest):
        proj = {"id": "UHJvamVjdDox", "internalId": "1", "name": r["project"], "entity": {"name": r["entity"]}}
        coll = {"__typename": "ArtifactSequence", "name": a["name"], "project": proj}
        aliases = list(a["aliases"]) + (["latest"] if latest else [])
        return {"__typename": "Artifact", "id": aid, "artifactSequence": coll, "versionIndex": idx,
                "artifactType": {"name": a["type"]}, "description": None,
                "metadata": json.dumps(a["metadata"] or {}), "ttlDurationSeconds": -1, "ttlIsInherited": True,
                "tags": [], "historyStep": None, "state": "COMMITTED",
                "size": sum(len(b) for b in a["files"].values()), "digest": a["digest"], "commitHash": "0",
                "fileCount": len(a["files"]), "createdAt": r["created"], "updatedAt": r["created"],
                "aliases": [{"__typename": "ArtifactAlias", "id": f"al-{aid}-{x}", "alias": x,
                             "artifactCollection": coll} for x in aliases]}

    # -- GraphQL -----------------------------------------------------------
    def resolve(self, op: str, q: str, v: dict, base: str):
        page = {"__typename": "PageInfo", "endCursor": None, "hasNextPage": False}
        if op in ("Viewer", "GetDefaultEntity"):
            return {"viewer": {"id": "VXNlcjox", "entity": "ent-y", "username": "u", "email": "u@example.com",
                               "flags": "{}", "teams": {"edges": []}}}
        if op == "ServerFeaturesQuery":
            # a current W&B server counts an artifact's files (cometx calls len() on artifact.files())
            return {"serverInfo": {"features": [{"name": "TOTAL_COUNT_IN_FILE_CONNECTION", "isEnabled": True}]}}
        if op == "GetProjects":
            names = sorted({r["project"] for r in self.runs if r["entity"] == v.get("entity")})
            return {"models": {"pageInfo": page, "edges": [{"node": {
                "__typename": "Project", "id": f"p{i}", "name": n, "entityName": v.get("entity"),
                "createdAt": "2026-01-01T00:00:00", "isBenchmark": False, "user": None}}
                for i, n in enumerate(names)]}}
        if op == "Runs":
            runs = [r for r in self.runs if (r["entity"], r["project"]) == (v["entity"], v["project"])]
            start = int(v["cursor"]) if v.get("cursor") else 0
            chunk = runs[start:start + min(self.page_size, v.get("perPage") or 50)]
            end = start + len(chunk)
            return {"project": {"internalId": "1", "runCount": len(runs), "readOnly": False, "runs": {
                "edges": [{"node": self._run_node(r, "RunFragment on" in q), "cursor": str(start + i + 1)}
                          for i, r in enumerate(chunk)],
                "pageInfo": {"endCursor": str(end), "hasNextPage": end < len(runs)}}}}
        run = self._run(v.get("entity"), v.get("project"), v.get("name") or v.get("run") or v.get("runName"))
        if op in ("Run", "RunHistoryKeys", "RunFullHistory", "RunParquetHistory", "HistoryPage", "RunFiles",
                  "RunOutputArtifacts", "RunInputArtifacts", "RunConsoleLogPage", "SampledHistoryPage",
                  "RunSampledHistory") and run is None:
            return {"project": {"internalId": "1", "run": None}}
        if op == "Run":
            return {"project": {"run": self._run_node(run, True)}}
        if op == "RunHistoryKeys":
            return {"project": {"run": {"historyKeys": self._history_keys(run)}}}
        if op == "RunFullHistory":
            node = "events" if "events(" in q else "history"
            rows = run["history"] if node == "history" else run["system"]
            return {"project": {"run": {node: [json.dumps(x) for x in rows[: v.get("samples") or 500]]}}}
        if op == "RunParquetHistory":
            return {"project": {"run": {"parquetHistory": {"parquetUrls": [], "liveData": []}}}}
        if op == "HistoryPage":
            rows = [h for h in run["history"] if v["minStep"] <= h.get("_step", 0) < v["maxStep"]]
            return {"project": {"run": {"history": [json.dumps(x) for x in rows[: v["pageSize"]]]}}}
        if op in ("SampledHistoryPage", "RunSampledHistory"):
            # one list per spec; as W&B documents for scan_history(keys=...), only rows holding
            # every requested key, and only those keys (maxStep exclusive)
            out = []
            for spec in v.get("specs") or [v["spec"]]:
                spec = json.loads(spec)
                keys, low, high = spec["keys"], spec.get("minStep", 0), spec.get("maxStep")
                rows = [{k: h[k] for k in keys} for h in run["history"] if all(k in h for k in keys)
                        and h.get("_step", 0) >= low and (high is None or h.get("_step", 0) < high)]
                out.append(rows[: spec.get("samples") or 500])
            return {"project": {"run": {"sampledHistory": out}}}
        if op == "RunFiles":
            names = sorted(run["files"])
            if v.get("fileNames"):
                names = [n for n in names if n in v["fileNames"]]
            start = int(v["fileCursor"]) if v.get("fileCursor") else 0
            chunk = names[start:start + min(self.page_size * 2, v.get("fileLimit") or 50)]
            end = start + len(chunk)
            edges = []
            for i, n in enumerate(chunk):
                data = run["files"][n]
                url = f"{base}/files/{run['entity']}/{run['project']}/{run['id']}/{n}"
                edges.append({"node": {"id": f"f-{n}", "name": n, "url": url, "directUrl": url,
                                       "sizeBytes": len(data), "mimetype": "application/octet-stream",
                                       "updatedAt": run["heartbeat"], "md5": _b64md5(data)},
                              "cursor": str(start + i + 1)})
            return {"project": {"internalId": "1", "run": {"fileCount": len(names), "files": {
                "edges": edges, "pageInfo": {"endCursor": str(end), "hasNextPage": end < len(names)}}}}}
        if op in ("RunOutputArtifacts", "RunInputArtifacts"):
            arts = self._artifact_list()
            if op == "RunOutputArtifacts":
                mine = [x for x in arts if x[1] is run]
            else:
                mine = [x for x in arts if (x[2]["name"], x[3]) in {tuple(u) for u in run["used"]}]
            return {"project": {"run": {"artifacts": {"totalCount": len(mine), "pageInfo": page,
                    "edges": [{"node": self._art_node(*x)} for x in mine]}}}}
        if op == "FetchArtifactManifest":
            return {"artifact": {"currentManifest": {"file": {"directUrl": f"{base}/manifest/{v['id']}"}}}}
        if op in ("GetArtifactMembershipFileUrls", "ArtifactMembershipFiles"):
            x = self._by_alias(v["entity"], v["project"], v["collection"], v["alias"])
            return {"project": {"artifactCollection": {"__typename": "ArtifactSequence", "artifactMembership": {
                "files": {"totalCount": len(x[2]["files"]), "pageInfo": page, "edges": [{"node": {
                    "__typename": "File", "id": f"af-{p}", "name": p,
                    "directUrl": f"{base}/artifact-file/{x[0]}/{p}", "url": f"{base}/artifact-file/{x[0]}/{p}",
                    "sizeBytes": len(b), "storagePath": p, "mimetype": None, "updatedAt": None,
                    "digest": _b64md5(b), "md5": _b64md5(b)}} for p, b in sorted(x[2]["files"].items())]}}}}}
        if op == "RunConsoleLogPage":
            return {"project": {"run": {"logLineCount": 0, "logLines": {"edges": [], "pageInfo": page}}}}
        return None

    def _by_alias(self, entity, project, collection, alias):
        for x in self._artifact_list():
            _, r, a, idx, latest = x
            if (r["entity"], r["project"], a["name"]) == (entity, project, collection) and (
                    alias == f"v{idx}" or alias in a["aliases"] or (alias == "latest" and latest)):
                return x
        raise KeyError(alias)

    def get(self, path: str):
        if m := re.match(r"/manifest/(.+)$", path):
            x = next(x for x in self._artifact_list() if x[0] == m[1])
            return json.dumps({"version": 1, "storagePolicy": "wandb-storage-policy-v1",
                               "storagePolicyConfig": {"storageLayout": "V2"},
                               "contents": {p: {"digest": _b64md5(b), "size": len(b)}
                                            for p, b in x[2]["files"].items()}}).encode()
        if m := re.match(r"/artifact-file/([^/]+)/(.+)$", path):
            x = next(x for x in self._artifact_list() if x[0] == m[1])
            return x[2]["files"].get(m[2])
        if m := re.match(r"/files/([^/]+)/([^/]+)/([^/]+)/(.+)$", path):
            run = self._run(m[1], m[2], m[3])
            return run["files"].get(m[4]) if run else None
        return None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code, body, ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self):
                expected = "Basic " + base64.b64encode(f"api:{server.api_key}".encode()).decode()
                return self.headers.get("Authorization") == expected

            def do_GET(self):
                path = self.path.split("?")[0]
                # manifest and artifact-file URLs stand for signed storage URLs: no auth header
                signed = path.startswith(("/manifest/", "/artifact-file/"))
                with server.lock:
                    server.requests.append(f"GET {path}")
                    body = server.get(path)
                if not signed and not self._authorized():
                    return self._send(401, b'{"error": "unauthorized"}')
                if body is None:
                    return self._send(404, b"{}")
                self._send(200, body, "application/octet-stream")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not self.path.startswith("/graphql"):
                    return self._send(200, b"{}")        # wandb-core telemetry
                if not self._authorized():
                    return self._send(401, b'{"errors": [{"message": "unauthorized"}]}')
                req = json.loads(body)
                q = req.get("query", "")
                m = re.search(r"\b(?:query|mutation)\s+(\w+)", q)
                op = req.get("operationName") or (m[1] if m else None)
                with server.lock:
                    server.requests.append(op)
                    data = server.resolve(op, q, req.get("variables") or {}, f"http://{self.headers['Host']}")
                out = {"data": data} if data is not None else {"data": None,
                                                              "errors": [{"message": f"unhandled {op}"}]}
                self._send(200, json.dumps(out).encode())

        return Handler

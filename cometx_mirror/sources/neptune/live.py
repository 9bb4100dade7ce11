"""`fetch --from neptune WORKSPACE[/PROJECT[/RUN]]`: a live (self-hosted 3.x) Neptune server.

Reads the endpoints neptune-query 1.14 calls, directly (the client would read
more than a copy needs: previews, aggregates, a pandas frame), and stores each
answer as the server sent it (protobuf bytes), so the fold below and `reindex`
decode the same objects:

- the runs listing (sys/id, sys/custom_run_id, sys/modification_time): one search;
- per changed run, every attribute and its series aggregates: one query;
- per series whose last step moved, only the points after the stored ones
  (float series by `afterStep`, others by `stepRange` + `searchAfter`), each
  run's own points (lineage NONE); a fork keeps sys/forking/parent and /step;
- files through signed URLs (re-signed once when a URL has expired), by
  storage path, so a file already stored is never downloaded again.

A run whose modification time is unchanged costs no request past the listing.
The token (NEPTUNE_API_TOKEN or --api-key) names the server; --url overrides
it. It is never stored or logged.
"""
from __future__ import annotations

import base64
import importlib
import json
import os
from urllib.parse import urlparse

from ...net.errors import HttpError
from .. import SourceError, normalizer
from ..options import FetchResult
from . import mapping
from .driver import RunSource, fetch_runs, fold_of

NORMALIZER = "neptune-live/1"


class _ProtoModule:
    """A module of neptune_query's generated protobufs, imported on first use: importing neptune_query
    takes seconds, which an offline fetch (or a reindex of offline runs) should never pay."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        module = importlib.import_module(f"neptune_query.generated.neptune_api.proto.neptune_pb.api.v1.model."
                                         f"{self._name}")
        value = getattr(module, attr)
        setattr(self, attr, value)       # later look-ups find it without __getattr__
        return value


attributes_pb2 = _ProtoModule("attributes_pb2")
leaderboard_entries_pb2 = _ProtoModule("leaderboard_entries_pb2")
series_values_pb2 = _ProtoModule("series_values_pb2")
FLOAT_PAGE = 100_000        # points per float-series request
SERIES_PAGE = 10_000        # points per string/histogram/file-series request
LIST_PAGE = 500

_KINDS = {"float": "float", "int": "int", "bool": "bool", "string": "string", "datetime": "datetime",
          "stringSet": "string_set", "floatSeries": "float_series", "stringSeries": "string_series",
          "histogramSeries": "histogram_series", "fileRef": "file", "fileRefSeries": "file_series"}
_SERIES_PROPS = {"float_series": "float_series_properties", "string_series": "string_series_properties",
                 "histogram_series": "histogram_series_properties", "file_series": "file_ref_series_properties"}
_ATOMIC_PROPS = {"float": "float_properties", "int": "int_properties", "bool": "bool_properties",
                 "string": "string_properties", "datetime": "datetime_properties"}


# -- the connection --------------------------------------------------------------------------------
def server_of(token: str | None, url: str | None) -> str:
    if not token:
        raise SourceError("neptune: reading a server needs NEPTUNE_API_TOKEN (or --api-key)")
    if url:
        return url.rstrip("/")
    try:
        info = json.loads(base64.b64decode(token + "=" * (-len(token) % 4)))
        address = info.get("api_url") or info["api_address"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SourceError("neptune: NEPTUNE_API_TOKEN is not a Neptune API token") from None
    return (address if "://" in address else f"https://{address}").rstrip("/")


def host_of(url: str) -> str:
    u = urlparse(url)
    return f"{u.hostname}:{u.port}" if u.port else (u.hostname or url)


class Connection:
    """An HTTP session holding the exchanged access token."""

    def __init__(self, token: str | None, url: str | None, max_rps: float | None = None) -> None:
        from ...net.http import HttpClient     # here: an offline fetch imports this module, never requests
        self.base = server_of(token, url)
        self.host = host_of(self.base)
        self.http = HttpClient(self.base, retries=4, max_rps=max_rps, redact=(token,))
        try:
            answer = self.http.get_json("/api/backend/v1/authorization/oauth-token",
                                        headers={"X-Neptune-Api-Token": token})
        except HttpError as e:
            if e.status in (401, 403):
                raise SourceError(f"neptune: {self.host} rejected the API token") from None
            if e.status is None:
                raise SourceError(f"neptune: no Neptune server reachable at {self.base}") from None
            raise SourceError(f"neptune: {self.host} answered the token exchange with HTTP {e.status}") from None
        access = answer.get("accessToken") if isinstance(answer, dict) else None
        if not access:
            raise SourceError(f"neptune: {self.host} gave no access token")
        self.http.session.headers["Authorization"] = f"Bearer {access}"
        self.http._redact += (access,)

    def post_bytes(self, path: str, body: dict, params: dict | None = None) -> bytes:
        return self.http.call("POST", path, consume=lambda r: r.content, json=body, params=params)

    def projects(self, workspace: str) -> list[str]:
        out, offset = [], 0
        while True:
            page = self.http.get_json("/api/backend/v1/projects",
                                      params={"organizationIdentifier": workspace, "offset": offset,
                                              "limit": LIST_PAGE})
            entries = page.get("entries") or []
            out += [f"{e.get('organizationName') or workspace}/{e['name']}" for e in entries]
            offset += len(entries)
            if not entries or offset >= int(page.get("matchingItemCount") or 0):
                return out

    def runs(self, project: str) -> list[dict]:
        """[{sys_id, custom_run_id, modification_time}] of every run of `project`."""
        out, offset = [], 0
        while True:
            body = {"attributeFilters": [{"path": p} for p in
                                         ("sys/id", "sys/custom_run_id", "sys/modification_time")],
                    "pagination": {"limit": LIST_PAGE, "offset": offset}, "experimentLeader": False,
                    "sorting": {"dir": "ascending", "sortBy": {"name": "sys/id", "type": "string"}}}
            try:
                raw = self.post_bytes("/api/leaderboard/v1/proto/leaderboard/entries/search/", body,
                                      params={"projectIdentifier": project, "type": "run"})
            except HttpError as e:
                if e.status == 404:
                    raise SourceError(f"neptune: project {project} not found on {self.host}") from None
                raise
            page = leaderboard_entries_pb2.ProtoLeaderboardEntriesSearchResultDTO.FromString(raw)
            for entry in page.entries:
                attrs = {a.name: a for a in entry.attributes}
                sys_id = attrs["sys/id"].string_properties.value
                custom = attrs.get("sys/custom_run_id")
                mod = attrs.get("sys/modification_time")
                out.append({"sys_id": sys_id, "custom_run_id": custom.string_properties.value if custom else "",
                            "modification_time": mod.datetime_properties.value if mod else None})
            offset += len(page.entries)
            if len(page.entries) < LIST_PAGE:
                return out

    def attributes(self, project: str, sys_id: str) -> bytes:
        pages, token = [], None
        while True:
            body = {"experimentIdsFilter": [f"{project}/{sys_id}"], "nextPage": {"limit": 10_000}}
            if token:
                body["nextPage"]["nextPageToken"] = token
            raw = self.post_bytes("/api/leaderboard/v1/proto/leaderboard/attributes/query", body,
                                  params={"projectIdentifier": project})
            pages.append(raw)
            token = attributes_pb2.ProtoQueryAttributesResultDTO.FromString(raw).nextPage.nextPageToken
            if not token:
                return pages

    def float_pages(self, holder: str, path: str, after: float | None):
        """Every point after step `after`, ascending, one answer per page."""
        while True:
            request = {"requestId": "0", "series": {"holder": {"identifier": holder, "type": "experiment"},
                                                    "attribute": path, "lineage": "NONE",
                                                    "includePreview": False}}
            if after is not None:
                request["afterStep"] = after
            raw = self.post_bytes("/api/leaderboard/v1/proto/attributes/series/float",
                                  {"requests": [request], "order": "ascending",
                                   "perSeriesPointsLimit": FLOAT_PAGE})
            values = [s.series.values for s in
                      series_values_pb2.ProtoFloatSeriesValuesResponseDTO.FromString(raw).series]
            n = len(values[0]) if values else 0
            if n:
                yield raw
                after = values[0][-1].step
            if n < FLOAT_PAGE:
                return

    def series_pages(self, holder: str, path: str, after: float | None):
        """String / histogram / file series points from step `after` on (inclusive), ascending."""
        token = None
        while True:
            request = {"requestId": "0", "series": {"holder": {"identifier": holder, "type": "experiment"},
                                                    "attribute": path, "lineage": "NONE"}}
            if token:
                request["searchAfter"] = {"finished": False, "token": token}
            body = {"requests": [request], "order": "ascending", "perSeriesPointsLimit": SERIES_PAGE}
            if after is not None:
                body["stepRange"] = {"from": after}
            raw = self.post_bytes("/api/leaderboard/v1/proto/attributes/series", body,
                                  params={"useDeprecatedStringFields": "false"})
            series = series_values_pb2.ProtoSeriesValuesResponseDTO.FromString(raw).series
            if not series:
                return
            if series[0].seriesValues.values:
                yield raw
            if not series[0].HasField("searchAfter") or series[0].searchAfter.finished:
                return
            token = series[0].searchAfter.token

    def signed_urls(self, project: str, paths: list[str]) -> dict[str, str]:
        out = {}
        for i in range(0, len(paths), 100):
            body = {"files": [{"project_identifier": project, "path": p, "permission": "read"}
                              for p in paths[i:i + 100]]}
            answer = self.http.post_json("/api/storagebridge/v1/signedUrl", body)
            out.update({f["path"]: f["url"] for f in answer.get("files") or []})
        return out

    def download(self, mirror, project: str, path: str, url: str, size: int | None) -> str:
        """Store one file; an expired URL (400) is signed again once."""
        for attempt in (0, 1):
            try:
                return self.http.stream(url, lambda chunks: mirror.objects.put_stream(chunks, size))[0]
            except HttpError as e:
                if e.status != 400 or attempt:
                    raise
                url = self.signed_urls(project, [path])[path]


# -- decoding stored answers ---------------------------------------------------------------------
def _attributes(mirror, page_ids: list[str]):
    for oid in page_ids:
        page = attributes_pb2.ProtoQueryAttributesResultDTO.FromString(mirror.objects.get_bytes(oid))
        for entry in page.entries:
            yield from entry.attributes


def _last_step(attr, kind: str):
    props = getattr(attr, _SERIES_PROPS[kind])
    return props.last_step if props.HasField("last_step") else None


def _step(step: float):
    return int(step) if float(step).is_integer() else step


# -- one run ----------------------------------------------------------------------------------------
def _storer(conn: Connection, project: str, listed: dict):
    holder = f"{project}/{listed['sys_id']}"

    def store(mirror, old: dict | None) -> dict:
        old = old or {}
        if old.get("modification_time") == listed["modification_time"] is not None \
                and all(mirror.objects.exists(o) for o in _object_ids(old)):
            return {k: v for k, v in old.items() if k not in ("raw_digest", "artifacts")}
        attr_pages = [mirror.objects.put_bytes(raw) for raw in conn.attributes(project, listed["sys_id"])]
        series, wanted_files, errors = {}, {}, []
        for attr in _attributes(mirror, attr_pages):
            kind = _KINDS.get(attr.type)
            if kind == "file":
                wanted_files[attr.file_ref_properties.path] = attr.file_ref_properties.sizeBytes
            if kind not in _SERIES_PROPS:
                continue
            last = _last_step(attr, kind)
            prev = (old.get("series") or {}).get(attr.name)
            if prev and prev.get("type") == kind and prev.get("last_step") is not None \
                    and last is not None and prev["last_step"] <= last:
                entry = dict(prev, pages=list(prev["pages"]))
                after = prev["last_step"]
            else:
                entry, after = {"type": kind, "pages": []}, None
            if last is not None and last != after:
                pages = conn.float_pages(holder, attr.name, after) if kind == "float_series" \
                    else conn.series_pages(holder, attr.name, after)
                entry["pages"] += [mirror.objects.put_bytes(raw) for raw in pages]
            entry["last_step"] = last
            series[attr.name] = entry
            if kind == "file_series":
                for oid in entry["pages"]:
                    for _, _, value in _series_points(mirror, oid):
                        wanted_files[value.fileRef.path] = value.fileRef.sizeBytes
        files = _store_files(conn, mirror, project, wanted_files, old.get("files") or {}, errors)
        return {"type": "experiment", "normalizer": NORMALIZER, "source": mapping.SOURCE,
                "origin": f"live@{conn.host}", "workspace": project.split("/")[0],
                "project": project.split("/", 1)[1], "key": listed["custom_run_id"] or listed["sys_id"],
                "sys_id": listed["sys_id"], "modification_time": listed["modification_time"],
                "attributes": attr_pages, "series": series, "files": files, "errors": errors}
    return store


def _object_ids(manifest: dict) -> list[str]:
    ids = list(manifest.get("attributes") or [])
    ids += [p for s in (manifest.get("series") or {}).values() for p in s["pages"]]
    return ids + [f["object_id"] for f in (manifest.get("files") or {}).values() if f.get("object_id")]


def _store_files(conn, mirror, project: str, wanted: dict, old: dict, errors: list) -> dict:
    files = {p: old[p] for p in wanted if p in old and old[p].get("size") == wanted[p]
             and mirror.objects.exists(old[p]["object_id"])}
    todo = sorted(p for p in wanted if p not in files)
    if not todo:
        return files
    try:
        urls = conn.signed_urls(project, todo)
    except HttpError as e:
        errors.append(f"files not signed: {e}")
        return files
    for path in todo:
        if path not in urls:
            errors.append(f"missing file {path}")
            continue
        try:
            files[path] = {"object_id": conn.download(mirror, project, path, urls[path], wanted[path]),
                           "size": wanted[path]}
        except Exception as e:    # one lost file is named; the run is kept
            errors.append(f"file {path}: {e}")
    return files


def _series_points(mirror, oid: str):
    """(step, ts, value object) of one stored string/histogram/file series page."""
    page = series_values_pb2.ProtoSeriesValuesResponseDTO.FromString(mirror.objects.get_bytes(oid))
    for s in page.series:
        for v in s.seriesValues.values:
            yield v.step, v.timestamp_millis, v.object


def fold(mirror, manifest: dict) -> mapping.RunData:
    run = mapping.RunData(workspace=manifest["workspace"], project=manifest["project"], key=manifest["key"])
    files = manifest.get("files") or {}
    for attr in _attributes(mirror, manifest["attributes"]):
        kind = _KINDS.get(attr.type)
        if kind in _ATOMIC_PROPS:
            run.attrs[attr.name] = (kind, getattr(attr, _ATOMIC_PROPS[kind]).value)
        elif kind == "string_set":
            run.attrs[attr.name] = (kind, sorted(attr.string_set_properties.value))
        elif kind == "file":
            ref = attr.file_ref_properties
            name = ref.path.rsplit("/", 1)[-1]
            stored = files.get(ref.path)
            run.add_file(attr.name, kind, mapping.FileRef(
                "", stored and stored["object_id"], stored["size"] if stored else ref.sizeBytes,
                ext=name.rsplit(".", 1)[-1] if "." in name else None,
                missing=None if stored else ref.path))
        elif kind is None:
            run.extra.setdefault("unmapped", []).append({"path": attr.name, "type": attr.type})
    floats = []
    for path, entry in sorted((manifest.get("series") or {}).items()):
        if entry["type"] == "float_series":
            floats.append((path, entry["pages"]))
        else:
            _fold_series(mirror, run, path, entry, files)
    if floats:
        # the bulk of a run: streamed to the index from the stored pages, never held here
        run.float_points = lambda: _float_points(mirror, floats)
        mod = run.attrs.get("sys/modification_time", (None, None))[1]
        if not isinstance(mod, int):      # updated_at falls back to the latest point: scan, keep nothing
            for _, pages in floats:
                for _, stamps, _ in _float_columns(mirror, pages):
                    run.seen(max(stamps))
    return run


def _float_columns(mirror, pages: list[str]):
    """(steps, timestamps, values) of one float series, a stored page at a time.

    A page asked from a step on repeats that step (a grown run's first new page
    starts at the stored last step), so a point at or below the last kept step is
    dropped, as the eager fold dropped it; pages are ascending, so that is checked
    only where a page does not plainly continue the last one.
    """
    last = None
    for oid in pages:
        page = series_values_pb2.ProtoFloatSeriesValuesResponseDTO.FromString(mirror.objects.get_bytes(oid))
        points = [p for s in page.series for p in s.series.values]
        steps = [p.step for p in points]
        if not steps:
            continue
        if not ((last is None or steps[0] > last) and all(a < b for a, b in zip(steps, steps[1:]))):
            keep = []
            for i, step in enumerate(steps):
                if last is None or not step <= last:
                    keep.append(i)
                    last = step
            points = [points[i] for i in keep]
            steps = [steps[i] for i in keep]
            if not steps:
                continue
        last = steps[-1]
        yield steps, [p.timestamp_millis for p in points], [p.value for p in points]


def _float_points(mirror, floats: list[tuple[str, list[str]]]):
    """Every float series' points in model.Metrics batches, converted as the eager mapping did."""
    out = mapping.FloatBatches()
    for path, pages in floats:
        for steps, stamps, values in _float_columns(mirror, pages):
            if out.extend([path] * len(steps), steps, stamps, values):
                while out.full():
                    yield out.take()
    yield from out.rest()


def _fold_series(mirror, run: mapping.RunData, path: str, entry: dict, files: dict) -> None:
    """A string, histogram or file series (float series stream: _float_points)."""
    kind, last = entry["type"], None
    for oid in entry["pages"]:
        for step, ts, value in _series_points(mirror, oid):
            if last is not None and step <= last:   # a page asked from a step on repeats that step
                continue
            last = step
            run.seen(ts)
            if kind == "string_series":
                run.add_point(path, kind, _step(step), ts, value.stringValue)
            elif kind == "histogram_series":
                h = value.histogram
                run.add_point(path, kind, _step(step), ts,
                              {"type": h.type, "edges": list(h.edges), "values": list(h.values)})
            else:
                ref = value.fileRef
                stored = files.get(ref.path)
                run.add_file(path, kind, mapping.FileRef(
                    ref.path.rsplit("/", 1)[-1], stored and stored["object_id"],
                    stored["size"] if stored else ref.sizeBytes, step=_step(step), timestamp=ts,
                    missing=None if stored else ref.path))


@normalizer(NORMALIZER)
def normalize_live(mirror, manifest: dict):
    return mapping.to_experiment(fold_of(mirror, manifest, fold))[0]


# -- the command ------------------------------------------------------------------------------------
def fetch(mirror, target: str, options, commit) -> FetchResult:
    token = options.api_key or os.environ.get("NEPTUNE_API_TOKEN")
    parts = target.strip("/").split("/")
    if len(parts) > 3 or not all(parts):
        raise SourceError(f"neptune: {target} is neither a folder nor WORKSPACE[/PROJECT[/RUN]]")
    conn = Connection(token, options.url, getattr(options, "max_rps", None))
    result = FetchResult()
    try:
        projects = [f"{parts[0]}/{parts[1]}"] if len(parts) > 1 else conn.projects(parts[0])
        if not projects:
            raise SourceError(f"neptune: workspace {parts[0]} has no projects on {conn.host}")
        for project in projects:
            listed = conn.runs(project)
            if len(parts) == 3:
                listed = [r for r in listed if parts[2] in (r["custom_run_id"], r["sys_id"])]
                if not listed:
                    raise SourceError(f"neptune: run {parts[2]} not found in {project} on {conn.host}")
            ws, proj = project.split("/", 1)
            if options.list_only:
                result.listing += [{"path": f"{project}/{r['custom_run_id'] or r['sys_id']}",
                                    "origin": f"live@{conn.host}", "workspace": ws, "project": proj,
                                    "key": r["custom_run_id"] or r["sys_id"]} for r in listed]
                continue
            runs = [RunSource(ws, proj, r["custom_run_id"] or r["sys_id"], _storer(conn, project, r), fold)
                    for r in listed]
            fetch_runs(mirror, f"live@{conn.host}", runs, options, commit, result)
    except HttpError as e:
        raise SourceError(f"neptune: {e}") from None
    finally:
        result.requests += conn.http.sent
    return result

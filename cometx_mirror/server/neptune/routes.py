"""The Neptune vendor: the read endpoints neptune-query 1.14 calls, over NeptuneData.

Auth is Neptune's: the API token is exchanged for a JWT access token (claims exp,
azp, iss; the client never checks the signature), which every other call sends
as a Bearer header. Files go out through signed URLs on this same server
(`/_storage/...`, provider "aws", so the client fetches them with a plain GET);
a URL past its expiry answers 400, which the client reads as "sign again".
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any, Optional
from urllib.parse import parse_qsl, quote, unquote

from ..routing import Response
from . import protobuf
from .data import SERIES_TYPES, NeptuneData, Run
from .nql import NqlError, compile_query

PROTOBUF = "application/x-protobuf"
REALM = "/auth/realms/neptune"


class NeptuneError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class NeptuneVendor:
    """Routes + auth; `api_tokens` maps each accepted API token to its user name."""

    def __init__(self, api_tokens: dict[str, str], token_lifetime_s: int = 30 * 24 * 3600) -> None:
        self.api_tokens = dict(api_tokens)
        self.token_lifetime_s = token_lifetime_s
        self._access: dict[str, str] = {}      # access token -> user
        self._refresh: dict[str, str] = {}     # refresh token -> user
        self._secret = secrets.token_bytes(16)

    # -- dispatch ----------------------------------------------------------------------
    def handle(self, server, method: str, path: str, query: dict, headers, raw: bytes,
               base_url: str) -> Response:
        data: NeptuneData = server.state
        try:
            if method == "GET" and path == "/api/backend/v1/authorization/oauth-token":
                return self._exchange(headers.get("X-Neptune-Api-Token"), base_url)
            if method == "POST" and path == f"{REALM}/protocol/openid-connect/token":
                return self._refresh_token(raw, base_url)
            if method == "GET" and path.startswith("/_storage/"):
                return self._storage(data, path, query)
            fn = ROUTES.get((method, path.rstrip("/")))
            if fn is None:
                raise NeptuneError(404, f"no such endpoint: {method} {path}")
            user = self._user(headers.get("Authorization"))
            retry_after = server.limits.admit(user, "read")
            if retry_after is not None:
                return Response(status=429, body={"message": "rate limit exceeded"},
                                headers={"Retry-After": str(retry_after)})
            body = json.loads(raw) if raw else {}
            with data.lock:
                return fn(self, data, query, body, base_url)
        except NeptuneError as e:
            return Response(status=e.status, body={"code": e.status, "message": e.message})
        except (NqlError, ValueError, KeyError, TypeError) as e:
            return Response(status=400, body={"code": 400, "message": f"bad request: {e}"})
        except Exception as e:   # a handler bug answers 500, never kills the connection
            return Response(status=500, body={"code": 500, "message": f"internal error: {type(e).__name__}: {e}"})

    # -- auth ----------------------------------------------------------------------------
    def _jwt(self, user: str, base_url: str) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {"exp": int(time.time()) + self.token_lifetime_s, "azp": "neptune-cli",
                  "iss": base_url + REALM, "sub": user, "jti": secrets.token_hex(8)}
        payload = _b64(json.dumps(claims).encode())
        sig = _b64(hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{sig}"

    def _issue(self, user: str, base_url: str) -> tuple[str, str]:
        access, refresh = self._jwt(user, base_url), secrets.token_urlsafe(24)
        self._access[access], self._refresh[refresh] = user, user
        return access, refresh

    def _exchange(self, api_token: Optional[str], base_url: str) -> Response:
        user = self.api_tokens.get(api_token or "")
        if user is None:
            raise NeptuneError(401, "API token rejected")
        access, refresh = self._issue(user, base_url)
        return Response(body={"accessToken": access, "refreshToken": refresh, "username": user})

    def _refresh_token(self, raw: bytes, base_url: str) -> Response:
        form = dict(parse_qsl(raw.decode("utf-8", "replace")))
        user = self._refresh.get(form.get("refresh_token", ""))
        if user is None:
            raise NeptuneError(401, "refresh token rejected")
        access, refresh = self._issue(user, base_url)
        return Response(body={"access_token": access, "refresh_token": refresh,
                              "expires_in": self.token_lifetime_s, "token_type": "bearer"})

    def _user(self, authorization: Optional[str]) -> str:
        token = (authorization or "").removeprefix("Bearer ").strip()
        user = self._access.get(token)
        if user is None:
            raise NeptuneError(401, "missing or invalid access token")
        return user

    # -- signed URLs -----------------------------------------------------------------------
    def _sign(self, storage_path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{storage_path}\n{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def signed_url(self, data: NeptuneData, base_url: str, storage_path: str) -> str:
        expires = int(time.time() + data.settings.signed_url_ttl_s)
        return f"{base_url}/_storage/{quote(storage_path)}?expires={expires}&sig={self._sign(storage_path, expires)}"

    def _storage(self, data: NeptuneData, path: str, query: dict) -> Response:
        storage_path = unquote(path[len("/_storage/"):])
        expires = int(query.get("expires") or 0)
        if not hmac.compare_digest(self._sign(storage_path, expires), query.get("sig", "")):
            raise NeptuneError(403, "bad signature")
        if time.time() > expires:
            raise NeptuneError(400, "signed URL expired")
        blob = data.blobs.get(storage_path)
        if blob is None:
            raise NeptuneError(404, "no such file")
        return Response(body=blob, content_type="application/octet-stream")


# -- lookups ---------------------------------------------------------------------------------
def _project(data: NeptuneData, identifier: Optional[str]):
    proj = data.projects.get(identifier or "")
    if proj is None:
        raise NeptuneError(404, f"project {identifier} not found")
    return proj


def _run(data: NeptuneData, identifier: str) -> Optional[Run]:
    """A run by WS/PROJ/SYSID or CUSTOM/WS/PROJ/custom-id."""
    custom = identifier.startswith("CUSTOM/")
    parts = identifier.split("/", 3 if custom else 2)
    if custom:
        parts = parts[1:]
    if len(parts) != 3:
        return None
    proj = data.projects.get(f"{parts[0]}/{parts[1]}")
    if proj is None:
        return None
    return proj.by_custom_id(parts[2]) if custom else proj.runs.get(parts[2])


def _all_attributes(run: Run) -> dict[str, tuple[str, Any]]:
    out = dict(run.attrs)
    out.update({p: ("file", f) for p, f in run.files.items()})
    out.update({p: (s["type"], s["points"]) for p, s in run.series.items()})
    return out


def _lineage_points(run: Run, path: str, full: bool) -> list:
    own = run.series.get(path, {}).get("points", [])
    if not full or run.parent is None:
        return list(own)
    fork_step = run.attrs["sys/forking/step"][1]
    inherited = [p for p in _lineage_points(run.parent, path, True) if p[0] <= fork_step]
    return inherited + list(own)


def _lookup(run: Run):
    attrs = _all_attributes(run)

    def lookup(name: str, aggregation: Optional[str]):
        kind, value = attrs.get(name, (None, None))
        if kind is None:
            return None
        if kind in SERIES_TYPES:
            if not value:
                return None
            values = [v for _, _, v in value]
            agg = aggregation or "last"
            if kind == "float_series" and agg in ("min", "max", "average", "variance"):
                mean = sum(values) / len(values)
                return {"min": min(values), "max": max(values), "average": mean,
                        "variance": sum((v - mean) ** 2 for v in values) / len(values)}[agg]
            return values[-1]
        return value
    return lookup


def _name_filter(body: dict):
    """attributeNameFilter.mustMatchAny (regex alternatives) + attributeFilter (types)."""
    alternatives = (body.get("attributeNameFilter") or {}).get("mustMatchAny")
    types = {protobuf.PYTHON_TYPE.get(t.get("attributeType"), t.get("attributeType"))
             for t in body.get("attributeFilter") or []}
    names = body.get("attributeNamesFilter")

    def ok(name: str, kind: str) -> bool:
        if types and kind not in types:
            return False
        if names is not None and name not in names:
            return False
        if alternatives:
            return any(all(re.search(r, name) for r in alt.get("mustMatchRegexes") or [])
                       and not any(re.search(r, name) for r in alt.get("mustNotMatchRegexes") or [])
                       for alt in alternatives)
        return True
    return ok


def _page(body: dict, default_limit: int) -> tuple[int, int]:
    page = body.get("nextPage") or {}
    return int(page.get("nextPageToken") or 0), int(page.get("limit") or default_limit)


# -- endpoints ---------------------------------------------------------------------------------
def list_projects(vendor, data: NeptuneData, query: dict, body: dict, base_url: str):
    workspace = query.get("organizationIdentifier") or query.get("workspace")
    projects = sorted((p for p in data.projects.values() if not workspace or p.workspace == workspace),
                      key=lambda p: p.identifier)
    offset, limit = int(query.get("offset") or 0), int(query.get("limit") or 100)
    entries = [{"id": p.identifier, "name": p.name, "organizationName": p.workspace, "projectKey": p.key,
                "organizationType": "team"} for p in projects[offset:offset + limit]]
    return Response(body={"entries": entries, "matchingItemCount": len(projects)})


def get_project(vendor, data, query, body, base_url):
    p = _project(data, query.get("projectIdentifier"))
    return Response(body={"id": p.identifier, "name": p.name, "organizationName": p.workspace,
                          "projectKey": p.key})


def search_entries(vendor, data, query, body, base_url):
    proj = _project(data, query.get("projectIdentifier"))
    wanted = compile_query((body.get("query") or {}).get("query"))
    runs = [r for r in proj.runs.values() if wanted(_lookup(r))]
    if body.get("experimentLeader"):
        runs = [r for r in runs if r.attrs.get("sys/experiment/is_head", (None, False))[1]]
    sorting = body.get("sorting") or {}
    key_name = (sorting.get("sortBy") or {}).get("name") or "sys/creation_time"
    runs.sort(key=lambda r: (_sort_key(_lookup(r)(key_name, sorting.get("aggregationMode"))), r.sys_id),
              reverse=sorting.get("dir") == "descending")
    pagination = body.get("pagination") or {}
    offset, limit = int(pagination.get("offset") or 0), int(pagination.get("limit") or 50)
    projection = [f["path"] for f in body.get("attributeFilters") or []]
    rows = []
    for run in runs[offset:offset + limit]:
        attrs = _all_attributes(run)
        rows.append((run, [protobuf.attribute(p, *attrs[p]) for p in projection if p in attrs]))
    return Response(body=protobuf.entries_result(rows, len(runs)), content_type=PROTOBUF)


def _sort_key(value):
    if value is None:
        return (0, "")
    return (1, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (2, str(value))


def _runs_of(data: NeptuneData, ids: Optional[list], projects: list[str]) -> list[Run]:
    if ids is not None:
        return [r for r in (_run(data, i) for i in ids) if r is not None]
    return [r for p in projects for r in _project(data, p).runs.values()]


def attribute_definitions(vendor, data, query, body, base_url):
    projects = body.get("projectIdentifiers") or []
    for p in projects:
        _project(data, p)
    ok = _name_filter(body)
    seen: dict[tuple[str, str], None] = {}
    for run in _runs_of(data, body.get("experimentIdsFilter"), projects):
        for name, (kind, _) in sorted(_all_attributes(run).items()):
            if ok(name, kind):
                seen[(name, kind)] = None
    start, limit = _page(body, 10_000)
    items = sorted(seen)[start:start + limit]
    token = str(start + limit) if start + limit < len(seen) else None
    return Response(body={"entries": [{"name": n, "type": protobuf.BACKEND_TYPE[k]} for n, k in items],
                          "nextPage": {"nextPageToken": token, "limit": limit}})


def query_attributes(vendor, data, query, body, base_url):
    project = query.get("projectIdentifier")
    _project(data, project)
    ok = _name_filter(body)
    pairs = []
    for run in _runs_of(data, body.get("experimentIdsFilter"), [project]):
        for name, (kind, value) in sorted(_all_attributes(run).items()):
            if ok(name, kind):
                pairs.append((run, name, kind, value))
    start, limit = _page(body, 10_000)
    chosen = pairs[start:start + limit]
    rows: list[tuple[Run, list]] = []
    for run, name, kind, value in chosen:
        if not rows or rows[-1][0] is not run:
            rows.append((run, []))
        rows[-1][1].append(protobuf.attribute(name, kind, value))
    token = str(start + limit) if start + limit < len(pairs) else None
    return Response(body=protobuf.query_attributes_result(rows, token), content_type=PROTOBUF)


def _in_range(points: list, step_range: dict) -> list:
    lo, hi = step_range.get("from"), step_range.get("to")
    return [p for p in points if (lo is None or p[0] >= lo) and (hi is None or p[0] <= hi)]


def float_series(vendor, data, query, body, base_url):
    descending = body.get("order") == "descending"
    limit = int(body.get("perSeriesPointsLimit") or 10_000)
    answers = []
    for req in body.get("requests") or []:
        series = req["series"]
        run = _run(data, series["holder"]["identifier"])
        if run is None or run.series.get(series["attribute"], {}).get("type") != "float_series":
            answers.append((req["requestId"], 0, []))
            continue
        points = _in_range(_lineage_points(run, series["attribute"], series.get("lineage") == "FULL"),
                           body.get("stepRange") or {})
        total = len(points)
        if descending:
            points = points[::-1]
        after = req.get("afterStep")
        if after is not None:
            points = [p for p in points if (p[0] < after if descending else p[0] > after)]
        answers.append((req["requestId"], total, points[:limit]))
    return Response(body=protobuf.float_series_result(answers), content_type=PROTOBUF)


def series_values(vendor, data, query, body, base_url):
    descending = body.get("order") == "descending"
    limit = int(body.get("perSeriesPointsLimit") or 1000)
    answers = []
    for req in body.get("requests") or []:
        series = req["series"]
        run = _run(data, series["holder"]["identifier"])
        s = run.series.get(series["attribute"]) if run else None
        if s is None or s["type"] == "float_series":
            continue     # a series that does not exist is left out of the answer
        points = _in_range(_lineage_points(run, series["attribute"], series.get("lineage") == "FULL"),
                           body.get("stepRange") or {})
        if descending:
            points = points[::-1]
        start = int(((req.get("searchAfter") or {}).get("token")) or 0)
        page = points[start:start + limit]
        end = start + len(page)
        answers.append((req["requestId"], s["type"], page, str(end), end >= len(points)))
    return Response(body=protobuf.series_result(answers), content_type=PROTOBUF)


def signed_urls(vendor, data, query, body, base_url):
    out = []
    for f in body.get("files") or []:
        if f.get("permission", "read") != "read":
            raise NeptuneError(403, "this server is read-only")
        if f["path"] not in data.blobs:
            raise NeptuneError(404, f"no such file: {f['path']}")
        out.append({"url": vendor.signed_url(data, base_url, f["path"]), "path": f["path"],
                    "project_identifier": f.get("project_identifier"), "provider": "aws"})
    return Response(body={"files": out})


ROUTES = {
    ("GET", "/api/backend/v1/projects"): list_projects,
    ("GET", "/api/backend/v1/projects/get"): get_project,
    ("POST", "/api/leaderboard/v1/proto/leaderboard/entries/search"): search_entries,
    ("POST", "/api/leaderboard/v1/leaderboard/attributes/definitions/query"): attribute_definitions,
    ("POST", "/api/leaderboard/v1/proto/leaderboard/attributes/query"): query_attributes,
    ("POST", "/api/leaderboard/v1/proto/attributes/series/float"): float_series,
    ("POST", "/api/leaderboard/v1/proto/attributes/series"): series_values,
    ("POST", "/api/storagebridge/v1/signedUrl"): signed_urls,
}

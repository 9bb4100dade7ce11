"""Answers for `/` and `/ui/...`: static files, a key check, JSON reads, asset bytes."""
from __future__ import annotations

import hmac
import json
import mimetypes
import secrets
from importlib import resources
from typing import Optional
from urllib.parse import quote

from ..routing import Response
from ..state import ApiError
from . import reads

COOKIE = "cometx_mirror_session"
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}


def handle(state, method: str, path: str, query: dict, headers, raw: bytes) -> Response:
    try:
        if path in ("/", "/index.html"):
            return _static("index.html")
        if path.startswith("/ui/static/"):
            return _static(path[len("/ui/static/"):])
        if path == "/ui/login" and method == "POST":
            return _login(state, raw)
        if not _allowed(state, headers):
            raise ApiError(401, "this mirror needs its key: enter it on the page")
        if method != "GET":
            raise ApiError(403, "this server is a read-only mirror")
        if path == "/ui/asset":
            return _asset(state, query)
        name = path[len("/ui/api/"):] if path.startswith("/ui/api/") else None
        read = reads.READS.get(name or "")
        if read is None:
            raise ApiError(404, f"no such page: {path}")
        return Response(body=read(state, query))
    except ApiError as e:
        return Response(status=e.status, body=e.body())


def _static(name: str) -> Response:
    if name not in STATIC:
        return Response(status=404, body={"msg": "not found", "code": 404})
    data = resources.files(__package__).joinpath("static", name).read_bytes()
    return Response(body=data, content_type=STATIC[name], headers={"Cache-Control": "no-cache"})


# ----- the key -------------------------------------------------------------------------

_sessions: set[str] = set()


def _allowed(state, headers) -> bool:
    if getattr(state, "api_key", None) is None:
        return True
    if state.key_ok(headers.get("Authorization")):
        return True
    token = _cookie(headers.get("Cookie") or "")
    return token is not None and any(hmac.compare_digest(token, s) for s in _sessions)


def _cookie(header: str) -> Optional[str]:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


def _login(state, raw: bytes) -> Response:
    """The page sends the key once; it gets a session cookie (the key itself is never kept)."""
    try:
        key = json.loads(raw or b"{}").get("apiKey")
    except (ValueError, AttributeError):
        key = None
    if getattr(state, "api_key", None) is not None and not state.key_ok(key):
        raise ApiError(401, "wrong key")
    token = secrets.token_urlsafe(32)
    _sessions.add(token)
    return Response(body={"ok": True}, headers={
        "Set-Cookie": f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"})


# ----- asset bytes ---------------------------------------------------------------------

def _asset(state, query: dict) -> Response:
    with state.lock:
        exp = state.experiment(query.get("key"))
        asset = exp["assets"].get(query.get("id") or "")
    if asset is None:
        raise ApiError(404, "asset not found")
    if asset["remote"] or not asset.get("blob"):
        raise ApiError(404, "a remote asset: its bytes are not in the mirror")
    kind = mimetypes.guess_type(asset["fileName"])[0] or "application/octet-stream"
    shown = asset["type"] == "image" and kind.startswith("image/") and "svg" not in kind
    headers = {"X-Content-Type-Options": "nosniff"}
    if not shown or query.get("download"):
        # Anything but a plain image is a download: a stored .html must not run in the page's origin.
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(asset['fileName'])}"
        if not shown:
            kind = "application/octet-stream"
    return Response(body=state.blobs.iter(asset["blob"]), length=state.blobs.size(asset["blob"]),
                    content_type=kind, headers=headers)

"""Request/response types and the route table shared by the handler modules.

Comet serves three URL prefixes on one host: `/clientlib/` (ingestion),
`/api/rest/v2/` (REST) and `/clientlib/rest/v2/` (some REST writes).  The two REST
prefixes share one namespace here ("rest"), so a write lands in the same handler
whichever prefix the SDK chose.
"""
from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional
from urllib.parse import unquote

from .state import ApiError, State, User

ROUTES: dict[tuple[str, str, str], "Route"] = {}
PATTERN_ROUTES: list[tuple[str, str, re.Pattern, "Route"]] = []

REST_PREFIXES = ("/clientlib/rest/v2/", "/api/rest/v2/")
CLIENTLIB_PREFIX = "/clientlib/"


@dataclass
class Route:
    fn: Callable
    auth: bool = True


def route(method: str, family: str, path: str, auth: bool = True):
    """Register a handler: family is "rest" or "clientlib"; a path with `{id}` is a pattern."""
    def deco(fn):
        r = Route(fn, auth)
        if "{" in path:
            rx = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")
            PATTERN_ROUTES.append((method, family, rx, r))
        else:
            ROUTES[(method, family, path)] = r
        return fn
    return deco


def split_family(path: str) -> tuple[Optional[str], str]:
    for prefix in REST_PREFIXES:
        if path.startswith(prefix):
            return "rest", path[len(prefix):]
    if path.startswith(CLIENTLIB_PREFIX):
        return "clientlib", path[len(CLIENTLIB_PREFIX):]
    return None, path


def find_route(method: str, path: str) -> tuple[Optional[str], Optional[Route], dict]:
    family, sub = split_family(path)
    if family is None:
        return None, None, {}
    sub = sub.rstrip("/")
    r = ROUTES.get((method, family, sub))
    if r:
        return family, r, {}
    for m, fam, rx, r in PATTERN_ROUTES:
        if m == method and fam == family:
            match = rx.match(sub)
            if match:
                return family, r, match.groupdict()
    return family, None, {}


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: Any
    body: bytes
    base_url: str                     # e.g. http://127.0.0.1:PORT, for links in responses
    state: State
    user: Optional[User] = None
    path_args: dict = field(default_factory=dict)
    _json: Any = None
    _parts: Optional[dict] = None

    # ----- query helpers (booleans arrive Python-style: True/False) ----------

    def arg(self, name: str, default: Any = None) -> Any:
        value = self.query.get(name)
        return default if value is None or value == "" else value

    def arg_int(self, name: str, default: Optional[int] = None) -> Optional[int]:
        value = self.arg(name)
        if value is None or str(value).lower() in ("none", "null"):
            return default
        try:
            return int(float(value))
        except ValueError:
            raise ApiError(400, f"{name} must be a number") from None

    def arg_bool(self, name: str, default: bool = False) -> bool:
        value = self.arg(name)
        if value is None:
            return default
        return str(value).lower() in ("true", "1", "yes")

    def arg_name(self, name: str) -> Optional[str]:
        """A name the SDK URL-quotes before requests encodes it again (artifact names)."""
        value = self.arg(name)
        return unquote(value) if isinstance(value, str) else value

    # ----- bodies -------------------------------------------------------------

    def json(self) -> Any:
        if self._json is None:
            if not self.body:
                self._json = {}
            else:
                try:
                    self._json = json.loads(self.body)
                except ValueError:
                    raise ApiError(400, "body is not JSON") from None
        return self._json

    def parts(self) -> dict:
        """Multipart form fields: name -> (bytes, filename or None)."""
        if self._parts is None:
            self._parts = parse_multipart(self.body, self.headers.get("Content-Type", ""))
        return self._parts

    def part_text(self, name: str) -> Optional[str]:
        part = self.parts().get(name)
        return part[0].decode("utf-8", "replace") if part else None

    def api_key(self) -> Optional[str]:
        key = self.headers.get("Authorization")
        if not key and self.body and self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                body = self.json()
            except ApiError:
                body = {}
            if isinstance(body, dict):
                key = body.get("apiKey") or body.get("api_key")
        return key or self.query.get("apiKey")


@dataclass
class Response:
    status: int = 200
    body: Any = None                  # dict/list -> JSON; bytes; or an iterable of bytes
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    length: Optional[int] = None      # required with an iterable body

    def encoded(self) -> tuple[Iterable[bytes], int]:
        if isinstance(self.body, (bytes, bytearray)):
            return [bytes(self.body)], len(self.body)
        if self.length is not None:
            return self.body, self.length
        data = json.dumps(self.body if self.body is not None else {}, separators=(",", ":")).encode()
        return [data], len(data)


def decode_body(raw: bytes, headers) -> bytes:
    if raw and headers.get("Content-Encoding", "").lower() == "gzip":
        return gzip.decompress(raw)
    return raw


def parse_multipart(body: bytes, content_type: str) -> dict:
    from requests_toolbelt.multipart.decoder import MultipartDecoder
    if "multipart" not in content_type or not body:
        return {}
    out = {}
    for part in MultipartDecoder(body, content_type).parts:
        disposition = part.headers.get(b"Content-Disposition", b"").decode("utf-8", "replace")
        name = _disposition_value(disposition, "name")
        filename = _disposition_value(disposition, "filename")
        if name is not None:
            out[name] = (part.content, filename)
    return out


def _disposition_value(disposition: str, key: str) -> Optional[str]:
    match = re.search(r'(?:^|;)\s*' + key + r'="([^"]*)"', disposition)
    if match:
        return match.group(1)
    match = re.search(r'(?:^|;)\s*' + key + r'=([^;]*)', disposition)
    return match.group(1).strip() if match else None

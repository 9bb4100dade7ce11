"""The HTTP writer for a destination Comet instance.

Speaks Comet's wire protocol directly with `requests` instead of going through
`comet_ml.OfflineExperiment`, which samples metrics to 15,000 points per name and
injects `curr_step`, `offline_experiment` and `process duration`.

Retry rules (same as fetch): 429 waits for Retry-After; 5xx, connection resets
and timeouts retry with exponential backoff and jitter; 4xx other than 429 fail
at once.  Any try but a 429 or a refused connection may have been applied
although its answer says otherwise, so every write this package sends is either
safe to resend (set-style endpoints, client-chosen experiment keys, asset ids,
template ids and artifact version numbers) or append-only and checked at the
destination before it is resent (metric batches, output): see `request`.

The API key lives only in this object's session headers; it is never logged.
"""
from __future__ import annotations

import gzip
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import requests

from ...errors import ExpectedError
from ...net.throttle import Throttle

RETRY_STATUS = {500, 502, 503, 504}


class PushError(ExpectedError):
    """A destination problem worth one line to the user (no secrets in it)."""


class AuthError(PushError):
    """The destination refused the key (wrong key, or no rights on the workspace)."""


class HttpError(PushError):
    def __init__(self, status: int, endpoint: str, body: Any):
        self.status = status
        self.endpoint = endpoint
        self.body = body
        code = body.get("sdk_error_code") if isinstance(body, dict) else None
        self.code = code
        msg = body.get("msg") if isinstance(body, dict) else None
        super().__init__(f"{endpoint}: HTTP {status}" + (f" ({msg})" if msg else ""))


# -- credentials --------------------------------------------------------------
@dataclass
class Credentials:
    api_key: str = field(repr=False)
    clientlib: str          # full clientlib base, ends with "/"
    root: str               # scheme://host:port, REST bases hang off it

    @property
    def rest(self) -> str:
        return self.root + "/api/rest/v2/"

    @property
    def rest_clientlib(self) -> str:
        return self.root + "/clientlib/rest/v2/"


def resolve_credentials(api_key: str | None = None, url_override: str | None = None) -> Credentials:
    """Flags first, then what comet_ml reads (COMET_* env, .env, config files, smart keys)."""
    from ...net.comet_auth import CredentialsError, resolve
    from ...net.urls import redact
    try:
        found = resolve(api_key, url_override)
    except CredentialsError as e:
        raise PushError(str(e).replace("--api-key", "--to-api-key")) from None
    parsed = urlparse(found.clientlib_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise PushError(f"bad destination URL {redact(found.clientlib_url)!r}")
    return Credentials(api_key=found.api_key, clientlib=found.clientlib_url,
                       root=f"{parsed.scheme}://{parsed.netloc}")


# -- the client ---------------------------------------------------------------
@dataclass
class Counters:
    reads: int = 0
    writes: int = 0
    retries: int = 0
    bytes_out: int = 0


class CometClient:
    """Thread-safe: one requests.Session per thread, shared counters."""

    def __init__(self, creds: Credentials, timeout: float = 60.0, max_tries: int = 6,
                 backoff: float = 0.5, max_backoff: float = 20.0, max_rps: float | None = None):
        self.creds = creds
        self.timeout = timeout
        self.max_tries = max_tries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.counters = Counters()
        self._local = threading.local()
        self._lock = threading.Lock()
        self.throttle = Throttle(max_rps)   # paces every thread after a 429 (net/throttle.py)

    @property
    def destination(self) -> str:
        # the ledger's and messages' name for the server: a user:password in the URL stays out
        from ...net.urls import without_userinfo
        return without_userinfo(self.creds.root)

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["Authorization"] = self.creds.api_key
            s.headers["User-Agent"] = "cometx-mirror"
            self._local.session = s
        return s

    def _url(self, base: str, path: str) -> str:
        return {"clientlib": self.creds.clientlib, "rest": self.creds.rest,
                "rest-clientlib": self.creds.rest_clientlib}[base] + path

    def _count(self, write: bool, nbytes: int = 0, retry: bool = False) -> None:
        with self._lock:
            if retry:
                self.counters.retries += 1
            elif write:
                self.counters.writes += 1
                self.counters.bytes_out += nbytes
            else:
                self.counters.reads += 1

    def _sleep_for(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None and response.status_code == 429:
            return 0.0      # the throttle holds every thread until Retry-After has passed
        delay = min(self.max_backoff, self.backoff * 2 ** attempt)
        return delay / 2 + random.uniform(0, delay / 2)   # jitter: retries do not stampede

    def request(self, method: str, base: str, path: str, *, write: bool, params: dict | None = None,
                json_body: Any = None, gzip_json: bool = False, files_factory=None,
                expect_json: bool = True, ok_codes: tuple = (), landed=None) -> Any:
        """One call with retries; returns parsed JSON (or bytes), raises HttpError/AuthError.

        `files_factory` rebuilds the multipart body for each try (file handles are consumed).
        `ok_codes` are sdk_error_codes answered with 4xx that the caller treats as success.
        `landed` marks an append-only write: whenever a try may have been applied without our
        hearing so (see `_Ambiguous`), `landed()` is asked before anything is resent: True
        means it is stored, so the call is done; False means it is not, so it is sent again;
        it raises a PushError when the destination cannot tell, and nothing is resent.
        Writes without `landed` are set-style or carry our ids: resending them is harmless.
        """
        url = self._url(base, path)
        endpoint = f"{method} {path}"
        for attempt in range(self.max_tries):
            last = attempt + 1 >= self.max_tries
            kwargs: dict[str, Any] = {"params": params, "timeout": self.timeout}
            nbytes = 0
            if json_body is not None:
                data = json.dumps(json_body, allow_nan=True).encode()
                headers = {"Content-Type": "application/json"}
                if gzip_json:
                    data = gzip.compress(data, 5)
                    headers["Content-Encoding"] = "gzip"
                kwargs.update(data=data, headers=headers)
                nbytes = len(data)
            elif files_factory is not None:
                data, content_type, nbytes = files_factory()
                kwargs.update(data=data, headers={"Content-Type": content_type})
            try:
                try:
                    self._count(write, nbytes, retry=attempt > 0)
                    sent_at = self.throttle.before()
                    response = self._session().request(method, url, **kwargs)
                    self.throttle.report(sent_at, response)
                    body = response.content          # read now: a cut body raises here
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError) as e:
                    if not _maybe_sent(e):
                        # nothing listening: one more try covers a restart, more only delays the error
                        if attempt >= 1 or last:
                            raise PushError(f"cannot reach {self.destination} ({type(e).__name__})") from None
                        time.sleep(self._sleep_for(attempt, None))
                        continue
                    raise _Ambiguous(PushError(f"cannot reach {self.destination} ({type(e).__name__})"),
                                     None) from None
                status = response.status_code
                if status == 429:       # the rate limiter refused it: nothing was applied
                    if last:
                        raise HttpError(status, endpoint, _body(response))
                    time.sleep(self._sleep_for(attempt, response))
                    continue
                if status in RETRY_STATUS:
                    raise _Ambiguous(HttpError(status, endpoint, _body(response)), response)
                if status in (401, 403) or (status == 400 and _code(response) == 90212):
                    raise AuthError(f"the destination refused the API key for {endpoint} (HTTP {status})")
                if status >= 400:
                    body = _body(response)
                    if isinstance(body, dict) and body.get("sdk_error_code") in ok_codes:
                        return body
                    raise HttpError(status, endpoint, body)
                if not expect_json:
                    return body
                try:
                    return json.loads(body) if body else {}
                except ValueError:
                    raise _Ambiguous(PushError(f"{endpoint}: unreadable response"), None) from None
            except _Ambiguous as unsure:
                # The try may have been applied.  Wait first: a slow backend may still be
                # committing it, and the answer to landed() must see that.
                if not last or landed is not None:
                    time.sleep(self._sleep_for(attempt, unsure.response))
                if landed is not None and landed():
                    return {}
                if last:
                    raise unsure.error from None
        raise PushError(f"{endpoint}: gave up")   # pragma: no cover

    # shorthands
    def get(self, path: str, params: dict | None = None, base: str = "rest", **kw) -> Any:
        return self.request("GET", base, path, write=False, params=params, **kw)

    def post(self, path: str, body: Any = None, base: str = "rest", **kw) -> Any:
        return self.request("POST", base, path, write=True, json_body=body, **kw)


class _Ambiguous(Exception):
    """A try whose write may have been applied: a 5xx (a gateway's 502/504 after the backend
    committed is routine), a reset or timeout after the body was sent, a cut or unreadable
    answer.  Carries the error to raise if no try succeeds."""

    def __init__(self, error: PushError, response: requests.Response | None):
        super().__init__(str(error))
        self.error = error
        self.response = response


def _maybe_sent(e: Exception) -> bool:
    """False when the connection was never made (nothing can have landed)."""
    text = str(e)
    return not (isinstance(e, requests.exceptions.ConnectTimeout) or "NewConnectionError" in text
                or "Connection refused" in text)


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:200]


def _code(response: requests.Response) -> int | None:
    body = _body(response)
    return body.get("sdk_error_code") if isinstance(body, dict) else None


def multipart(fields: list[tuple[str, tuple]]):
    """A files_factory for `request`: fields as (name, (filename, bytes_or_callable, content_type))."""
    from requests_toolbelt import MultipartEncoder

    def build():
        parts = []
        for name, (filename, content, ctype) in fields:
            data = content() if callable(content) else content
            parts.append((name, (filename, data, ctype) if filename is not None else data))
        enc = MultipartEncoder(fields=parts)
        return enc, enc.content_type, enc.len
    return build


class SizedReader:
    """An object's bytes streamed into a multipart body, never whole in memory.

    MultipartEncoder sizes a part by `len` and reads until `len` is 0, so `len` is what is
    left to read (a raw object file's own size would count our header)."""

    def __init__(self, stream, length: int):
        self._stream = stream
        self.len = length

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n if n is not None and n >= 0 else -1)
        self.len = 0 if not data else max(0, self.len - len(data))
        if self.len == 0:
            self._stream.close()
        return data


def object_reader(objects, object_id: str) -> SizedReader:
    return SizedReader(objects.open(object_id), objects.raw_size(object_id))


def gunzip_if_needed(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data

"""An HTTP client that retries what is worth retrying and counts what it sends.

Requests are the cost a server charges, so every attempt is counted.  Retried:
429 (honouring Retry-After), 500/502/503/504, connection resets, timeouts and
bodies cut short (urllib3 enforces Content-Length); each retry waits with
exponential backoff and full jitter.  Not retried: other 4xx, which are answers.
"""
from __future__ import annotations

import json
import random
import threading
import time
from typing import Any, Callable, Iterator

import requests
from requests.adapters import HTTPAdapter

from .errors import HttpError, NotJsonAnswer, RetryableBody  # noqa: F401  (where callers take them)
from .throttle import Throttle

RETRY_STATUS = {429, 500, 502, 503, 504}
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
             requests.exceptions.ContentDecodingError)


class HttpClient:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None, *, retries: int = 6,
                 backoff: float = 0.25, max_backoff: float = 20.0, timeout: float = 120.0,
                 pool_size: int = 16, redact: tuple[str, ...] = (), max_rps: float | None = None):
        self.base_url = base_url.rstrip("/") + "/"
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._redact = tuple(r for r in redact if r)
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._lock = threading.Lock()
        self.throttle = Throttle(max_rps)   # paces every thread after a 429 (net/throttle.py)
        self.sent = 0            # every attempt, retries included
        self.retried = 0

    def _count(self, retried: bool = False) -> None:
        with self._lock:
            self.sent += 1
            if retried:
                self.retried += 1

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path.lstrip("/")

    def _scrub(self, text: str) -> str:
        for secret in self._redact:
            text = text.replace(secret, "***")
        return text

    def _wait(self, attempt: int, response: requests.Response | None) -> None:
        if response is not None and response.status_code == 429:
            return      # the throttle holds every thread until Retry-After has passed
        delay = random.uniform(0, min(self.max_backoff, self.backoff * (2 ** attempt)))
        time.sleep(min(delay, self.max_backoff * 3))

    def call(self, method: str, path: str, consume: Callable[[requests.Response], Any] | None = None,
             ok: tuple[int, ...] = (200,), stream: bool = False, **kwargs) -> Any:
        """Send a request, retrying transient failures; return consume(response) (or the response).

        `consume` runs inside the retry loop, so a body cut short while being read is retried too.
        """
        url = self.url(path)
        kwargs.setdefault("timeout", self.timeout)
        last = "no attempt"
        for attempt in range(self.retries + 1):
            self._count(retried=attempt > 0)
            response = None
            try:
                sent_at = self.throttle.before()
                response = self.session.request(method, url, stream=stream, **kwargs)
                self.throttle.report(sent_at, response)
                if response.status_code in RETRY_STATUS:
                    last = f"HTTP {response.status_code}"
                    response.close()
                    if attempt < self.retries:
                        self._wait(attempt, response)
                        continue
                    break
                if response.status_code not in ok:
                    raise HttpError(self._describe(method, url, response), response.status_code,
                                    _body(response))
                return consume(response) if consume else response
            except TRANSIENT as e:
                last = type(e).__name__
                if _refused(e) and attempt >= REFUSED_RETRIES:
                    break   # nothing listens there: say so now rather than after a minute
            except RetryableBody as e:
                last = str(e) or "bad body"
            finally:
                if stream and response is not None and consume is not None:
                    response.close()
            if attempt < self.retries:
                self._wait(attempt, None)
        raise HttpError(self._scrub(f"{method} {_path_of(url)} failed after {attempt + 1} attempts "
                                    f"({last})"), None)

    def _describe(self, method: str, url: str, response: requests.Response) -> str:
        return self._scrub(f"{method} {_path_of(url)} answered HTTP {response.status_code}")

    def get_json(self, path: str, params: dict | None = None, **kwargs) -> Any:
        return self.call("GET", path, consume=_json_body, params=params, **kwargs)

    def post_json(self, path: str, payload: Any = None, params: dict | None = None,
                  ok: tuple[int, ...] = (200, 201), **kwargs) -> Any:
        return self.call("POST", path, consume=_json_body, params=params, json=payload, ok=ok, **kwargs)

    def get_bytes(self, path: str, params: dict | None = None, **kwargs) -> bytes:
        return self.call("GET", path, consume=lambda r: r.content, params=params, **kwargs)

    def stream_json(self, path: str, consume: Callable[[Iterator[bytes]], Any],
                    params: dict | None = None, **kwargs) -> Any:
        """`stream` for a JSON answer read as it arrives (json_stream): a ValueError from `consume`
        (text that is not JSON) is told apart as get_json tells it, an HTML page from a cut body."""
        def read(response: requests.Response) -> Any:
            head: list[bytes] = []

            def chunks() -> Iterator[bytes]:
                for chunk in response.iter_content(1 << 20):
                    if not head:
                        head.append(chunk)
                    yield chunk
            try:
                return consume(chunks())
            except ValueError:
                raise _unparsable(response, head[0] if head else b"") from None
        return self.call("GET", path, consume=read, params=params, stream=True, **kwargs)

    def stream(self, path: str, consume: Callable[[Iterator[bytes]], Any],
               params: dict | None = None, **kwargs) -> Any:
        """GET and hand the body, in chunks, to `consume`; a cut body is retried from the start."""
        return self.call("GET", path, consume=lambda r: consume(r.iter_content(1 << 20)),
                         params=params, stream=True, **kwargs)


REFUSED_RETRIES = 2


def _refused(e: Exception) -> bool:
    return isinstance(e, requests.ConnectionError) and "refused" in str(e).lower()


def _path_of(url: str) -> str:
    return requests.utils.urlparse(url).path


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def _json_body(response: requests.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        raise _unparsable(response, response.content) from None


def _unparsable(response: requests.Response, head: bytes) -> Exception:
    """What a body that is not JSON means, from its type and its first bytes."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if (content_type and "json" not in content_type) or head.lstrip()[:1] == b"<":
        # HTML or text, complete: an answer from something that is not this API
        return NotJsonAnswer(_path_of(response.url), response.status_code, content_type)
    # A truncated or garbled JSON body is a transport fault, not an answer.
    return RetryableBody("unparsable JSON body")

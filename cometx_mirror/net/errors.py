"""The errors of an HTTP exchange, apart from the client (http.py), so that code which only
catches them (a source's fetch, a normalizer's module) does not import requests: about 0.1 s
of CPU an offline fetch should never pay."""
from __future__ import annotations

from typing import Any

from ..errors import ExpectedError


class HttpError(ExpectedError):
    """A request failed for good; `status` is None when the server was never reached."""

    def __init__(self, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class NotJsonAnswer(HttpError):
    """A whole answer that is not JSON (an HTML login page, a proxy's notice): not
    a transient fault, so it is not retried; `path` and `content_type` say what."""

    def __init__(self, path: str, status: int, content_type: str):
        super().__init__(f"GET {path} answered HTTP {status} with {content_type or 'no content type'}, "
                         "not JSON", status)
        self.path = path
        self.content_type = content_type


class RetryableBody(Exception):
    """Raised by a body consumer to ask for the request to be sent again."""

"""Counting the requests an online W&B fetch makes, where our process can see them.

wandb 0.31 sends GraphQL, run history, console logs and run-file downloads from its wandb-core
sidecar (a separate Go process): `wandb.Api` hands each one to wandb-core as an ApiRequest
(`ServiceApi.send_api_request`) and waits for the answer.  We count those at that hand-over,
one request each (wandb-core's retries are not visible to us), and the requests this process
sends itself (our login probe; artifact manifests and files, which wandb still downloads
in-process with `requests`) at `requests.Session.send`.  The fetch summary says how many went
through wandb-core.  Against the test server both counts equal what the server received.
"""
from __future__ import annotations

import contextlib
import threading

# ServiceApi's hand-overs to wandb-core (execute_graphql, authenticate, File.download call these)
_SERVICE_CALLS = ("send_api_request", "send_api_request_async")

# wandb-core asks the server for its feature flags once, then answers from a cache (wandb 0.31)
CACHED_BY_CORE = {"features_request"}


def _request_kind(args: tuple) -> str | None:
    """Which ApiRequest this is (args: self, request, ...)."""
    try:
        return args[1].WhichOneof("request")
    except (IndexError, AttributeError, TypeError, ValueError):
        return None


def _is_coroutine(fn) -> bool:
    import inspect
    return inspect.iscoroutinefunction(fn)


class RequestCount:
    """The requests of one fetch: `in_process` (ours and wandb's own `requests`), `via_core`."""

    def __init__(self):
        self._lock = threading.Lock()
        self.in_process = 0
        self.via_core = 0
        self._asked: set[str] = set()

    @property
    def total(self) -> int:
        return self.in_process + self.via_core

    def _add(self, field: str, args: tuple = ()) -> None:
        kind = _request_kind(args) if field == "via_core" else None
        with self._lock:
            if kind in CACHED_BY_CORE:
                if kind in self._asked:
                    return          # wandb-core answers it from its cache: no request
                self._asked.add(kind)
            setattr(self, field, getattr(self, field) + 1)

    @contextlib.contextmanager
    def counting(self):
        """Count the requests sent while the block runs: at `requests.Session.send` in this process,
        at `ServiceApi`'s calls for wandb-core.  Class attributes are patched because wandb.Api()
        already sends one while it is made; this process runs one fetch at a time, and the
        patches are undone when the block ends."""
        import requests
        patches = [(requests.Session, "send", "in_process")]
        try:
            from wandb.apis.public.service_api import ServiceApi
        except ImportError:     # another wandb layout: those requests go uncounted, not wrong
            ServiceApi = None
        if ServiceApi is not None:
            patches += [(ServiceApi, name, "via_core") for name in _SERVICE_CALLS if name in vars(ServiceApi)]
        saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
        for owner, name, field in patches:
            setattr(owner, name, self._counted(owner.__dict__[name], field))
        try:
            yield self
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)

    def _counted(self, method, field: str):
        if isinstance(method, (staticmethod, classmethod)):
            return method
        count = self
        if _is_coroutine(method):
            async def counted_async(*args, **kwargs):
                count._add(field, args)
                return await method(*args, **kwargs)
            return counted_async

        def counted(*args, **kwargs):
            count._add(field, args)
            return method(*args, **kwargs)
        return counted

    def note(self) -> str:
        """How the summary should read the count."""
        if not self.via_core:
            return ""
        return f"{self.via_core:,} of them sent by wandb-core; its retries are not seen"

"""A Neptune-compatible read server on loopback, for tests, benchmarks and the demo.

It speaks the Neptune 3.x read API as neptune-query 1.14 calls it (token
exchange, runs search, attribute definitions and values, float and other
series, signed file URLs, the project list) over the shared HTTP layer: the
same faults, counters, rate limits and /_admin endpoints as the Comet server.

    from cometx_mirror.server.neptune import start_neptune_server
    srv = start_neptune_server()
    run = srv.data.run("ws/proj", "run-1")
    run.log_configs({"parameters/lr": 0.1}).log_metrics(0, {"train/loss": 1.0})
    os.environ["NEPTUNE_API_TOKEN"] = srv.api_token
    srv.stop()

See docs/neptune.md (the live route).
"""
from __future__ import annotations

import base64
import json
import secrets
from typing import Optional

from ..limits import Limits
from ..runner import ServerHandle, start_vendor
from .data import NeptuneData, Run, Settings
from .routes import NeptuneVendor

__all__ = ["start_neptune_server", "NeptuneHandle", "NeptuneData", "Run", "make_api_token"]


def make_api_token(url: str, secret: Optional[str] = None) -> str:
    """A NEPTUNE_API_TOKEN naming `url`: base64 JSON with api_address and api_url (the client
    turns a missing api_url into the string "None", so both are set) and the key itself."""
    info = {"api_address": url, "api_url": url, "api_key": secret or secrets.token_hex(16)}
    return base64.b64encode(json.dumps(info).encode()).decode()


class NeptuneHandle(ServerHandle):
    """A running Neptune server; `api_token` is the NEPTUNE_API_TOKEN of its one user."""

    user = "neptune-user"

    @property
    def data(self) -> NeptuneData:
        return self.state

    @property
    def api_token(self) -> str:
        return self._api_token

    def env(self, user=None) -> dict:
        return {"NEPTUNE_API_TOKEN": self.api_token}

    @property
    def api_key(self) -> str:
        return self.api_token

    @property
    def workspace(self) -> str:
        return next(iter(self.data.projects.values())).workspace if self.data.projects else "ws"

    def configure(self, **settings) -> dict:
        with self.state.lock:
            self.state.settings.update(settings)
            return self.state.settings.as_dict()


def start_neptune_server(host: str = "127.0.0.1", port: int = 0, data: Optional[NeptuneData] = None,
                         latency_ms: float = 0, faults: Optional[str] = None,
                         rate_limit: Optional[str] = None, signed_url_ttl_s: float = 600.0) -> NeptuneHandle:
    """Start a Neptune server in a background thread; port 0 picks a free port."""
    limits = Limits(rate_limit)
    data = data or NeptuneData(Settings(signed_url_ttl_s))
    vendor = NeptuneVendor({})
    handle = start_vendor(vendor, data, host=host, port=port, latency_ms=latency_ms, faults=faults,
                          limits=limits, handle=NeptuneHandle)
    handle._api_token = make_api_token(handle.url)
    vendor.api_tokens[handle._api_token] = NeptuneHandle.user
    return handle

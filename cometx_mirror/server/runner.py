"""Starting and stopping a server from Python (tests, benchmarks, the `serve` command).

`start_vendor` starts any vendor's routes on the shared HTTP layer; `start_server` is Comet's.
"""
from __future__ import annotations

import json
import urllib.request
from typing import Iterable, Optional

from .accounting import Accounting
from .app import CometServer, serve_in_thread
from .faults import Faults
from .limits import Limits
from .state import DEFAULT_USERS, Settings, State, User


class ServerHandle:
    """A running server.  `url` is the root (http://127.0.0.1:PORT); point the SDK at
    `clientlib_url` through `env()`."""

    def __init__(self, server: CometServer, state: State, faults: Faults, accounting: Accounting) -> None:
        self._server = server
        self._thread = serve_in_thread(server)
        self.state = state
        self.faults = faults
        self.accounting = accounting
        self.limits = server.limits
        host, port = server.server_address[:2]
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self.clientlib_url = f"{self.url}/clientlib/"

    @property
    def users(self) -> list[User]:
        return self.state.users

    @property
    def api_key(self) -> str:
        """The first user's key."""
        return self.state.users[0].api_key

    @property
    def workspace(self) -> str:
        return self.state.users[0].default_workspace

    def env(self, user: Optional[User] = None) -> dict:
        """The COMET_* variables that point the real SDK at this server."""
        user = user or self.state.users[0]
        return {"COMET_URL_OVERRIDE": self.clientlib_url, "COMET_API_KEY": user.api_key,
                "COMET_WORKSPACE": user.default_workspace}

    def counters(self) -> dict:
        return {**self.accounting.counters(), "rate_limited": self.limits.throttled_total()}

    def requests(self, since: int = 0) -> list[dict]:
        return self.accounting.requests(since)

    def reset_counters(self) -> None:
        self.accounting.reset()
        self.limits.reset_counts()

    def set_faults(self, spec: Optional[str]) -> None:
        self.faults.set(spec)

    def configure(self, **settings) -> dict:
        """Change server settings (sampling, total_fidelity, strict, full_metric_part_rows)."""
        with self.state.lock:
            self.state.settings.update(settings)
            return self.state.settings.as_dict()

    def set_rate_limits(self, spec: Optional[str]) -> None:
        """Per-key limits, e.g. "comet" or "read=600 other=400" (see server/limits.py)."""
        self.limits.set(spec)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self.state.close()

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(host: str = "127.0.0.1", port: int = 0, data_dir: Optional[str] = None,
                 latency_ms: float = 0, faults: Optional[str] = None,
                 users: Iterable[User] = DEFAULT_USERS, rate_limit: Optional[str] = None,
                 sampling: bool = True, total_fidelity: bool = False, strict: bool = False,
                 full_metric_part_rows: int = 100_000) -> ServerHandle:
    """Start a server in a background thread; port 0 picks a free port.

    Metric reads are sampled like Comet's (15,000 values per metric) unless
    sampling=False; see state.Settings for total_fidelity and strict."""
    limits = Limits(rate_limit)          # a bad spec fails before anything starts
    settings = Settings(sampling=sampling, total_fidelity=total_fidelity, strict=strict,
                        full_metric_part_rows=full_metric_part_rows)
    state = State(users=list(users), data_dir=data_dir, settings=settings)
    state.start_saver()
    return start_vendor(None, state, host=host, port=port, latency_ms=latency_ms, faults=faults,
                        limits=limits)


def start_vendor(vendor, state, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0,
                 faults: Optional[str] = None, limits: Optional[Limits] = None,
                 handle=ServerHandle):
    """Start any vendor's server (its routes + its data) on the shared HTTP layer, faults and
    counters; vendor None is Comet.  `handle` is the ServerHandle class to return."""
    fault_rules = Faults(faults, latency_ms=latency_ms)
    accounting = Accounting()
    server = CometServer((host, port), state, fault_rules, accounting, limits or Limits(), vendor)
    return handle(server, state, fault_rules, accounting)


# ----- reading a server in another process (benchmarks) -----------------------------------

def admin_get(url: str, name: str) -> dict:
    """GET /_admin/<name> of a server at root `url` (counters, requests, faults)."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/_admin/{name}", timeout=30) as r:
        return json.loads(r.read())


def admin_set_faults(url: str, spec: str) -> dict:
    req = urllib.request.Request(f"{url.rstrip('/')}/_admin/faults", data=spec.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def admin_set_rate_limits(url: str, spec: str) -> dict:
    req = urllib.request.Request(f"{url.rstrip('/')}/_admin/limits", data=spec.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def admin_settings(url: str, **changes) -> dict:
    """GET (no changes) or POST /_admin/settings of a server at root `url`."""
    data = json.dumps(changes).encode() if changes else None
    req = urllib.request.Request(f"{url.rstrip('/')}/_admin/settings", data=data,
                                 method="POST" if changes else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def admin_reset(url: str) -> dict:
    req = urllib.request.Request(f"{url.rstrip('/')}/_admin/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())

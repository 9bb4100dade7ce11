"""Who may read a served mirror, and what it refuses.

A backup holds code, output and data: bound anywhere but loopback the server needs a
key the user chose, and then answers nothing (not even isAlive) without it.  Every
write is refused with 403: only GETs and the three POSTs that are queries are reads.
"""
from __future__ import annotations

import os
from typing import Optional

from .routing import split_family
from .state import ApiError

KEY_ENV = "COMETX_MIRROR_API_KEY"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
READ_POSTS = {("rest", "project/query"), ("rest", "experiments/search"),
              ("rest", "experiments/multi-metric-chart")}


class KeyRequired(Exception):
    """Bound beyond loopback without a key."""


def choose_key(host: str, api_key: Optional[str]) -> Optional[str]:
    """The key requests must carry: --api-key, else the environment; none on loopback only."""
    key = api_key or os.environ.get(KEY_ENV) or None
    if key is None and host not in LOOPBACK:
        raise KeyRequired(f"serving a mirror on {host} needs a key: pass --api-key or set {KEY_ENV} "
                          "(only 127.0.0.1 is served without one)")
    return key


def is_write(method: str, path: str) -> bool:
    family, sub = split_family(path)
    return method != "GET" and (family, sub.rstrip("/")) not in READ_POSTS


def check(state, method: str, path: str, headers) -> None:
    if state.api_key is not None and not state.key_ok(headers.get("Authorization")):
        raise ApiError(401, "Invalid API key")
    if is_write(method, path):
        raise ApiError(403, f"read-only mirror: {method} {path} would change it, and nothing is written here")


def check_admin(state, method: str, headers) -> None:
    if state.api_key is not None and not state.key_ok(headers.get("Authorization")):
        raise ApiError(401, "Invalid API key")
    if method != "GET":
        raise ApiError(403, "read-only mirror: its settings, faults and counters are not changed")

"""Per-key rate limits, the way Comet throttles: requests per minute by kind, answered 429.

A spec (`serve --rate-limit`, `start_server(rate_limit=...)`, `POST /_admin/limits`) is
space-separated words; later words win:

    comet                    Comet's documented logging limits: metrics=12000 parameters=10000
                             output=12000 other=8000 (reads are not limited)
    metrics=600 other=400    requests per minute per API key, for these kinds only
    comet read=3000          a preset and kinds together
    all=1200                 every kind, reads included
    burst=2                  seconds of allowance a key that was quiet may spend at once (default 1)

Kinds: `metrics`, `parameters`, `output` (writes whose endpoint names them), `other` (every
other write) and `read` (everything that is not a write).  Each (key, kind) has a token
bucket that refills at the per-minute rate; a request finding it empty is answered 429 with
`Retry-After` in whole seconds (the time until the bucket holds a request again, at least 1),
before any handler runs, so nothing of a throttled request is stored.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Optional

from .routing import split_family

LIMIT_KINDS = ("metrics", "parameters", "output", "other", "read")
COMET_LOGGING_LIMITS = {"metrics": 12_000, "parameters": 10_000, "output": 12_000, "other": 8_000}
DEFAULT_BURST_S = 1.0


class LimitSpecError(ValueError):
    pass


def parse(spec: Optional[str]) -> tuple[dict[str, float], float]:
    """A spec string -> ({kind: requests per minute}, burst seconds)."""
    per_minute: dict[str, float] = {}
    burst = DEFAULT_BURST_S
    for word in (spec or "").replace(",", " ").replace(";", " ").split():
        name, sep, value = word.partition("=")
        name = name.lower()
        if not sep:
            if name not in ("comet", "off", "none"):
                raise LimitSpecError(f"unknown rate-limit word {word!r}; expected comet, KIND=N or burst=S")
            per_minute.update(COMET_LOGGING_LIMITS if name == "comet" else {})
            continue
        number = _number(value, name)
        if name == "burst":
            burst = number
        elif name == "all":
            per_minute.update({kind: number for kind in LIMIT_KINDS})
        elif name in LIMIT_KINDS:
            per_minute[name] = number
        else:
            raise LimitSpecError(f"unknown rate-limit kind {name!r}; expected one of "
                                 f"{', '.join(LIMIT_KINDS)}, all or burst")
    return per_minute, burst


def _number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise LimitSpecError(f"{name} must be a number, got {value!r}") from None
    if not number > 0 or math.isinf(number):
        raise LimitSpecError(f"{name} must be a positive number, got {value!r}")
    return number


def limit_kind(path: str) -> str:
    """Which limit a request counts against: ingestion (`/clientlib/...`) and REST `write/...`
    endpoints are writes, the rest reads."""
    family, endpoint = split_family(path)
    write = family == "clientlib" or endpoint.startswith("write/")
    if not write:
        return "read"
    last = endpoint.rstrip("/").rsplit("/", 1)[-1]
    if "metric" in last:
        return "metrics"
    if "parameter" in last:
        return "parameters"
    if "output" in last:
        return "output"
    return "other"


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Limits:
    """The active limits and their buckets; thread-safe, replaceable at run time."""

    def __init__(self, spec: Optional[str] = None) -> None:
        self._lock = threading.Lock()
        self._allowed: dict[str, int] = {}      # counts survive a change of limits
        self._throttled: dict[str, int] = {}
        self.set(spec)

    def set(self, spec: Optional[str]) -> None:
        per_minute, burst = parse(spec)
        with self._lock:
            self._spec = spec or ""
            self._per_minute = per_minute
            self._burst = burst
            self._buckets: dict[tuple[str, str], _Bucket] = {}

    @property
    def active(self) -> bool:
        return bool(self._per_minute)

    def admit(self, who: str, kind: str) -> Optional[int]:
        """None when the request may go on; else the Retry-After, in seconds, of its 429."""
        per_minute = self._per_minute.get(kind)
        if per_minute is None:
            return None
        rate = per_minute / 60.0
        capacity = max(1.0, rate * self._burst)
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get((who, kind))
            if bucket is None:
                bucket = self._buckets[(who, kind)] = _Bucket(capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                self._allowed[kind] = self._allowed.get(kind, 0) + 1
                return None
            self._throttled[kind] = self._throttled.get(kind, 0) + 1
            return max(1, math.ceil((1.0 - bucket.tokens) / rate))

    def reset_counts(self) -> None:
        with self._lock:
            self._allowed.clear()
            self._throttled.clear()

    def throttled_total(self) -> int:
        with self._lock:
            return sum(self._throttled.values())

    def describe(self) -> dict:
        with self._lock:
            return {"spec": self._spec, "per_minute": dict(self._per_minute), "burst_s": self._burst,
                    "allowed": dict(self._allowed), "throttled": dict(self._throttled)}

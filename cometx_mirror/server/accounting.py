"""A request log and per-endpoint counters, read by tests and benchmarks.

An endpoint is "METHOD /path" without the query (ids inside a path, as in
`template/<id>/download`, are replaced by `{id}` so they count as one endpoint).
Admin requests are not counted.  API keys are never recorded.  The peak number of
requests in flight at once shows how hard a client leans on the server.
"""
from __future__ import annotations

import collections
import contextlib
import re
import threading
import time
from typing import Optional

MAX_LOG = 200_000
_TEMPLATE = re.compile(r"/template/[^/]+/")
SECRET_PARAMS = {"apikey", "api_key"}


def endpoint_of(method: str, path: str) -> str:
    return f"{method} {_TEMPLATE.sub('/template/{id}/', path)}"


class Accounting:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: collections.deque = collections.deque(maxlen=MAX_LOG)
        self._counters: dict[str, dict] = {}
        self._total = 0
        self._started = time.time()
        self._in_flight = 0
        self._peak = 0

    @contextlib.contextmanager
    def in_flight(self):
        """Wrap the handling of one request, to count how many overlap."""
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def record(self, method: str, path: str, query: dict, status: int, bytes_in: int,
               bytes_out: int, elapsed_ms: float, faults: Optional[list] = None) -> None:
        endpoint = endpoint_of(method, path)
        entry = {
            "t": round(time.time(), 6), "method": method, "path": path, "endpoint": endpoint,
            "query": {k: v for k, v in query.items() if k.lower() not in SECRET_PARAMS},
            "status": status, "bytes_in": bytes_in, "bytes_out": bytes_out,
            "ms": round(elapsed_ms, 3), "faults": list(faults or []),
        }
        with self._lock:
            self._total += 1
            self._log.append(entry)
            c = self._counters.setdefault(endpoint, {
                "count": 0, "status": {}, "bytes_in": 0, "bytes_out": 0, "ms_total": 0.0, "faults": 0})
            c["count"] += 1
            c["status"][str(status)] = c["status"].get(str(status), 0) + 1
            c["bytes_in"] += bytes_in
            c["bytes_out"] += bytes_out
            c["ms_total"] = round(c["ms_total"] + elapsed_ms, 3)
            c["faults"] += len(entry["faults"])

    def counters(self) -> dict:
        """{"total": N, "peak_in_flight": N,
        "endpoints": {"GET /api/rest/v2/experiment/metadata": {count, status, ...}}}"""
        with self._lock:
            return {"total": self._total, "peak_in_flight": self._peak,
                    "endpoints": {k: {**v, "status": dict(v["status"])} for k, v in self._counters.items()}}

    def requests(self, since: int = 0) -> list[dict]:
        """The request log (oldest first), optionally from index `since`."""
        with self._lock:
            return list(self._log)[since:]

    def reset(self) -> None:
        with self._lock:
            self._log.clear()
            self._counters.clear()
            self._total = 0
            self._peak = self._in_flight

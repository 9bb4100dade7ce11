"""A pace shared by every thread of one client, learned from the server's 429s.

Every attempt asks `before()` for its turn and reports its answer to `after()`:

- A 429 pauses every thread until its Retry-After has passed, not only the one that drew
  it, and sets the pace just under the rate the server was seen to admit (answers since the
  last pause, over the last few seconds).  That happens once per overload: a 429 answering a
  request sent before the last slow-down only extends the pause.
- While answers flow the pace rises again: fast (half again a second) while it is well
  under the pace that last drew a 429 (the first guess, from a burst, is rough), then a
  few per cent a second, so a quota that grew is found; the next overload costs one pause.
- `max_rps` is a ceiling from the start: a user who knows the quota stays under it and
  draws no 429 at all.

Without a 429 and without `max_rps`, requests go out unpaced, as before.  The pace is a
rate, not a count of threads: each thread waits for its slot, so N threads against a
server that allows R requests a second send R a second, whatever N is.
"""
from __future__ import annotations

import collections
import email.utils
import threading
import time

BACKOFF = 0.95         # pace after an overload, as a share of the rate the server admitted
GROWTH_PER_S = 0.02    # how fast the pace rises while nothing is throttled, near the last overload
FAST_GROWTH_PER_S = 0.5   # ... and while well under it
MIN_SPAN_S = 1.0       # a burst shorter than this is measured as if it took this long
MIN_RPS = 0.1
MAX_PAUSE_S = 120.0
DEFAULT_PAUSE_S = 1.0


class Throttle:
    def __init__(self, max_rps: float | None = None):
        if max_rps is not None and max_rps <= 0:
            raise ValueError("max_rps must be positive")
        self.max_rps = max_rps
        self._rate = max_rps                    # requests per second; None: unpaced
        self._lock = threading.Lock()
        self._next = 0.0                        # when the next paced request may leave
        self._paused_until = 0.0
        self._slowed_at = float("-inf")         # when the pace was last lowered
        self._grown_at = time.monotonic()
        self._reliable = False                  # the pace comes from a full span between two 429s
        self._admitted: collections.deque = collections.deque()   # times of answers that were not 429
        self.throttled = 0                      # 429s seen
        self.slowdowns = 0                      # overloads that lowered the pace

    @property
    def rate(self) -> float | None:
        return self._rate

    def before(self) -> float:
        """Wait for this attempt's turn; returns when it left (hand it to `after`)."""
        while True:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._paused_until)
                if self._rate:
                    start = max(start, self._next)
                    self._next = start + 1.0 / self._rate
            if start <= now:
                return start
            time.sleep(start - now)
            with self._lock:
                if time.monotonic() >= self._paused_until:
                    return start
            # a 429 paused everyone while this thread waited for its turn: take a new one

    def report(self, sent_at: float, response) -> None:
        """`after` for a requests.Response."""
        self.after(sent_at, response.status_code, response.headers.get("Retry-After"))

    def after(self, sent_at: float, status: int, retry_after: str | None = None) -> None:
        """Report the answer to an attempt that `before` let go at `sent_at`."""
        now = time.monotonic()
        with self._lock:
            if status != 429:
                self._admitted.append(now)
                self._grow(now)
                return
            self.throttled += 1
            self._paused_until = max(self._paused_until, now + _pause_of(retry_after))
            if sent_at > self._slowed_at:
                self._slow_down(now)

    def _slow_down(self, now: float) -> None:
        # From one 429 to the next the server's bucket goes from empty to empty, so what it
        # admitted in between, pause included, is its rate (less, if the client did not keep
        # it busy).  The first 429 has no such span: it is measured from the first answer.
        admitted = len(self._admitted)
        since = self._slowed_at if self.slowdowns else (self._admitted[0] if admitted else now)
        seen_rate = max(1, admitted) / max(MIN_SPAN_S, now - since)
        self._reliable = self.slowdowns >= 1
        rate = BACKOFF * min(self._rate or float("inf"), seen_rate)
        self._rate = max(MIN_RPS, min(rate, self.max_rps or rate))
        self.slowdowns += 1
        self._slowed_at = now
        self._next = self._paused_until
        self._grown_at = self._paused_until
        self._admitted.clear()

    def _grow(self, now: float) -> None:
        if self._rate is None or now <= self._grown_at:
            return
        growth = GROWTH_PER_S if self._reliable else FAST_GROWTH_PER_S
        self._rate *= 1.0 + growth * (now - self._grown_at)
        if self.max_rps:
            self._rate = min(self._rate, self.max_rps)
        self._grown_at = now


def _pause_of(retry_after: str | None) -> float:
    """Retry-After in seconds (a number or an HTTP date); 1 s when absent or unreadable."""
    if not retry_after:
        return DEFAULT_PAUSE_S
    try:
        seconds = float(retry_after)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(retry_after).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return DEFAULT_PAUSE_S
    return min(MAX_PAUSE_S, max(0.0, seconds))

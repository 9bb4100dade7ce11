"""Fault injection: latency, throttling, server errors and broken connections.

A spec is one or more rules separated by `;`.  Each rule is a kind followed by
space-separated `name=value` options:

    latency ms=50                     every request waits 50 ms
    latency ms=10-200 p=0.5           half the requests wait a random 10..200 ms
    429 retry_after=1 path=experiment/metadata nth=1,3
    503 p=0.1 path=batch/*            10 % of batch requests fail with 503
    500 every=5 times=2               the 5th and 10th matching requests fail, then never again
    reset path=experiment/asset/get-asset nth=2
    truncate p=0.05
    applied-502 path=batch/logger/experiment/metric nth=1    the write is stored, then 502 answers
    applied-slow ms=3000 p=0.1        stored, then the answer waits 3 s (a client timeout fires)
    seed=42                           (a bare option) makes the random choices reproducible

Kinds: `latency`, `429`, `500`, `502`, `503`, `504`, `reset` (the response is cut mid-body and the
socket closed with RST), `truncate` (the response is cut mid-body and closed cleanly), and the
"applied" kinds, which HANDLE the request first (a write is stored) and then misbehave the way a
gateway in front of a committed backend does: `applied-500`, `applied-502`, `applied-503`,
`applied-504` (answer that status instead of the real answer), `applied-reset` (RST before any
answer byte), `applied-slow` (the real answer after `ms`, default 5000).
Options:
    path=GLOB       which requests (default all).  Matched against the URL path; a pattern
                    without a leading `/` or `*` also matches as a suffix, so
                    `experiment/metadata` matches `/api/rest/v2/experiment/metadata`.
    p=FLOAT         probability per matching request
    nth=N[,N...]    only the Nth matching request(s), counting from 1, per rule
    every=N         every Nth matching request
    times=N         fire at most N times
    ms=N | ms=A-B   latency (fixed, or uniform random in A..B); the delay of `applied-slow`
    retry_after=S   the Retry-After header of a 429 (seconds, default 1)

Status faults (429/5xx) answer before the request is handled, so nothing is stored;
`reset`, `truncate` and the `applied-*` kinds answer a request that WAS handled (the client
cannot know whether its write landed, which is what retry logic must cope with).
"""
from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field
from typing import Optional

STATUS_KINDS = ("429", "500", "502", "503", "504")
# handled first, then answered with a status, a reset or a late answer
APPLIED_STATUS = {"applied-500": 500, "applied-502": 502, "applied-503": 503, "applied-504": 504}
APPLIED_KINDS = (*APPLIED_STATUS, "applied-reset", "applied-slow")
KINDS = ("latency", *STATUS_KINDS, "reset", "truncate", *APPLIED_KINDS)
SLOW_DEFAULT_MS = 5000.0


class FaultSpecError(ValueError):
    pass


@dataclass
class Rule:
    kind: str
    path: str = "*"
    p: Optional[float] = None
    nth: frozenset = frozenset()
    every: Optional[int] = None
    times: Optional[int] = None
    ms_low: float = 0.0
    ms_high: float = 0.0
    retry_after: float = 1.0
    seen: int = 0
    fired: int = 0

    def matches(self, path: str) -> bool:
        pattern = self.path
        if fnmatch.fnmatchcase(path, pattern):
            return True
        return not pattern.startswith(("/", "*")) and fnmatch.fnmatchcase(path, "*/" + pattern)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": self.path, "p": self.p, "nth": sorted(self.nth),
                "every": self.every, "times": self.times, "ms": [self.ms_low, self.ms_high],
                "retry_after": self.retry_after, "seen": self.seen, "fired": self.fired}


@dataclass
class Decision:
    """What to do with one request."""
    latency_s: float = 0.0
    action: Optional[Rule] = None   # a 429/5xx/reset/truncate/applied-* rule, or None
    fired: list = field(default_factory=list)
    late_s: float = 0.0             # applied-slow: how long the handled answer waits


def parse(spec: Optional[str]) -> tuple[list[Rule], Optional[int]]:
    """Parse a spec string into rules (and an optional random seed)."""
    rules: list[Rule] = []
    seed = None
    for chunk in (spec or "").split(";"):
        words = chunk.split()
        if not words:
            continue
        if words[0].startswith("seed="):
            seed = _int(words[0][5:], "seed")
            continue
        kind = words[0].lower()
        if kind not in KINDS:
            raise FaultSpecError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        rule = Rule(kind)
        if kind == "applied-slow":
            rule.ms_low = rule.ms_high = SLOW_DEFAULT_MS
        for word in words[1:]:
            name, sep, value = word.partition("=")
            if not sep:
                raise FaultSpecError(f"expected name=value, got {word!r}")
            _set_option(rule, name.lower(), value)
        rules.append(rule)
    return rules, seed


def _set_option(rule: Rule, name: str, value: str) -> None:
    if name == "path":
        rule.path = value
    elif name == "p":
        rule.p = _float(value, "p")
        if not 0 <= rule.p <= 1:
            raise FaultSpecError("p must be between 0 and 1")
    elif name == "nth":
        rule.nth = frozenset(_int(v, "nth") for v in value.split(",") if v)
    elif name == "every":
        rule.every = _int(value, "every")
    elif name == "times":
        rule.times = _int(value, "times")
    elif name == "ms":
        low, _, high = value.partition("-")
        rule.ms_low = _float(low, "ms")
        rule.ms_high = _float(high, "ms") if high else rule.ms_low
    elif name == "retry_after":
        rule.retry_after = _float(value, "retry_after")
    else:
        raise FaultSpecError(f"unknown option {name!r}")


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise FaultSpecError(f"{name} must be an integer, got {value!r}") from None


def _float(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise FaultSpecError(f"{name} must be a number, got {value!r}") from None


class Faults:
    """The active rules; thread-safe, replaceable at run time."""

    def __init__(self, spec: Optional[str] = None, latency_ms: float = 0) -> None:
        self._lock = threading.Lock()
        self._base_latency = latency_ms
        self._rules: list[Rule] = []
        self._random = random.Random()
        self._spec = ""
        self.set(spec)

    def set(self, spec: Optional[str]) -> None:
        rules, seed = parse(spec)
        with self._lock:
            self._rules = rules
            self._spec = spec or ""
            self._random = random.Random(seed)

    def describe(self) -> dict:
        with self._lock:
            return {"spec": self._spec, "latency_ms": self._base_latency,
                    "rules": [r.describe() for r in self._rules]}

    def decide(self, path: str) -> Decision:
        decision = Decision(latency_s=self._base_latency / 1000.0)
        with self._lock:
            for rule in self._rules:
                if not rule.matches(path):
                    continue
                rule.seen += 1
                if not self._fires(rule):
                    continue
                if rule.kind == "latency":
                    ms = self._random.uniform(rule.ms_low, rule.ms_high)
                    decision.latency_s += ms / 1000.0
                elif decision.action is None:
                    decision.action = rule
                    if rule.kind == "applied-slow":
                        decision.late_s = self._random.uniform(rule.ms_low, rule.ms_high) / 1000.0
                else:
                    continue
                rule.fired += 1
                decision.fired.append(rule.kind)
        return decision

    def _fires(self, rule: Rule) -> bool:
        if rule.times is not None and rule.fired >= rule.times:
            return False
        if rule.nth and rule.seen not in rule.nth:
            return False
        if rule.every and rule.seen % rule.every:
            return False
        if rule.p is not None and self._random.random() >= rule.p:
            return False
        return True

"""Deterministic crash points for kill tests (like kopia's Kill9 tests, but exact).

COMETX_MIRROR_FAULT=name[:N] makes the N-th (default first) pass through
`hit(name)` end the process at once with exit code 137, as kill -9 would.
"""
from __future__ import annotations

import os
from collections import Counter

_seen: Counter = Counter()


def hit(name: str) -> None:
    spec = os.environ.get("COMETX_MIRROR_FAULT")
    if not spec:
        return
    want, _, nth = spec.partition(":")
    if want != name:
        return
    _seen[name] += 1
    if _seen[name] >= int(nth or 1):
        os._exit(137)

"""Canonical JSON: the one byte form of our own objects, so equal content hashes equally."""
from __future__ import annotations

import json
import math
from typing import Any


def _clean(value: Any) -> Any:
    # NaN and infinities are not JSON; keep them distinguishable as strings.
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    return json.dumps(_clean(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def loads(data: bytes) -> Any:
    return json.loads(data)

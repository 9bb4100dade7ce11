"""Strict mode: Comet's habits that a friendlier server smooths over.

- metric points come back in no particular order ("values in backend response are
  not sorted", comet_ml's response helper); the order is a fixed shuffle per
  experiment, so the same points always read back the same way;
- a point's `offset` is a large 64-bit number;
- the numbers of `metrics/summary` are Java-style strings (`8.63224093336612E-4`);
- `experiment/asset/get-asset?allow301=true` answers a redirect to a presigned URL
  that refuses any request carrying an Authorization header, as object storage does;
- asset list entries carry only the documented fields (no `epoch`, `groupingName`,
  `extension`), and `link`, `compressedAssetLink`, `s3Link` are three different URLs.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import os
import random
from decimal import Decimal
from typing import Any, Optional
from urllib.parse import urlencode

OFFSET_BASE = 7_000_000_000_000_000_000       # offsets above 2**62, below 2**63
UNDOCUMENTED_ASSET_FIELDS = ("epoch", "groupingName", "extension")
_SECRET = os.urandom(16)                        # signs presigned URLs for this process


def shuffled(points: list, seed: str) -> list:
    out = list(points)
    random.Random(seed).shuffle(out)
    return out


def big_offset(offset: Optional[int]) -> Optional[int]:
    return None if offset is None else OFFSET_BASE + offset


def java_double(value: Any) -> Any:
    """A number as Java's Double.toString writes it; anything else unchanged."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return value
    if isinstance(value, bool) or math.isnan(x) or math.isinf(x):
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(str(x), value)
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        text = repr(x)
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(x)).as_tuple()     # the shortest digits that round-trip
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) + exponent - 1
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{power}"


def summary_numbers(row: dict) -> dict:
    for name in ("valueMax", "valueMin", "valueCurrent"):
        if row.get(name) is not None:
            row[name] = java_double(row[name])
    return row


def _signature(experiment_key: str, asset_id: str) -> str:
    return hmac.new(_SECRET, f"{experiment_key}/{asset_id}".encode(), hashlib.sha256).hexdigest()


def presigned_url(base_url: str, experiment_key: str, asset_id: str) -> str:
    query = urlencode({"experimentKey": experiment_key, "assetId": asset_id,
                       "X-Amz-Signature": _signature(experiment_key, asset_id)})
    return f"{base_url}/api/rest/v2/experiment/asset/presigned?{query}"


def signature_ok(experiment_key: str, asset_id: str, signature: str) -> bool:
    return hmac.compare_digest(_signature(experiment_key or "", asset_id or ""), signature or "")


def asset_view(view: dict, base_url: str) -> dict:
    for name in UNDOCUMENTED_ASSET_FIELDS:
        view.pop(name, None)
    if not view.get("remote") and view.get("experimentKey"):
        params = {"experimentKey": view["experimentKey"], "assetId": view["assetId"]}
        link = f"{base_url}/api/rest/v2/experiment/asset/get-asset?{urlencode(params)}"
        view["link"] = link + "&isCompressed=false"
        view["compressedAssetLink"] = link + "&isCompressed=true"
        view["s3Link"] = presigned_url(base_url, view["experimentKey"], view["assetId"])
    return view

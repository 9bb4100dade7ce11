"""Small helpers shared by the offline and online W&B readers."""
from __future__ import annotations

import base64
import json
import math
import os
from datetime import datetime, timezone
from typing import Any

import xxhash

from ...model import double_text

SOURCE = "wandb"
OFFLINE_ORIGIN = "offline"
DEFAULT_PROJECT = "uncategorized"    # what W&B calls a run logged without a project
OFFLINE_WORKSPACE = "wandb-offline"  # offline runs often carry no entity (see sources/offline_names.py)
LEGACY_WORKSPACE = "offline"         # what mirrors fetched before gave them; kept where present

# W&B bookkeeping keys that are not user data.
INTERNAL_KEYS = ("_wandb",)
HISTORY_AXES = ("_step", "_timestamp", "_runtime")

# How a stored history/system page spells non-finite floats: as W&B itself does, with the
# bare JSON tokens NaN, Infinity, -Infinity, so a float NaN and the string "nan" stay apart.
# Pages without this mark (older fetches) spelled them "nan", "inf", "-inf".
FLOAT_TOKENS = "json-tokens"


def history_jsonl(rows: list[dict]) -> bytes:
    """History or system rows as stored: one compact, key-sorted JSON line per row."""
    return b"".join(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                               allow_nan=True).encode("utf-8") + b"\n" for r in rows)


def exp_label(workspace: str, project: str, run_id: str) -> str:
    return f"experiment/{workspace}/{project}/{run_id}"


def artifact_label(workspace: str, project: str, name: str) -> str:
    # W&B artifact collections live in a project, so the project is part of the label.
    return f"artifact/{workspace}/{project}/{name}"


def value_str(value: Any) -> str | None:
    """The string Comet shows for a logged value."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return double_text(value)        # "NaN", "Infinity": as the SDK sends them
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def flatten(tree: dict, prefix: str = "", stop=None) -> list[tuple[str, Any]]:
    """Nested dicts to dotted names, as Comet shows nested parameters ("optimizer.lr").

    `stop(value)` returning True keeps a dict whole (W&B media objects).
    """
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and not (stop and stop(value)):
            out.extend(flatten(value, name + ".", stop))
        else:
            out.append((name, value))
    return out


def is_media(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("_type"), str)


def iso_ms(text: str | None) -> int | None:
    """An ISO-8601 time from W&B (with or without 'Z', often without a zone) to epoch ms."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)   # W&B server times are UTC without a suffix
    return int(dt.timestamp() * 1000)


def b64md5_to_hex(digest: str | None) -> str | None:
    if not digest:
        return None
    try:
        raw = base64.b64decode(digest, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == 16 else None


def store_file(mirror, path: str | os.PathLike) -> tuple[str, int]:
    """Store a file; an unchanged one writes nothing (ObjectStore.put_file_once)."""
    return mirror.objects.put_file_once(path)


def store_bytes(mirror, data: bytes) -> dict:
    object_id = xxhash.xxh3_128(data).hexdigest()
    if not mirror.objects.exists(object_id):
        object_id = mirror.objects.put_bytes(data)
    return {"object": object_id, "size": len(data)}


def store_json(mirror, value: Any) -> dict:
    from ...store import canonical
    return store_bytes(mirror, canonical.dumps(value))

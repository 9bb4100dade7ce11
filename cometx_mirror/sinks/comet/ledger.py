"""The push ledger and the identities that make a push idempotent.

Three things tie a destination experiment to its source, each enough on its own:

1. the destination key is *derived*: xxh3-128 of (destination workspace, project,
   source experiment id).  A crashed push that created the experiment but wrote
   no ledger row finds it again by key: no duplicate is possible;
2. a `push_ledger` row in the index (destination, source_exp_id) -> destination
   key, state (intent -> created -> complete) and the manifest pushed;
3. a marker `others` entry on the destination experiment, written last, naming the
   source experiment and the manifest: a lost index is rebuilt from it.

`destination` in the ledger is "<root url>/<workspace>/<project>" so one source
experiment may be pushed to several projects or instances.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

import xxhash

from ...index.db import open_read, open_write

_HEX32 = re.compile(r"^[0-9a-f]{32}$")

INTENT, CREATED, COMPLETE, SYMLINKED = "intent", "created", "complete", "symlinked"


def dest_experiment_key(workspace: str, project: str, source_exp_id: str) -> str:
    return derived_id(workspace, project, source_exp_id)


def derived_id(*parts: str) -> str:
    """A 32-hex id fixed by its parts: the same upload after a crash lands on the same id."""
    return xxhash.xxh3_128_hexdigest("\0".join(parts).encode())


def asset_id_mapper(dest_key: str, keep_source_ids: bool):
    """Destination asset ids: the source's own where they cannot clash (another instance),
    else derived from the destination key, so a retry re-uploads under the same id."""
    def asset_id_of(asset) -> str:
        if keep_source_ids and _HEX32.match(asset.asset_id or ""):
            return asset.asset_id
        return derived_id(dest_key, asset.asset_id)
    return asset_id_of


def destination_id(root: str, workspace: str, project: str = "") -> str:
    return f"{root.rstrip('/')}/{workspace}" + (f"/{project}" if project else "")


@dataclass
class LedgerRow:
    destination: str
    source_exp_id: str
    source_manifest_id: str | None
    dest_workspace: str
    dest_project: str
    dest_key: str
    state: str
    detail: dict


class Ledger:
    """Reads once up front; writes go one short write connection at a time (readers get a turn)."""

    def __init__(self, index_path):
        self.index_path = index_path
        self._lock = threading.Lock()

    def load(self, destinations: Iterable[str]) -> dict[tuple[str, str], LedgerRow]:
        dests = sorted(set(destinations))
        if not dests:
            return {}
        with open_read(self.index_path) as con:
            rows = con.execute(
                "SELECT destination, source_exp_id, source_manifest_id, dest_workspace, dest_project, "
                "dest_key, state, detail FROM push_ledger WHERE destination IN "
                f"({', '.join('?' for _ in dests)})", dests).fetchall()
        out = {}
        for r in rows:
            row = LedgerRow(*r[:7], detail=json.loads(r[7]) if r[7] else {})
            out[(row.destination, row.source_exp_id)] = row
        return out

    def write(self, row: LedgerRow) -> None:
        with self._lock, open_write(self.index_path) as con:
            con.execute("INSERT OR REPLACE INTO push_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [row.destination, row.source_exp_id, row.source_manifest_id, row.dest_workspace,
                         row.dest_project, row.dest_key, row.state,
                         datetime.now(timezone.utc).replace(tzinfo=None),
                         json.dumps(row.detail, sort_keys=True) if row.detail else None])

    def dest_keys_by_source_key(self, root: str) -> dict[str, str]:
        """source experiment key -> destination key, for artifacts and registry versions."""
        with open_read(self.index_path) as con:
            rows = con.execute("SELECT source_exp_id, dest_key FROM push_ledger WHERE destination LIKE ? "
                               "AND state IN (?, ?, ?)",
                               [root.rstrip("/") + "/%", CREATED, COMPLETE, SYMLINKED]).fetchall()
        return {sid.rsplit("/", 1)[-1]: key for sid, key in rows if key}

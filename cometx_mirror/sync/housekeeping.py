"""Reindex under the write lock."""
from __future__ import annotations

from ..store.mirror import Mirror
from . import indexer


def reindex(mirror: Mirror) -> int:
    with mirror.write_lock("reindex"):
        return indexer.rebuild(mirror)

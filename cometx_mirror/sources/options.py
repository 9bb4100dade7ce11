"""The source protocol's types: what a fetch was asked to do (FetchOptions), and what it did (FetchResult)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FetchOptions:
    api_key: str | None = None          # never stored; sources resolve their own defaults
    url: str | None = None              # server override (Comet url_override, W&B base url, ...)
    resources: tuple[str, ...] = ()     # empty = all
    ignore: tuple[str, ...] = ()
    filename: str | None = None
    asset_type: str | None = None
    query: str | None = None
    use_name: bool = False
    parallel: int = 4
    max_rps: float | None = None        # a ceiling on requests per second (Comet)
    ask: bool = False
    sync: str = "all"
    quick: bool = False
    fetch_remote: bool = False
    asset_bytes: bool = True            # False: list assets, download none (check without --read-data)
    list_only: bool = False
    debug: bool = False
    allow_shrink: bool = False          # let a smaller version replace a stored entity (sync/shrink.py)
    project: tuple[str, str] | None = None   # --project WS/NAME for offline runs (sources/offline_names.py)
    progress: Any = None                # a callable(event: str, **info) or None
    confirm: Any = None                 # a callable(question) -> bool, for --ask


@dataclass
class FetchResult:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    objects_written: int = 0
    bytes_written: int = 0
    requests: int = 0
    requests_note: str = ""        # how to read `requests` where part of them is not ours to see
    sampled_metrics: int = 0       # Comet metrics the mirror holds only a sample of
    snapshots: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)     # one line each
    listing: list[dict] = field(default_factory=list)   # for --list

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}

"""W&B source: online runs through `wandb.Api`, offline run folders from disk.

`fetch --from wandb PATH`: an existing local PATH is a `wandb/` folder or one
run folder (read directly, see offline.py); anything else is
ENTITY[/PROJECT[/RUN_ID]] on a W&B server (see online.py).
"""
from __future__ import annotations

import os

from . import normalize  # noqa: F401  (registers the normalizers)
from ..options import FetchResult

NAMES_OFFLINE_RUNS = True    # takes `fetch --project` (run folders; online runs refuse it)


def _looks_local(path: str) -> bool:
    return os.path.exists(path) or path.startswith((".", "/", "~"))


def fetch(mirror, path: str, options, commit) -> FetchResult:
    result = FetchResult()
    if _looks_local(path):
        from .offline import fetch_offline
        fetch_offline(mirror, path, options, commit, result)
    else:
        from ..offline_names import refuse_project
        refuse_project("W&B", "online runs", options.project)
        from .online import fetch_online
        fetch_online(mirror, path, options, commit, result)
    return result

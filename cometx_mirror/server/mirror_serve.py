"""Starting the Comet-compatible server over a mirror (`serve --mirror`)."""
from __future__ import annotations

from typing import Optional

from ..store.mirror import Mirror
from .mirror_access import choose_key
from .mirror_state import MirrorState
from .runner import start_vendor


def serve_mirror(path: str, host: str = "127.0.0.1", port: int = 0, api_key: Optional[str] = None,
                 snapshot: Optional[str] = None):
    """A running server (a ServerHandle) answering from the mirror at `path`, read-only.
    Start-up reads nothing; the catalog is read on a thread next (server/mirror_state.py)."""
    key = choose_key(host, api_key)
    state = MirrorState(Mirror.open(path), api_key=key, snapshot=snapshot)
    try:
        handle = start_vendor(None, state, host=host, port=port)
        state.read_in_background()
        return handle
    except BaseException:
        state.close()
        raise

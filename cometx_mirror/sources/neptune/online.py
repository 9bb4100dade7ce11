"""`fetch --from neptune WORKSPACE[/PROJECT]`: a self-hosted Neptune through neptune-query.

Neptune's SaaS is gone (data deleted March 2026), so this only serves
self-hosted servers. The token (NEPTUNE_API_TOKEN or --api-key) names the server
(base64 JSON with api_address/api_url); --url overrides it. Before importing
neptune-query we check the server answers on its port, so a dead address is
one clear line rather than a retry storm. Never logs or stores the token.
"""
from __future__ import annotations

import base64
import json
import os
import socket
from urllib.parse import urlparse

from .. import SourceError


def _server(token: str | None, url: str | None) -> str:
    if url:
        return url
    if not token:
        raise SourceError("neptune: reading a server needs NEPTUNE_API_TOKEN (or --api-key) and a self-hosted URL")
    try:
        info = json.loads(base64.b64decode(token + "=" * (-len(token) % 4)))
        return info.get("api_address") or info["api_url"]
    except (ValueError, KeyError, TypeError):
        raise SourceError("neptune: NEPTUNE_API_TOKEN is not a Neptune API token") from None


def check_reachable(url: str, timeout: float = 3.0) -> None:
    u = urlparse(url if "://" in url else f"https://{url}")
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((u.hostname, port), timeout=timeout).close()
    except OSError:
        raise SourceError(f"neptune: no Neptune server reachable at {u.scheme}://{u.hostname}:{port} "
                          "(the hosted service shut down in March 2026; export with neptune-exporter "
                          "or point --url at a self-hosted server)") from None


def fetch(mirror, target: str, options, commit):
    token = options.api_key or os.environ.get("NEPTUNE_API_TOKEN")
    check_reachable(_server(token, options.url))
    # A reachable server: listing and reading through neptune-query is not built yet
    # (no server to test against). Say so rather than pretend.
    raise SourceError("neptune: reading a live self-hosted server is not supported yet; "
                      "export it with neptune-exporter and fetch the export folder")

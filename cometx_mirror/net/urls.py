"""URLs fit to print: a password in `scheme://user:password@host/` never leaves in a message."""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# scheme://user:password@ — the password is what runs up to the @ that ends the authority
_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^/@\s:]*):[^/@\s]*@", re.I)


def redact(text: str) -> str:
    """`text` (a URL, or a message quoting URLs) with every password replaced by ***."""
    return _PASSWORD.sub(r"\1:***@", text)


def without_userinfo(url: str) -> str:
    """scheme://host[:port]/path with no user or password: a name for a server."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"      # an IPv6 literal
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def host_of(url: str) -> str:
    """host[:port] of `url`, no user or password."""
    return urlsplit(without_userinfo(url)).netloc

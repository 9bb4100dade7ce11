"""Comet credentials, found where comet_ml looks for them, in its order.

explicit argument > COMET_<NAME> environment > ./.env > $COMET_CONFIG >
./.comet.config > ~/.comet.config.  Read here rather than through comet_ml's
own config, whose import alone costs seconds.  A smart key
("<key>*<base64 json with baseUrl>") supplies the server when nothing else does.
The key is only ever sent in the Authorization header: never stored or printed.
"""
from __future__ import annotations

import base64
import configparser
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .urls import host_of, redact

DEFAULT_URL = "https://www.comet.com/clientlib/"


class CredentialsError(Exception):
    pass


@dataclass(frozen=True)
class CometCredentials:
    api_key: str
    clientlib_url: str        # e.g. http://127.0.0.1:8080/clientlib/

    @property
    def root_url(self) -> str:
        parts = urlsplit(self.clientlib_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def rest_url(self) -> str:
        return self.root_url + "/api/rest/v2/"

    @property
    def origin(self) -> str:
        """A name for the server in refs and the ledger: host[:port], no user or password."""
        return host_of(self.clientlib_url)

    @property
    def shown_url(self) -> str:
        """The server's URL for messages: a password in it is ***."""
        return redact(self.root_url)

    def __repr__(self) -> str:  # keep the key (and a password in the URL) out of tracebacks and logs
        return f"CometCredentials(api_key=***, clientlib_url={redact(self.clientlib_url)!r})"


def _dotenv(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                out[k.strip().removeprefix("export ").strip()] = v.strip().strip("'\"")
    except OSError:
        pass
    return out


def _config_file(path: Path, name: str) -> str | None:
    if path.is_dir():
        path = path / ".comet.config"
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return None
    return parser.get("comet", name, fallback=None) or None


def _lookup(name: str) -> str | None:
    env_name = "COMET_" + name.upper()
    if os.environ.get(env_name):
        return os.environ[env_name]
    dotenv = _dotenv(Path.cwd() / ".env")
    if dotenv.get(env_name):
        return dotenv[env_name]
    files = []
    if os.environ.get("COMET_CONFIG"):
        files.append(Path(os.path.expanduser(os.environ["COMET_CONFIG"])))
    files += [Path.cwd() / ".comet.config", Path.home() / ".comet.config"]
    for f in files:
        value = _config_file(f, name)
        if value:
            return value
    return None


def _smart_key_url(api_key: str) -> str | None:
    if "*" not in api_key:
        return None
    encoded = api_key.split("*", 1)[1]
    try:
        data = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
        return data["baseUrl"].rstrip("/") + "/clientlib/"
    except (ValueError, KeyError, TypeError):
        raise CredentialsError("the API key looks like a smart key but its server part is unreadable") from None


def _clientlib(url: str) -> str:
    url = url.strip()
    if "://" not in url:
        raise CredentialsError(f"the server URL {redact(url)!r} needs a scheme (http:// or https://)")
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/clientlib"):
        path = path + "/clientlib"
    return f"{parts.scheme}://{parts.netloc}{path}/"


def resolve(api_key: str | None = None, url_override: str | None = None,
            env_prefix: str = "") -> CometCredentials:
    """Find the key and server; `env_prefix` (e.g. "TO_") is not used by comet_ml but lets
    push read a second set without clashing."""
    key = api_key or (os.environ.get(f"COMET_{env_prefix}API_KEY") if env_prefix else None) or _lookup("api_key")
    if not key:
        raise CredentialsError("no Comet API key: pass --api-key, set COMET_API_KEY, "
                               "or put api_key in ~/.comet.config")
    url = url_override or (os.environ.get(f"COMET_{env_prefix}URL_OVERRIDE") if env_prefix else None) \
        or _lookup("url_override") or _smart_key_url(key) or DEFAULT_URL
    return CometCredentials(api_key=key, clientlib_url=_clientlib(url))

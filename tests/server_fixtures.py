"""Pytest fixtures for the Comet-compatible server (cometx_mirror.server), for any test
that needs a real Comet endpoint on 127.0.0.1 and the real comet_ml SDK pointed at it.

Fixtures
    comet_server        function-scoped, empty server; os.environ points comet_ml at it
                        (COMET_URL_OVERRIDE/COMET_API_KEY/COMET_WORKSPACE), HOME and cwd are
                        temp dirs.  Restored afterwards.
    seeded_server       session-scoped server holding `seed(size="small")` data; its
                        `.seeded` attribute is the seeder's description (keys, names, counts).
                        Does NOT change os.environ: use `seeded_env` (or `comet_environment`).
    seeded_env          function-scoped: os.environ pointed at `seeded_server` (isolated HOME/cwd);
                        yields the server.
    fast_fail_env       function-scoped: SDK retries and timeouts turned down, for fault tests.

Helpers
    comet_environment(server, home, cwd=None, user=None, **extra)   context manager
    SDK_QUIET           Experiment(...) options that switch off auto-logging (fast, deterministic)

Reads after writes must use `comet_ml.API(cache=False)` (the default API caches GETs).
"""
from __future__ import annotations

import contextlib
import os

import pytest

from cometx_mirror.server import start_server

SDK_QUIET = dict(auto_output_logging=False, log_env_details=False, log_code=False, log_git_metadata=False,
                 log_git_patch=False, log_env_gpu=False, log_env_cpu=False, log_env_host=False,
                 auto_param_logging=False, auto_metric_logging=False, parse_args=False,
                 display_summary_level=0)

BASE_ENV = {
    "COMET_ERROR_TRACKING_ENABLE": "false",   # no Sentry
    "COMET_DISABLE_ANNOUNCEMENT": "true",
}

# Small retry settings so an injected fault surfaces in a second, not after ~14 s of backoff.
FAST_FAIL_ENV = {
    "COMET_HTTP_SESSION_RETRY_TOTAL": "0",
    "COMET_HTTP_SESSION_RETRY_BACKOFF_FACTOR": "0",
    "COMET_GET_OR_ADD_EXPERIMENT_RETRY_ATTEMPTS": "1",
    "COMET_GET_OR_ADD_EXPERIMENT_RETRY_BACKOFF_FACTOR": "0",
    "COMET_TIMEOUT_HTTP": "10",
}


@contextlib.contextmanager
def comet_environment(server, home, cwd=None, user=None, **extra):
    """Point the comet_ml SDK at `server` (os.environ and cwd), restoring both afterwards."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    for name in list(os.environ):
        if name.startswith("COMET_"):
            del os.environ[name]   # a developer's settings must not leak into tests
    os.environ.update(BASE_ENV)
    os.environ.update(server.env(user))
    os.environ["HOME"] = str(home)
    os.environ.update({k: str(v) for k, v in extra.items()})
    os.chdir(str(cwd or home))
    try:
        yield server
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


@pytest.fixture
def comet_server(tmp_path):
    """An empty server, with the SDK pointed at it for this test."""
    server = start_server()
    home = tmp_path / "home"
    home.mkdir()
    try:
        with comet_environment(server, home):
            yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seeded_server(tmp_path_factory):
    """A server seeded once per session through the real SDK (size "small")."""
    from cometx_mirror.server.seed import seed
    server = start_server()
    home = tmp_path_factory.mktemp("seed-home")
    try:
        with comet_environment(server, home):
            server.seeded = seed(server, size="small")
        yield server
    finally:
        server.stop()


@pytest.fixture
def seeded_env(seeded_server, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with comet_environment(seeded_server, home):
        yield seeded_server


@pytest.fixture
def fast_fail_env(monkeypatch):
    for name, value in FAST_FAIL_ENV.items():
        monkeypatch.setenv(name, value)
    return FAST_FAIL_ENV

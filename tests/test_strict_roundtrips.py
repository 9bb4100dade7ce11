"""The key fetch and push round trips of test_fetch_comet.py and test_push_roundtrip.py, run again
with the servers in strict mode (server/strict.py: unsorted points, 64-bit offsets, Java-style
summary numbers, asset redirects, documented asset fields only), so neither fetch nor push
depends on what only our friendly server does.  The checks are those tests' own functions."""
from __future__ import annotations

import contextlib
import shutil

import pytest
import test_fetch_comet as fetch_tests
import test_push_roundtrip as push_tests
from push_fixtures import fetch
from test_fetch_comet import comet  # noqa: F401  (the fixture: two SDK-logged experiments)

from cometx_mirror.server.runner import start_server


@contextlib.contextmanager
def strict(server):
    """`server` in strict mode for a while (session fixtures are shared with other files)."""
    before = server.configure()["strict"]
    server.configure(strict=True)
    try:
        yield server
    finally:
        server.configure(strict=before)


@pytest.fixture
def strict_comet(comet):  # noqa: F811
    with strict(comet):
        yield comet


@pytest.fixture
def strict_b():
    server = start_server(strict=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def strict_mirror_a(seeded, tmp_path_factory):
    """The push tests' server A fetched while strict."""
    path = tmp_path_factory.mktemp("strict-a") / "m"
    with strict(seeded):
        fetch(seeded, path, seeded.workspace)
    return path


@pytest.fixture
def mirror_copy(strict_mirror_a, tmp_path):
    path = tmp_path / "mirror-a"
    shutil.copytree(strict_mirror_a, path)
    return path


def test_first_fetch_from_a_strict_server_stores_what_the_sdk_logged(strict_comet, tmp_path):
    fetch_tests.test_first_fetch_stores_what_the_sdk_logged(strict_comet, tmp_path)


def test_refetch_from_a_strict_server_costs_three_requests_each(strict_comet, tmp_path):
    fetch_tests.test_refetch_of_unchanged_experiments_costs_three_requests_each(strict_comet, tmp_path)


def test_strict_to_strict_round_trip_is_lossless_and_a_repeat_sends_no_write(seeded, mirror_copy, strict_b,
                                                                             tmp_path):
    with strict(seeded):
        push_tests.test_round_trip_to_another_server_is_lossless_and_a_repeat_sends_no_write(
            seeded, mirror_copy, strict_b, tmp_path)


def test_the_rich_seeded_workspace_round_trips_strict_to_strict(seeded_server, strict_b, tmp_path):
    with strict(seeded_server):
        push_tests.test_the_rich_seeded_workspace_round_trips(seeded_server, strict_b, tmp_path)

"""The key fetch and push round trips against a server in strict mode (Comet's habits:
unsorted points with repeated timestamps, 64-bit offsets, Java-style summary numbers,
asset redirects to presigned URLs, documented asset fields only), so neither depends
on what only our friendly server does."""
from __future__ import annotations

import os

import pytest
import requests

from cometx_mirror.server import start_server
from cometx_mirror.server.seed import long_run
from push_fixtures import cli, differences, fetch, last_json, push, seed_experiment
from server_fixtures import comet_environment

# Strict answers carry no asset epoch (Comet's list has none), so that column is compared apart.
EXPERIMENT_TABLES = ("experiments", "params", "metrics", "others", "tags", "system_details", "texts")


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    server = start_server(strict=True)
    home = tmp_path_factory.mktemp("home")
    with comet_environment(server, home):
        import comet_ml
        server.keys = [seed_experiment(comet_ml, "proj-s", n, points=300) for n in range(2)]
    # 4 points per millisecond: repeated timestamps, as a fast training loop logs them
    server.long = long_run(server, points=3_000, project="proj-s", name="fast-loop", per_ms=4)
    yield server
    server.stop()


def _rest(server, path, **params):
    return requests.get(f"{server.url}/api/rest/v2/{path}", params=params,
                        headers={"Authorization": server.api_key}, timeout=30, allow_redirects=False)


def test_strict_answers_look_like_comets(strict_server):
    key = strict_server.long["key"]
    points = _rest(strict_server, "experiment/metrics/get-all", experimentKey=key).json()["metrics"]
    steps = [p["step"] for p in points if p["metricName"] == "loss"]
    assert sorted(steps) == list(range(3_000)) and steps != sorted(steps)      # every point, unsorted
    assert min(p["offset"] for p in points) > 2 ** 62
    summary = _rest(strict_server, "experiment/metrics/summary", experimentKey=key).json()["values"]
    assert {r["name"]: r["valueMin"] for r in summary}["loss"] == "3.33333333E-4"    # Java's Double.toString
    assets = _rest(strict_server, "experiment/asset/list", experimentKey=strict_server.keys[0],
                   type="all").json()["assets"]
    assert assets and not {"epoch", "groupingName", "extension"} & set(assets[0])
    # an uploaded asset's three links differ (a remote one's are its URI: the listing's order is the uploads')
    stored = next(a for a in assets if not a["remote"])
    assert len({stored["link"], stored["compressedAssetLink"], stored["s3Link"]}) == 3


def test_allow301_redirects_to_a_presigned_url_that_refuses_the_api_key(strict_server):
    key = strict_server.keys[0]
    asset = next(a for a in _rest(strict_server, "experiment/asset/list", experimentKey=key).json()["assets"]
                 if a["fileName"] == "model.ckpt")
    answer = _rest(strict_server, "experiment/asset/get-asset", experimentKey=key, assetId=asset["assetId"],
                   allow301="true")
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert requests.get(location, headers={"Authorization": strict_server.api_key}, timeout=30).status_code == 400
    assert requests.get(location, timeout=30).content == b"\x00\x01" * 500
    part = requests.get(location, headers={"Range": "bytes=2-5"}, timeout=30)
    assert (part.status_code, part.content) == (206, b"\x00\x01\x00\x01")
    plain = _rest(strict_server, "experiment/asset/get-asset", experimentKey=key, assetId=asset["assetId"])
    assert plain.content == b"\x00\x01" * 500                 # without allow301: the bytes


def test_fetch_from_a_strict_server_holds_what_a_friendly_one_gives(strict_server, tmp_path):
    ws = strict_server.workspace
    strict_mirror = tmp_path / "strict"
    result = last_json(fetch(strict_server, strict_mirror, f"{ws}/proj-s"))
    assert (result["new"], result["failed"], result["errors"]) == (3, 0, [])
    strict_server.configure(strict=False)
    try:
        friendly = tmp_path / "friendly"
        fetch(strict_server, friendly, f"{ws}/proj-s")
    finally:
        strict_server.configure(strict=True)
    assert differences(strict_mirror, friendly, EXPERIMENT_TABLES) == {}
    # fetching again from the strict server changes nothing: its shuffle is stable
    again = last_json(fetch(strict_server, strict_mirror, f"{ws}/proj-s"))
    assert (again["new"], again["changed"], again["unchanged"]) == (0, 0, 3)
    # a --query on a metric reads the Java-style summary numbers
    hits = last_json(fetch(strict_server, tmp_path / "q", f"{ws}/proj-s", "--query", 'Metric("loss") < 0.5'))
    assert hits["new"] == 3


def test_push_to_a_strict_server_round_trips_and_repeats_send_nothing(strict_server, tmp_path):
    ws = strict_server.workspace
    mirror = tmp_path / "m"
    fetch(strict_server, mirror, f"{ws}/proj-s")
    dest = start_server(strict=True)
    try:
        first = last_json(push(dest, mirror, f"{ws}/proj-s", f"{dest.workspace}/copy"))
        assert (first["new"], first["failed"], first["errors"]) == (3, 0, [])
        back = tmp_path / "back"
        fetch(dest, back, f"{dest.workspace}/copy")
        assert differences(mirror, back, EXPERIMENT_TABLES + ("assets",)) == {}
        dest.reset_counters()
        again = last_json(push(dest, mirror, f"{ws}/proj-s", f"{dest.workspace}/copy"))
        assert (again["unchanged"], again["new"]) == (3, 0)
    finally:
        dest.stop()
    assert os.path.exists(back / "index.duckdb")
    assert cli("verify", "--mirror", back).exit_code == 0

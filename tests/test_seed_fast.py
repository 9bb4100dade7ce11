"""The benchmarks' fast seeding (server.seed.build_workspace) builds what REST uploads build.

Two projects on one server: one filled through the SDK's own ingestion endpoints (the
REST batches bench_workspace used to send), one built directly in the server's state.
Read back through comet_ml.API, the two are the same but for ids and times."""
from __future__ import annotations

import hashlib
import json
import re

import comet_ml
import pytest

from bench.bench_workspace import seed as rest_seed
from cometx_mirror.server.blobs import BlobStore
from cometx_mirror.server.runner import start_server
from cometx_mirror.server.seed import add_big_asset, build_workspace
from server_fixtures import comet_environment

VOLATILE = re.compile(r'"(createdAt|startTimeMillis|endTimeMillis|durationMillis|timestamp|lastUpdated|'
                      r'updated\w*|offset|server_timestamp|file_path)": ?"?[^,}"]*"?')


def _normalized(value, keys: list[str], project: str) -> str:
    text = json.dumps(value, sort_keys=True).replace(f'"{project}"', '"PROJECT"')
    for n, key in enumerate(keys):
        text = text.replace(key, f"KEY{n}")
    text = re.sub(r"[0-9a-f]{32}", "ID", text)
    return VOLATILE.sub(lambda m: f'"{m.group(1)}": "T"', text)


def _read_project(api, workspace: str, project: str) -> str:
    exps = sorted(api.get_experiments(workspace, project), key=lambda e: e.key)
    keys = [e.key for e in exps]
    seen = []
    for e in exps:
        assets = sorted(e.get_asset_list(), key=lambda a: a["fileName"])
        seen.append({"assets": assets,
                     "asset_bytes": [hashlib.sha256(e.get_asset(a["assetId"])).hexdigest() for a in assets],
                     "metrics": sorted(e.get_metrics(), key=lambda m: (m["metricName"], m["step"])),
                     "summary": sorted(e.get_metrics_summary(), key=lambda m: m["name"]),
                     "parameters": sorted(e.get_parameters_summary(), key=lambda p: p["name"]),
                     "metadata": e.get_metadata()})
    return _normalized(seen, keys, project)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    server = start_server()
    rest_seed(server, 2, 7, project="rest", fast=False)
    build_workspace(server, "fast", 2, 7)
    home = tmp_path_factory.mktemp("home")
    try:
        with comet_environment(server, home):
            api = comet_ml.API(cache=False)
            yield (_read_project(api, server.workspace, "rest"), _read_project(api, server.workspace, "fast"))
    finally:
        server.stop()


def test_fast_seeding_reads_back_like_rest_uploads(both):
    rest, fast = both
    assert '"metricName": "loss"' in rest and '"fileName": "blob-5.bin"' in rest
    assert fast == rest


def test_a_big_asset_is_streamed_into_the_blob_folder(tmp_path):
    server = start_server(data_dir=str(tmp_path / "src"))
    try:
        (key,) = build_workspace(server, "big", 1, 3, assets=0)
        size = (3 << 20) + 5                      # not a whole number of chunks
        asset_id = add_big_asset(server, key, "big.bin", size)
        with comet_environment(server, tmp_path):
            data = comet_ml.API(cache=False).get_experiment_by_key(key).get_asset(asset_id)
        assert len(data) == size
        chunks = {data[i:i + (1 << 20)] for i in range(0, size, 1 << 20)}
        assert len(chunks) == 4                   # every block differs: nothing dedups the bytes away
        assert BlobStore().put(data) == hashlib.sha256(data).hexdigest()
        assert sum(f.stat().st_size for f in (tmp_path / "src" / "blobs").rglob("*") if f.is_file()) == size
    finally:
        server.stop()


def test_put_stream_names_bytes_like_put(tmp_path):
    store = BlobStore(str(tmp_path))
    parts = [b"abc", b"", b"defg" * 1000]
    digest = store.put_stream(iter(parts))
    assert digest == store.put(b"".join(parts)) == hashlib.sha256(b"".join(parts)).hexdigest()
    assert store.get(digest) == b"".join(parts)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [digest]   # no temporary file left

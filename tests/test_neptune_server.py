"""The loopback Neptune server as the real neptune-query client sees it."""
from __future__ import annotations

import math

import neptune_query as nq
import pytest
from neptune_query import runs as nq_runs

from cometx_mirror.server.neptune import make_api_token, start_neptune_server
from cometx_mirror.server.neptune.seed import seed

P = "ws/proj"


@pytest.fixture(scope="module")
def neptune():
    srv = start_neptune_server()
    seed(srv.data, points=1200)
    nq.set_api_token(srv.api_token)
    yield srv
    srv.stop()


def test_runs_experiments_and_attribute_definitions(neptune):
    assert sorted(nq_runs.list_runs(project=P)) == ["run-1", "run-2", "run-3"]
    assert sorted(nq.list_experiments(project=P)) == ["exp-a", "exp-b"]
    assert sorted(nq_runs.list_runs(project=P, runs="^run-[12]$")) == ["run-1", "run-2"]   # NQL MATCHES
    names = nq_runs.list_attributes(project=P, runs=["run-1"])
    assert {"parameters/lr", "train/loss", "logs/info", "weights/hist", "files/model", "images/pred"} <= set(names)


def test_attribute_values_with_their_types(neptune):
    table = nq_runs.fetch_runs_table(project=P, runs=["run-1"], attributes=r"^(parameters|config)/")
    values = table.loc["run-1"]
    assert values["parameters/lr"] == 0.1 and values["parameters/epochs"] == 7
    assert bool(values["parameters/use_amp"]) is True
    assert values["parameters/optimizer"] == "sgd" and set(values["config/groups"]) == {"g1", "g2"}
    assert str(values["config/started"]).startswith("2025-03-01 12:00:05")


def test_every_float_point_and_the_fork_lineage(neptune):
    own = nq_runs.fetch_metrics(project=P, runs=["run-2"], attributes="train/loss", lineage_to_the_root=False)
    assert len(own) == 9
    full = nq_runs.fetch_metrics(project=P, runs=["run-2"], attributes="train/loss", lineage_to_the_root=True)
    assert len(full) == 11 + 9                        # the parent's steps 0..10, then its own
    loss = nq_runs.fetch_metrics(project=P, runs=["run-1"], attributes="train/loss")["train/loss"]
    assert len(loss) == 1201 and math.isclose(loss.iloc[0], 1.0) and loss.index[-1][1] == 1200.5


def test_string_histogram_and_file_series_and_files_by_signed_url(neptune, tmp_path):
    series = nq_runs.fetch_series(project=P, runs=["run-1"], attributes="^(logs/info|weights/hist)$")
    assert list(series["logs/info"].dropna()) == ["line 0", "line 1", "line 2"]
    hist = series["weights/hist"].dropna().iloc[0]
    assert (hist.type, hist.edges, hist.values) == ("COUNTING", [0.0, 1.0, 2.0], [5.0, 6.0])
    files = nq_runs.fetch_series(project=P, runs=["run-1"], attributes="^images/pred$")
    got = nq_runs.download_files(files=files, destination=tmp_path)
    paths = sorted(str(p) for p in got["images/pred"].dropna())
    assert [open(p, "rb").read() for p in paths] == [b"\x89PNG-zero", b"\x89PNG-one"]
    table = nq_runs.fetch_runs_table(project=P, runs=["run-1"], attributes="^files/model$")
    model = nq_runs.download_files(files=table, destination=tmp_path / "t")
    assert open(str(model["files/model"].dropna().iloc[0]), "rb").read() == b"model-bytes"
    assert any(e.startswith("GET /_storage/") for e in neptune.counters()["endpoints"])


def test_a_token_the_server_does_not_know_is_rejected(neptune):
    nq.set_api_token(make_api_token(neptune.url, "not-this-one"))
    try:
        with pytest.raises(Exception) as err:
            nq_runs.list_runs(project=P)
        assert "ApiKeyRejected" in type(err.value).__name__ or "reject" in str(err.value).lower()
    finally:
        nq.set_api_token(neptune.api_token)

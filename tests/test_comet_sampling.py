"""Comet's 15,000-value sampling and total-fidelity metrics, end to end.

A run of 20,000 points per metric is logged through the real SDK's ingestion
endpoint; the server samples like Comet.  fetch must mirror it whole from the
total-fidelity CSV zips when the server keeps them, and say it holds a sample when
it does not; push must send every point, readable back through comet_ml's
`get_metric_total_df`.
"""
from __future__ import annotations

import json

import duckdb
import pytest

from cometx_mirror.server import start_server
from cometx_mirror.server.seed import long_run
from push_fixtures import cli, fetch, last_json, push
from server_fixtures import comet_environment

POINTS = 20_000


@pytest.fixture(scope="module")
def tf_server():
    """Total fidelity on, parts of 7,000 rows: three CSV zips per metric."""
    server = start_server(total_fidelity=True, full_metric_part_rows=7_000)
    server.logged = long_run(server, points=POINTS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_server():
    """Comet's default: sampled reads, no total-fidelity files."""
    server = start_server()
    server.logged = long_run(server, points=POINTS)
    yield server
    server.stop()


def _rows(mirror, sql, params=()):
    con = duckdb.connect(str(mirror / "index.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _metric_values(mirror, name):
    """(step, exact value text) of each point, in step order."""
    return _rows(mirror, "SELECT step, coalesce(text, CAST(value AS VARCHAR)) FROM metrics "
                         "WHERE name = ? ORDER BY step", [name])


def test_server_samples_each_metric_to_15000_keeping_first_and_last(plain_server, tmp_path):
    import comet_ml
    with comet_environment(plain_server, tmp_path):
        api_exp = comet_ml.API(cache=False).get_experiment_by_key(plain_server.logged["key"])
        loss = api_exp.get_metrics("loss")
    assert len(loss) == 15_000
    steps = [p["step"] for p in loss]
    assert steps[0] == 0 and steps[-1] == POINTS - 1 and len(set(steps)) == 15_000
    plain_server.configure(sampling=False)
    try:
        with comet_environment(plain_server, tmp_path):
            api_exp = comet_ml.API(cache=False).get_experiment_by_key(plain_server.logged["key"])
            assert len(api_exp.get_metrics("loss")) == POINTS
    finally:
        plain_server.configure(sampling=True)


def test_chart_endpoint_honours_fetch_full(plain_server, tmp_path):
    import comet_ml
    with comet_environment(plain_server, tmp_path):
        api = comet_ml.API(cache=False)
        key = plain_server.logged["key"]
        full = api.get_metrics_for_chart([key], ["loss"], full=True)
        short = api.get_metrics_for_chart([key], ["loss"], full=False)
    assert len(full[key]["metrics"][0]["values"]) == 15_000
    assert len(short[key]["metrics"][0]["values"]) == 500


def test_fetch_reads_every_point_from_total_fidelity_files(tf_server, tmp_path):
    mirror = tmp_path / "m"
    result = last_json(fetch(tf_server, mirror, f"{tf_server.workspace}/long-run"))
    assert result["sampled_metrics"] == 0
    logged = tf_server.logged["values"]
    for name in ("loss", "acc"):
        got = _metric_values(mirror, name)
        assert [s for s, _ in got] == list(range(POINTS))
        assert [v for _, v in got] == logged[name]          # exact text, all 20,000
    status = _rows(mirror, "SELECT name, points, sampled, source FROM metric_status ORDER BY name")
    assert status == [("acc", POINTS, False, "total-fidelity"), ("loss", POINTS, False, "total-fidelity")]
    # the files are assets like any other: in the store, three parts per metric
    parts = _rows(mirror, "SELECT file_name FROM assets WHERE type = 'ASSET_TYPE_FULL_METRIC' "
                          "AND object_id IS NOT NULL ORDER BY file_name")
    assert [p[0] for p in parts] == [f"{m}_{n}.csv.zip" for m in ("acc", "loss") for n in (1, 2, 3)]
    # reindex derives the same rows (the normalizer is pure)
    before = _rows(mirror, "SELECT * FROM metric_status ORDER BY name")
    cli("reindex", "--mirror", mirror)
    assert _rows(mirror, "SELECT * FROM metric_status ORDER BY name") == before
    assert len(_metric_values(mirror, "loss")) == POINTS


def test_fetch_without_total_fidelity_keeps_the_sample_and_says_so(plain_server, tmp_path):
    mirror = tmp_path / "m"
    out = fetch(plain_server, mirror, f"{plain_server.workspace}/long-run")
    assert last_json(out)["sampled_metrics"] == 2
    status = _rows(mirror, "SELECT name, points, sampled, source FROM metric_status ORDER BY name")
    assert status == [("acc", 15_000, True, "sample"), ("loss", 15_000, True, "sample")]
    text = cli("fetch", "--mirror", mirror, "--api-key", plain_server.api_key, "--url-override",
               plain_server.clientlib_url, f"{plain_server.workspace}/long-run").output
    assert "2 metrics only sampled" in text       # an unchanged fetch still says what the mirror lacks
    shown = json.loads(cli("show", "--mirror", mirror, "--json", plain_server.logged["key"]).stdout)
    assert shown["sampled_metrics"] == 2
    assert shown["metric_points"] == 30_000


def test_push_sends_every_point_and_the_destination_reads_them_whole(tf_server, tmp_path):
    import comet_ml
    mirror = tmp_path / "m"
    fetch(tf_server, mirror, f"{tf_server.workspace}/long-run")
    dest = start_server(total_fidelity=True)            # one part per metric: the SDK reads only the first
    try:
        push(dest, mirror, f"{tf_server.workspace}/long-run", f"{dest.workspace}/copied")
        with comet_environment(dest, tmp_path):
            api = comet_ml.API(cache=False)
            (copied,) = api.get_experiments(dest.workspace, "copied")
            df = copied.get_metric_total_df("loss")
            assert len(df) == POINTS
            assert list(df["step"][:3]) == [0, 1, 2]
            assert len(copied.get_metrics("loss")) == 15_000      # the destination samples its reads
            # our files were not uploaded beside the destination's own: one set per metric
            files = sorted(a["fileName"] for a in copied.get_asset_list("ASSET_TYPE_FULL_METRIC"))
            assert files == ["acc_1.csv.zip", "loss_1.csv.zip"]
        dest.reset_counters()
        push(dest, mirror, f"{tf_server.workspace}/long-run", f"{dest.workspace}/copied")
        assert not [e for e in dest.counters()["endpoints"] if "batch/logger/experiment/metric" in e]
        back = tmp_path / "back"
        fetch(dest, back, f"{dest.workspace}/copied")
        assert _metric_values(back, "loss") == _metric_values(mirror, "loss")
        assert _metric_values(back, "acc") == _metric_values(mirror, "acc")
    finally:
        dest.stop()


def test_push_to_a_destination_without_total_fidelity_uploads_the_files(tf_server, tmp_path):
    import comet_ml
    mirror = tmp_path / "m"
    fetch(tf_server, mirror, f"{tf_server.workspace}/long-run")
    dest = start_server()
    try:
        push(dest, mirror, f"{tf_server.workspace}/long-run", f"{dest.workspace}/copied")
        with comet_environment(dest, tmp_path):
            (copied,) = comet_ml.API(cache=False).get_experiments(dest.workspace, "copied")
            files = sorted(a["fileName"] for a in copied.get_asset_list("ASSET_TYPE_FULL_METRIC"))
            assert files == [f"{m}_{n}.csv.zip" for m in ("acc", "loss") for n in (1, 2, 3)]
        back = tmp_path / "back"
        assert last_json(fetch(dest, back, f"{dest.workspace}/copied"))["sampled_metrics"] == 0
        assert _metric_values(back, "loss") == _metric_values(mirror, "loss")
    finally:
        dest.stop()

"""Rate limits: the server throttles per key and kind as Comet does; fetch and push pace
themselves to it (few 429s, complete data), --max-rps keeps them under a known quota;
a project larger than one listing page is read page by page."""
from __future__ import annotations

import contextlib

import requests
from push_fixtures import differences, fetch, last_json, push

from cometx_mirror.server.limits import LimitSpecError, Limits, limit_kind, parse
from cometx_mirror.sources.comet import listing


@contextlib.contextmanager
def limited(server, spec):
    server.set_rate_limits(spec)
    server.reset_counters()
    try:
        yield server
    finally:
        server.set_rate_limits(None)


def peak_rate(server, window: float = 3.0) -> float:
    """The most requests per second the server saw over any `window` seconds.  A window of
    several seconds: paced requests delayed by a stall of the machine arrive in a clump,
    and one second of arrivals would count the clump, not the pace the client kept."""
    times = sorted(r["t"] for r in server.requests())
    peak, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window:
            first += 1
        peak = max(peak, last - first + 1)
    return peak / window


# -- the server ------------------------------------------------------------------------------

def test_spec_kinds_and_bad_words():
    per_minute, burst = parse("comet read=600 burst=2")
    assert per_minute == {"metrics": 12000, "parameters": 10000, "output": 12000, "other": 8000, "read": 600}
    assert burst == 2
    for bad in ("metrics=fast", "speed=3", "reads", "other=0"):
        try:
            Limits(bad)
        except LimitSpecError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
    assert limit_kind("/clientlib/batch/logger/experiment/metric") == "metrics"
    assert limit_kind("/clientlib/batch/logger/experiment/parameter") == "parameters"
    assert limit_kind("/clientlib/rest/v2/write/experiment/output") == "output"
    assert limit_kind("/api/rest/v2/write/experiment/archive") == "other"
    assert limit_kind("/clientlib/asset/upload") == "other"
    assert limit_kind("/api/rest/v2/experiment/metrics/get-all") == "read"


def test_a_throttled_write_answers_429_with_retry_after_and_stores_nothing(comet_server):
    import comet_ml
    exp = comet_ml.APIExperiment(workspace=comet_server.workspace, project_name="limits")
    key = exp.id
    url = comet_server.url + "/api/rest/v2/write/experiment/metric"
    headers = {"Authorization": comet_server.api_key}
    comet_server.set_rate_limits("metrics=60 burst=1")      # one a second, one at once
    answers = [requests.post(url, headers=headers, json={"experimentKey": key, "metricName": "loss",
                                                         "metricValue": step, "step": step})
               for step in range(3)]
    assert [a.status_code for a in answers] == [200, 429, 429]
    assert answers[1].headers["Retry-After"] == "1"
    # other kinds have their own allowance: a parameter still goes through
    param = requests.post(comet_server.url + "/api/rest/v2/write/experiment/parameter", headers=headers,
                          json={"experimentKey": key, "parameterName": "lr", "parameterValue": "0.1"})
    assert param.status_code == 200
    # the other user's key has its own buckets
    bob = comet_server.users[1]
    assert requests.post(url, headers={"Authorization": bob.api_key}, json={
        "experimentKey": key, "metricName": "loss", "metricValue": 9, "step": 9}).status_code != 429
    comet_server.set_rate_limits(None)
    points = comet_ml.API(cache=False).get_experiment_by_key(key).get_metrics("loss")
    assert sorted(p["step"] for p in points) == [0]           # the throttled points were not stored
    counters = requests.get(comet_server.url + "/_admin/counters").json()
    assert counters["rate_limited"] == 2
    assert counters["endpoints"]["POST /api/rest/v2/write/experiment/metric"]["status"]["429"] == 2
    set_again = requests.post(comet_server.url + "/_admin/limits", data="comet").json()
    assert set_again["per_minute"]["other"] == 8000
    assert requests.post(comet_server.url + "/_admin/limits", data="bogus").status_code == 400


# -- fetch and push pace themselves ---------------------------------------------------------

def test_fetch_under_a_low_read_limit_is_complete_and_draws_few_429s(seeded, tmp_path):
    with limited(seeded, "read=600"):          # 10 requests a second, 10 at once
        result = last_json(fetch(seeded, tmp_path / "m", seeded.workspace))
        counters = seeded.counters()
    assert (result["failed"], result["errors"]) == (0, [])
    assert differences(seeded.mirror, tmp_path / "m") == {}
    sent = counters["total"]
    # a burst at the start (the requests in flight when the first 429 came) and a probe now
    # and then; not a 429 per request, nor a retry storm
    assert 0 < counters["rate_limited"] <= 0.15 * sent, (counters["rate_limited"], sent)


def test_push_under_a_low_write_limit_is_complete_and_draws_few_429s(seeded, mirror_a, server_b, tmp_path):
    with limited(server_b, "all=600"):          # 10 requests a second of each kind
        result = last_json(push(server_b, mirror_a, seeded.workspace, server_b.workspace))
        counters = server_b.counters()
    assert (result["new"], result["failed"], result["errors"]) == (2, 0, [])
    sent = counters["total"]
    # a slow machine may never reach the limit (then no 429 at all); never a retry storm
    assert counters["rate_limited"] <= 0.15 * sent, (counters["rate_limited"], sent)
    back = tmp_path / "back"
    fetch(server_b, back, server_b.workspace)
    assert differences(mirror_a, back) == {}


def test_max_rps_under_the_limit_draws_no_429(seeded, mirror_a, server_b, tmp_path):
    with limited(seeded, "read=1200 burst=0.5"):          # 20 a second
        fetch(seeded, tmp_path / "m", f"{seeded.workspace}/proj-a", "--max-rps", "12")
        assert seeded.counters()["rate_limited"] == 0
        assert peak_rate(seeded) <= 14
    with limited(server_b, "all=1200 burst=0.5"):
        result = last_json(push(server_b, mirror_a, f"{seeded.workspace}/proj-a", server_b.workspace,
                                "--max-rps", "12"))
        assert result["new"] == 2
        assert server_b.counters()["rate_limited"] == 0
        assert peak_rate(server_b) <= 14


# -- large projects --------------------------------------------------------------------------

def test_a_project_larger_than_a_page_is_listed_page_by_page(comet_server, tmp_path, monkeypatch):
    import comet_ml
    keys = {comet_ml.APIExperiment(workspace=comet_server.workspace, project_name="big").id for _ in range(5)}
    monkeypatch.setattr(listing, "PAGE_SIZE", 2)
    comet_server.reset_counters()
    result = last_json(fetch(comet_server, tmp_path / "m", f"{comet_server.workspace}/big"))
    assert result["new"] == 5
    pages = sorted((r["query"].get("archived"), r["query"].get("page"), r["query"].get("size"))
                   for r in comet_server.requests() if r["endpoint"] == "GET /api/rest/v2/experiments")
    assert pages == [("False", "1", "2"), ("False", "2", "2"), ("False", "3", "2"), ("True", "1", "2")]
    listed = fetch(comet_server, tmp_path / "m", f"{comet_server.workspace}/big", "--list")
    assert len(listed.stdout.splitlines()) == 5                    # --list pages through too
    from cometx_mirror.store.mirror import Mirror
    mirrored = {label.rsplit("/", 1)[1] for label in Mirror(tmp_path / "m").current_manifests()
                if label.startswith("comet:experiment/")}
    assert mirrored == keys

"""Keys, workspaces, concurrency, faults as the SDK sees them, persistence, the seeded server."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import requests

from server_fixtures import SDK_QUIET, comet_environment


# ----- keys and workspaces ------------------------------------------------------------------

def test_wrong_key_is_unauthorized_for_rest_and_invalid_for_ingestion(comet_server, monkeypatch, fast_fail_env):
    import comet_ml
    from comet_ml.exceptions import Unauthorized
    with pytest.raises(Unauthorized):
        comet_ml.API(api_key="not-a-key", cache=False).get_workspaces()
    monkeypatch.setenv("COMET_API_KEY", "not-a-key")
    exp = comet_ml.Experiment(project_name="p", **SDK_QUIET)
    assert exp.alive is False                # the SDK logs "The given API key ... is invalid"
    add_run = [r for r in comet_server.requests() if r["path"] == "/clientlib/logger/add/run"]
    assert [r["status"] for r in add_run] == [400]
    raw = requests.post(comet_server.clientlib_url + "logger/add/run", json={"apiKey": "not-a-key"})
    assert raw.status_code == 400 and raw.json()["sdk_error_code"] == 90212   # read as InvalidAPIKey
    assert comet_server.state.data["experiments"] == {}


def test_smart_key_accepted(comet_server):
    import comet_ml
    payload = base64.b64encode(json.dumps({"baseUrl": comet_server.url}).encode()).decode().rstrip("=")
    smart = f"{comet_server.api_key}*{payload}"
    assert "alice" in comet_ml.API(api_key=smart, cache=False).get_workspaces()


def test_each_key_sees_only_its_workspaces(comet_server):
    import comet_ml
    alice, bob = comet_server.users[0], comet_server.users[1]
    exp = comet_ml.Experiment(project_name="private", workspace="alice", **SDK_QUIET)
    exp.end()
    bob_api = comet_ml.API(api_key=bob.api_key, cache=False)
    assert "alice" not in bob_api.get_workspaces() and "bob" in bob_api.get_workspaces()
    assert bob_api.get_experiment_by_key(exp.get_key()) is None
    assert comet_ml.API(api_key=alice.api_key, cache=False).get_experiment_by_key(exp.get_key()) is not None


def test_taken_key_is_rejected_unless_get_or_create(comet_server, fast_fail_env):
    import comet_ml
    from comet_ml.exceptions import ExperimentAlreadyUploaded  # noqa: F401  (the SDK's name for 90999)
    key = "a" * 32
    first = comet_ml.Experiment(project_name="keys", experiment_key=key, **SDK_QUIET)
    first.log_metric("m", 1, step=0)
    first.end()
    second = comet_ml.Experiment(project_name="keys", experiment_key=key, **SDK_QUIET)
    assert second.alive is False                         # online: logs an error, does not raise
    add_runs = [r for r in comet_server.requests() if r["path"] == "/clientlib/logger/add/run"]
    assert [r["status"] for r in add_runs] == [200, 400]
    resumed = comet_ml.ExistingExperiment(experiment_key=key, **SDK_QUIET)     # logger/get/run
    assert resumed.alive and resumed.get_key() == key
    body = {"apiKey": comet_server.api_key, "experimentKey": key, "projectName": "keys"}
    taken = requests.post(comet_server.clientlib_url + "logger/add/run", json=body)
    assert taken.status_code == 400 and taken.json()["sdk_error_code"] == 90999
    again = requests.post(comet_server.clientlib_url + "logger/add/run", json=dict(body, getOrCreateEnabled=True))
    assert again.status_code == 200 and again.json()["runId"]
    resumed.log_metric("m", 2, step=1)
    resumed.end()
    values = [m["metricValue"] for m in comet_ml.API(cache=False).get_experiment_by_key(key).get_metrics("m")]
    assert values == ["1", "2"]


def test_ten_experiments_logging_at_once(comet_server):
    import comet_ml
    keys, errors = [], []

    def run(n):
        try:
            exp = comet_ml.Experiment(project_name="parallel", **SDK_QUIET)
            exp.set_name(f"p{n}")
            for step in range(200):
                exp.log_metric("loss", n + step / 1000, step=step)
            exp.log_parameter("n", n)
            exp.log_asset_data(f"asset {n}", name="a.txt")
            exp.end()
            keys.append((n, exp.get_key()))
        except Exception as e:  # surfaced below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(keys) == 10
    api = comet_ml.API(cache=False)
    assert len(api.get_experiments("alice", "parallel")) == 10
    for n, key in keys:
        exp = api.get_experiment_by_key(key)
        assert exp.name == f"p{n}"
        assert [m["step"] for m in exp.get_metrics("loss")] == list(range(200))
        asset = exp.get_asset_list()[0]
        assert exp.get_asset(asset["assetId"]) == f"asset {n}".encode()


# ----- faults ---------------------------------------------------------------------------------

def test_fault_spec_parsing_and_nth():
    from cometx_mirror.server.faults import Faults, FaultSpecError, parse
    rules, seed = parse("503 p=0.5 path=batch/*; latency ms=10-20; seed=3; 429 nth=2,4 retry_after=2")
    assert [r.kind for r in rules] == ["503", "latency", "429"] and seed == 3
    assert rules[2].nth == {2, 4} and rules[2].retry_after == 2 and rules[1].ms_high == 20
    for bad in ("teapot", "503 p=2", "503 nth=x", "503 colour=red", "503 p"):
        with pytest.raises(FaultSpecError):
            parse(bad)
    faults = Faults("500 nth=2 path=experiment/metadata; 502 every=2 times=1 path=/api/rest/v2/projects")
    kinds = [(d.action.kind if d.action else None)
             for d in (faults.decide("/api/rest/v2/experiment/metadata") for _ in range(3))]
    assert kinds == [None, "500", None]
    kinds = [(d.action.kind if d.action else None)
             for d in (faults.decide("/api/rest/v2/projects") for _ in range(4))]
    assert kinds == [None, "502", None, None]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_status_faults_seen_by_the_sdk(comet_server, fast_fail_env, status):
    import comet_ml
    from comet_ml.exceptions import CometRestApiException
    api = comet_ml.API(cache=False)
    comet_server.set_faults(f"{status} nth=1 path=workspaces retry_after=3")
    with pytest.raises(CometRestApiException) as caught:
        api.get_workspaces()
    assert caught.value.response.status_code == status
    if status == 429:
        assert caught.value.response.headers["Retry-After"] == "3"
    assert "alice" in api.get_workspaces()        # only the 1st request was faulted
    counts = comet_server.counters()["endpoints"]["GET /api/rest/v2/workspaces"]
    assert counts["status"] == {str(status): 1, "200": 1}


@pytest.mark.parametrize("kind,message", [("reset", "Connection reset"), ("truncate", "IncompleteRead")])
def test_broken_connections_seen_by_the_sdk(comet_server, fast_fail_env, kind, message):
    import comet_ml
    comet_server.set_faults(f"{kind} nth=1 path=workspaces")
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as caught:
        comet_ml.API(cache=False).get_workspaces()
    assert message in str(caught.value)


def test_a_client_hanging_up_mid_request_prints_nothing(comet_server, capfd):
    # Clients drop keep-alive connections all the time (retries, timeouts); the server
    # must not print tracebacks into the output of whoever runs it.
    import socket
    import struct
    for _ in range(3):
        sock = socket.create_connection((comet_server.host, comet_server.port))
        sock.sendall(b"GET /clientlib/isAlive/ver HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # linger 0: the peer sees a reset, not a clean end
    time.sleep(0.2)
    assert requests.get(f"{comet_server.url}/clientlib/isAlive/ver").json() == {"version": "4.10.0"}
    assert capfd.readouterr().err == ""


def test_latency_and_admin_endpoints(comet_server):
    url = comet_server.url
    req = urllib.request.Request(f"{url}/_admin/faults", data=b"latency ms=150 path=isAlive/ver", method="POST")
    with urllib.request.urlopen(req) as r:
        assert json.loads(r.read())["rules"][0]["kind"] == "latency"
    started = time.perf_counter()
    assert requests.get(f"{url}/clientlib/isAlive/ver").json() == {"version": "4.10.0"}
    assert time.perf_counter() - started >= 0.15
    with urllib.request.urlopen(f"{url}/_admin/counters") as r:
        counters = json.loads(r.read())
    assert counters["endpoints"]["GET /clientlib/isAlive/ver"]["count"] == 1
    with urllib.request.urlopen(f"{url}/_admin/requests") as r:
        log = json.loads(r.read())["requests"]
    assert log[-1]["path"] == "/clientlib/isAlive/ver" and log[-1]["faults"] == ["latency"]
    assert not any(comet_server.api_key in json.dumps(entry) for entry in log)
    urllib.request.urlopen(urllib.request.Request(f"{url}/_admin/reset", data=b"", method="POST")).close()
    assert comet_server.counters()["total"] == 0
    bad = urllib.request.Request(f"{url}/_admin/faults", data=b"418", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(bad)
    assert caught.value.code == 400


def test_counters_show_how_many_requests_overlapped():
    from cometx_mirror.server.runner import start_server
    server = start_server()       # its own: SDK threads of other tests still talk to the shared one
    try:
        url = f"{server.url}/clientlib/isAlive/ver"
        server.set_faults("latency ms=200 path=isAlive/ver")
        for _ in range(2):
            requests.get(url)
        assert server.counters()["peak_in_flight"] == 1
        server.reset_counters()
        threads = [threading.Thread(target=requests.get, args=(url,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert server.counters()["peak_in_flight"] >= 2
    finally:
        server.stop()


def test_responses_are_exactly_application_json(comet_server):
    r = requests.get(f"{comet_server.url}/api/rest/v2/workspaces", headers={"Authorization": comet_server.api_key})
    assert r.headers["Content-Type"] == "application/json"


# ----- persistence and the serve command --------------------------------------------------------

def test_data_dir_survives_restart(tmp_path):
    from cometx_mirror.server import start_server
    data = tmp_path / "data"
    home = tmp_path / "home"
    home.mkdir()
    server = start_server(data_dir=str(data))
    with comet_environment(server, home):
        import comet_ml
        exp = comet_ml.Experiment(project_name="kept", **SDK_QUIET)
        exp.log_metric("m", 1.5, step=3)
        exp.log_asset_data(b"persisted bytes", name="p.bin")
        exp.end()
        key = exp.get_key()
    server.stop()
    again = start_server(data_dir=str(data))
    try:
        with comet_environment(again, home):
            fresh = comet_ml.API(cache=False).get_experiment_by_key(key)
            assert fresh.get_metrics("m")[0]["metricValue"] == "1.5"
            asset = fresh.get_asset_list()[0]
            assert fresh.get_asset(asset["assetId"]) == b"persisted bytes"
    finally:
        again.stop()


def test_serve_command_prints_the_environment(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "cometx_mirror", "serve", "--port", "0", "--latency", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(tmp_path))
    try:
        lines = []
        while not any("Press Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        override = next(l.split("=", 1)[1].strip() for l in lines if "COMET_URL_OVERRIDE=" in l)
        assert override.startswith("http://127.0.0.1:") and override.endswith("/clientlib/")
        assert "COMET_API_KEY=" in text
        assert requests.get(override + "isAlive/ver", timeout=10).json()["version"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# ----- the seeded server ---------------------------------------------------------------------------

SEED_TYPES = {"image", "audio", "video", "text-sample", "confusion-matrix", "curve", "histogram_combined_3d",
              "embeddings", "dataframe", "datagrid", "notebook", "source_code", "model-element", "3d-image",
              "llm_data", "asset"}


def test_seeded_server_matches_the_seed_description(seeded_env):
    import comet_ml
    seeded = seeded_env.seeded
    api = comet_ml.API(cache=False)
    ws = seeded["workspace"]
    experiments = {e["key"]: e for e in seeded["experiments"]}
    assert len(experiments) >= 5 and set(seeded["projects"]) <= set(api.get_projects(ws))
    states = {e["state"] for e in experiments.values()}
    assert {"finished", "crashed", "running"} <= states
    for key, logged in experiments.items():
        exp = api.get_experiment_by_key(key)
        assert exp.name == logged["name"]
        assert exp.get_state() == logged["state"]
        assert exp.get_metadata()["archived"] is logged["archived"]
        assert set(logged["tags"]) <= set(exp.get_tags())
        counts = {}
        for m in exp.get_metrics():
            counts[m["metricName"]] = counts.get(m["metricName"], 0) + 1
        for name, n in logged["metrics"].items():
            assert counts.get(name, 0) >= n, (logged["name"], name)
        assets = exp.get_asset_list()
        assert len(assets) == len(logged["assets"])
        if logged["rich"]:
            assert SEED_TYPES <= {a["type"] for a in assets}
            assert any(a["remote"] for a in assets)
            assert exp.get_git_metadata()["branch"] and exp.get_git_patch()
            assert exp.get_html() and exp.get_output() and exp.get_model_graph()
            assert exp.get_installed_packages()
    archived = [e for e in experiments.values() if e["archived"]]
    assert archived and all(e["key"] in [x.key for x in api.get_archived_experiments(ws, e["project"])]
                            for e in archived)


def test_seeded_shared_bytes_and_artifacts_registry_panels(seeded_env):
    import hashlib
    import comet_ml
    seeded = seeded_env.seeded
    api = comet_ml.API(cache=False)
    ws = seeded["workspace"]
    digests = set()
    for logged in seeded["experiments"]:
        exp = api.get_experiment_by_key(logged["key"])
        for asset in exp.get_asset_list():
            if asset["fileName"] == "dataset.csv":
                digests.add(hashlib.sha256(exp.get_asset(asset["assetId"])).hexdigest())
    assert digests == {seeded["shared"]["dataset.csv"]}
    for name, info in seeded["artifacts"].items():
        for alias, version in info["aliases"].items():
            assert str(api.get_artifact(ws, name, alias=alias).version) == version
    details = api.get_registry_model_details(ws, "classifier")
    assert [v["version"] for v in details["versions"]] == [v["version"] for v in seeded["registry"][0]["versions"]]
    from cometx.api import API as CometxAPI
    names = {p["templateName"] for p in CometxAPI(cache=False).get_panels(ws)}
    assert names == {p["templateName"] for p in seeded["panels"]}

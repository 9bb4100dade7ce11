"""push: every write lands exactly once, whatever the destination answers.

The destination here applies a write and then answers 5xx, resets the connection before
any answer byte, or answers after the client gave up (server faults `applied-*`).  After
each push the destination must equal what a push without faults gives (and the source:
every metric point and the output once), and a repeat push must send nothing.
"""
from __future__ import annotations

import json

import pytest
from push_fixtures import cli, last_json, push, writes

from cometx_mirror.server.runner import start_server
from cometx_mirror.sinks.comet.plan import MARKER
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.push import PushOptions, run_push

DEST_WS = "pushed"      # a new workspace, so `write/workspace/new` is among the writes

# Every write a push of the seeded workspace makes (test_the_endpoint_list_is_complete keeps it so).
APPEND_ENDPOINTS = ["/clientlib/batch/logger/experiment/metric", "/clientlib/rest/v2/write/experiment/output"]
SET_ENDPOINTS = [
    "/api/rest/v2/write/workspace/new", "/api/rest/v2/write/project/create",
    "/clientlib/logger/add/run", "/clientlib/batch/logger/experiment/parameter",
    "/api/rest/v2/write/experiment/log-other", "/clientlib/tags/add-tags-to-experiment",
    "/clientlib/rest/v2/write/experiment/system-details", "/api/rest/v2/write/experiment/html",
    "/api/rest/v2/write/experiment/code", "/api/rest/v2/write/experiment/graph",
    "/api/rest/v2/write/experiment/git/metadata", "/clientlib/git-patch/upload", "/clientlib/asset/upload",
    "/api/rest/v2/write/experiment/set-start-end-time", "/api/rest/v2/write/experiment/update-status",
    "/api/rest/v2/write/experiment/archive", "/api/rest/v2/write/artifacts/upsert",
    "/api/rest/v2/write/artifacts/state", "/api/rest/v2/write/registry-model",
    "/api/rest/v2/write/template/upload",
]
ENDPOINTS = APPEND_ENDPOINTS + SET_ENDPOINTS
TIMEOUT_S = 1.0            # the client's read timeout in these pushes; applied-slow answers later
SLOW = f"applied-slow ms={int(TIMEOUT_S * 1000) + 500}"
KINDS = ["applied-500", "applied-502", "applied-504", "applied-reset", SLOW]


# -- pushing and reading the destination --------------------------------------------------------
def push_lib(server, mirror_path, src, dst=DEST_WS):
    """A push with a short timeout and backoff, so a fault costs milliseconds, not seconds."""
    options = PushOptions(api_key=server.api_key, url=server.clientlib_url, timeout=TIMEOUT_S,
                          retry_backoff=0.02, parallel=2)
    return run_push(Mirror.open(str(mirror_path)), src, dst, options)


def _latest(history: list) -> object:
    return max(history, key=lambda h: h["seq"])["value"] if history else None


def _points(exp: dict) -> list:
    return sorted(json.dumps([p["metricName"], str(p["metricValue"]), p["step"], p["epoch"], p["timestamp"],
                              p["runContext"]]) for p in exp["metrics"])


def _output(exp: dict) -> str:
    return "".join(line["output"] for line in sorted(exp["output"], key=lambda x: (x["offset"], x["seq"])))


def picture(server, workspace: str) -> dict:
    """What a workspace holds, without what the server itself numbers or stamps."""
    with server.state.lock:
        data = server.state.data
        exps = {}
        for key, e in data["experiments"].items():
            if e["workspaceName"] != workspace:
                continue
            exps[key] = {
                "points": _points(e), "output": _output(e),
                "params": {n: _latest(h) for n, h in e["params"].items()},
                "others": {n: _latest(h) for n, h in e["others"].items() if n != MARKER},
                "tags": list(e["tags"]),
                "assets": sorted(json.dumps([a["assetId"], a["fileName"], a["type"], a["step"], a["epoch"],
                                             a["runContext"], a["metadata"], a["remote"], a["link"], a["blob"],
                                             a["fileSize"]]) for a in e["assets"].values()),
                **{k: json.dumps(e[k], sort_keys=True, default=str) for k in (
                    "html", "code", "graph", "git", "gitPatch", "system", "startTimeMillis", "endTimeMillis",
                    "archived", "running", "hasCrashed", "filePath")},
            }
        artifacts = {a["name"]: sorted(json.dumps([v["version"], v["state"], sorted(
            [f["assetId"], f["fileName"], f["blob"], f["link"]] for f in v["files"].values())])
            for v in a["versions"]) for a in data["artifacts"].values() if a["workspaceName"] == workspace}
        registry = {m["modelName"]: sorted(str(v["version"]) for v in m["versions"])
                    for m in data["registry"].values() if m["workspaceName"] == workspace}
        panels = sorted(t for t, p in data["panels"].items() if p.get("workspaceName", workspace) == workspace)
    return {"experiments": exps, "artifacts": artifacts, "registry": registry, "panels": panels}


def appended_by_name(server, workspace: str) -> dict:
    """Metric points and output per experiment name: what must arrive exactly once."""
    out = {}
    with server.state.lock:
        for e in server.state.data["experiments"].values():
            if e["workspaceName"] == workspace:
                out[_latest(e["others"].get("Name", []))] = (_points(e), _output(e))
    return out


@pytest.fixture(scope="module")
def reference(seeded, tmp_path_factory):
    """The destination after a push without faults (to a server of its own)."""
    server = start_server()
    mirror = tmp_path_factory.mktemp("ref") / "m"
    import shutil
    shutil.copytree(seeded.mirror, mirror)
    result = push_lib(server, mirror, seeded.workspace)
    assert (result.failed, result.errors) == (0, [])
    server.endpoints = {path for path in writes(server)}
    server.picture = picture(server, DEST_WS)
    yield server
    server.stop()


def assert_exactly_once(seeded, reference, server_b, mirror_a):
    got = picture(server_b, DEST_WS)
    assert got == reference.picture
    # the appended resources, against the source itself: every point and the output once
    source = appended_by_name(seeded, seeded.workspace)
    assert appended_by_name(server_b, DEST_WS) == source
    assert sum(len(points) for points, _ in source.values()) > 800
    server_b.reset_counters()
    again = push_lib(server_b, mirror_a, seeded.workspace)
    assert (again.failed, again.unchanged, again.writes) == (0, 2, 0)
    assert writes(server_b) == {}


# -- the tests ----------------------------------------------------------------------------------
def test_the_endpoint_list_is_complete(reference):
    assert reference.endpoints == set(ENDPOINTS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("endpoint", APPEND_ENDPOINTS)
def test_an_applied_append_that_failed_is_not_sent_again(seeded, reference, mirror_a, server_b, endpoint, kind):
    server_b.set_faults(f"{kind} path={endpoint} nth=1")
    result = push_lib(server_b, mirror_a, seeded.workspace)
    server_b.set_faults(None)
    assert (result.failed, result.errors) == (0, [])
    fired = [entry for entry in server_b.requests() if entry["faults"]]
    assert [(e["path"], e["faults"]) for e in fired] == [(endpoint, [kind.split()[0]])]
    assert_exactly_once(seeded, reference, server_b, mirror_a)


@pytest.mark.parametrize("endpoint", SET_ENDPOINTS)
def test_an_applied_set_style_write_is_resent_harmlessly(seeded, reference, mirror_a, server_b, endpoint):
    # each applied kind in turn on this endpoint's first requests (resent ones among them); the
    # late answer, which costs a timeout each, is left to the append endpoints and the random push
    kinds = [k for k in KINDS if k != SLOW]
    server_b.set_faults("; ".join(f"{kind} path={endpoint} nth={n}" for n, kind in enumerate(kinds, 1)))
    result = push_lib(server_b, mirror_a, seeded.workspace)
    server_b.set_faults(None)
    assert (result.failed, result.errors) == (0, [])
    assert any(entry["faults"] for entry in server_b.requests())
    assert_exactly_once(seeded, reference, server_b, mirror_a)


def test_random_applied_faults_everywhere(seeded, reference, mirror_a, server_b):
    server_b.set_faults(f"seed=7; applied-502 p=0.06; applied-504 p=0.04; applied-reset p=0.06; "
                        f"applied-500 p=0.04; {SLOW} p=0.02")
    result = push_lib(server_b, mirror_a, seeded.workspace)
    server_b.set_faults(None)
    assert (result.failed, result.errors) == (0, [])
    assert sum(1 for entry in server_b.requests() if entry["faults"]) >= 5
    assert_exactly_once(seeded, reference, server_b, mirror_a)


def test_the_cli_push_survives_a_gateway_error_after_a_metric_batch(seeded, mirror_a, server_b):
    server_b.set_faults("applied-502 path=batch/logger/experiment/metric nth=1")
    result = last_json(push(server_b, mirror_a, seeded.workspace, DEST_WS))
    server_b.set_faults(None)
    assert result["failed"] == 0
    assert appended_by_name(server_b, DEST_WS) == appended_by_name(seeded, seeded.workspace)


# -- excess at the destination ------------------------------------------------------------------
def _plant_duplicates(server, n: int = 5) -> str:
    """Send some of a pushed experiment's points again through the server's own write endpoint."""
    import requests
    with server.state.lock:
        exp = next(e for e in server.state.data["experiments"].values()
                   if e["workspaceName"] == DEST_WS and e["metrics"])
        values = [{k: p[k] for k in ("metricName", "metricValue", "step", "epoch", "timestamp")}
                  for p in exp["metrics"][:n]]
    answer = requests.post(server.clientlib_url.rstrip("/") + "/batch/logger/experiment/metric",
                           json={"experimentKey": exp["experimentKey"], "values": values},
                           headers={"Authorization": server.api_key}, timeout=10)
    assert answer.status_code == 200
    return exp["experimentKey"]


def test_a_push_that_reads_a_destination_back_reports_its_excess(seeded, mirror_a, server_b):
    push(server_b, mirror_a, seeded.workspace, DEST_WS)
    _plant_duplicates(server_b)
    cli("reindex", "--mirror", mirror_a)          # no ledger: the push reads every experiment back
    result = push(server_b, mirror_a, seeded.workspace, DEST_WS, expect=1)
    summary = last_json(result)
    assert summary["failed"] == 1 and summary["unchanged"] == 1
    [error] = summary["errors"]
    assert "5 metric point(s) more than the mirror" in error and "\n" not in error
    # still reported on the next push (the experiment is not recorded as complete), and nothing is written
    server_b.reset_counters()
    again = last_json(push(server_b, mirror_a, seeded.workspace, DEST_WS, expect=1))
    assert again["failed"] == 1 and writes(server_b) == {}


def test_excess_found_while_resuming_an_interrupted_push(seeded, mirror_a, server_b):
    push(server_b, mirror_a, seeded.workspace, DEST_WS)
    key = _plant_duplicates(server_b, 3)
    with server_b.state.lock:          # as if the push had stopped before its marker
        others = server_b.state.data["experiments"][key]["others"]
        del others[MARKER]
    cli("reindex", "--mirror", mirror_a)
    summary = last_json(push(server_b, mirror_a, seeded.workspace, DEST_WS, expect=1))
    assert summary["failed"] == 1
    assert "3 metric point(s) more than the mirror" in summary["errors"][0]


def test_the_read_back_after_writing_finds_points_someone_else_appended(seeded, mirror_a, server_b):
    # what push does after writing an experiment: the destination must hold what it held
    # before plus what was sent, no more (a sampled metric still shows its extra points)
    from cometx_mirror.sinks.comet.client import CometClient, resolve_credentials
    from cometx_mirror.sinks.comet.experiment import read_metrics
    from cometx_mirror.sinks.comet.landed import Appends, ExcessAtDestination
    push(server_b, mirror_a, seeded.workspace, DEST_WS)
    key = _plant_duplicates(server_b, 0)
    client = CometClient(resolve_credentials(server_b.api_key, server_b.clientlib_url))
    appends = Appends(lambda: read_metrics(client, key), lambda: "", read_metrics(client, key), "")
    appends.check_no_excess()
    _plant_duplicates(server_b, 1)
    with pytest.raises(ExcessAtDestination, match="1 metric point"):
        appends.check_no_excess()

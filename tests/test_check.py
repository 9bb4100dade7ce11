"""`check`: a clean push checks clean; every kind of damage planted at the destination is caught."""
from __future__ import annotations

import json

import pytest

from push_fixtures import cli, push



def check(server, mirror, src, dst, *args, expect=0):
    return cli("check", "--mirror", mirror, "--to-api-key", server.api_key, "--to-url-override",
               server.clientlib_url, src, dst, *args, expect=expect)


def check_json(server, mirror, src, dst, *args, expect=0) -> dict:
    return json.loads(check(server, mirror, src, dst, "--json", *args, expect=expect).stdout)


@pytest.fixture
def pushed(seeded, mirror_a, server_b):
    push(server_b, mirror_a, f"{seeded.workspace}/proj-a", f"{server_b.workspace}/copy")
    return server_b


def _experiments(server, project="copy"):
    data = server.state.data
    pid = next(p["projectId"] for p in data["projects"].values() if p["projectName"] == project)
    return [e for e in data["experiments"].values() if e["projectId"] == pid]


def test_clean_push_checks_clean_and_writes_nothing(seeded, mirror_a, pushed):
    pushed.reset_counters()
    result = check_json(pushed, mirror_a, f"{seeded.workspace}/proj-a", f"{pushed.workspace}/copy",
                        "--read-data")
    assert result["ok"], result["differences"]
    kinds = result["kinds"]
    assert kinds["experiments"]["checked"] == 2 and kinds["metrics"]["checked"] == 2
    assert kinds["assets"]["checked"] == 2 and kinds["params"]["checked"] == 2
    endpoints = pushed.counters()["endpoints"]
    assert not [e for e in endpoints if not e.startswith("GET ") or "/write/" in e], endpoints
    text = check(pushed, mirror_a, f"{seeded.workspace}/proj-a", f"{pushed.workspace}/copy").stdout
    assert "the destination holds everything checked" in text


def test_every_planted_difference_is_caught(seeded, mirror_a, pushed):
    first, second = sorted(_experiments(pushed), key=lambda e: e["experimentKey"])
    first["metrics"].pop()                                               # a missing point
    second["params"]["lr"][-1]["value"] = "0.5"                          # a changed param
    asset_id = next(a for a, rec in first["assets"].items() if rec["fileName"] == "model.ckpt")
    del first["assets"][asset_id]                                        # a missing asset
    project = next(p for p in pushed.state.data["projects"].values() if p["projectName"] == "copy")
    pushed.state.new_experiment("f" * 32, project, "stranger", pushed.workspace)   # an extra experiment

    result = check_json(pushed, mirror_a, f"{seeded.workspace}/proj-a", f"{pushed.workspace}/copy",
                        expect=1)
    found = {(d["kind"], d["detail"].split(" ")[0]) for d in result["differences"]}
    details = " | ".join(f"{d['kind']}: {d['detail']}" for d in result["differences"])
    assert result["kinds"]["metrics"]["differ"] == 1 and "1 metric point missing" in details
    assert result["kinds"]["params"]["differ"] == 1 and "lr: " in details
    assert result["kinds"]["assets"]["differ"] == 1 and "model.ckpt missing" in details
    assert any(k == "experiments" and "not in the mirror" in d["detail"] for d in result["differences"]
               for k in [d["kind"]]), found
    assert len(result["differences"]) == 4, details
    text = check(pushed, mirror_a, f"{seeded.workspace}/proj-a", f"{pushed.workspace}/copy", expect=1).stdout
    assert "4 differences" in text and "differs: metrics" in text


def test_duplicated_points_are_extra(seeded, mirror_a, pushed):
    exp = _experiments(pushed)[0]
    loss = next(p for p in exp["metrics"] if p["metricName"] == "loss")
    exp["metrics"].append(dict(loss, offset=10 ** 6))
    result = check_json(pushed, mirror_a, f"{seeded.workspace}/proj-a", f"{pushed.workspace}/copy", expect=1)
    assert [d["detail"] for d in result["differences"]] == ["1 metric point extra (loss: 1)"]


def test_nothing_pushed_yet(seeded, mirror_a, server_b):
    src, dst = f"{seeded.workspace}/proj-a", f"{server_b.workspace}/copy"
    result = check(server_b, mirror_a, src, dst, expect=1)       # no such project: one line
    assert result.stderr.startswith("error:") and "copy" in result.stderr and len(result.stderr.splitlines()) == 1
    server_b.state.ensure_project(server_b.workspace, "copy", server_b.workspace)
    result = check_json(server_b, mirror_a, src, dst, expect=1)
    assert [d["detail"] for d in result["differences"]] == ["missing at the destination"] * 2

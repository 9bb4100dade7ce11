"""push: kill -9 mid-push then resume, a lost ledger, faults on the wire, bad input."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from push_fixtures import cli, differences, fetch, last_json, push, writes

EXPERIMENT_TABLES = ("experiments", "params", "metrics", "others", "tags", "system_details", "texts", "assets")


def push_in_subprocess(server, mirror, src, dst, fault: str) -> int:
    env = {**os.environ, "COMETX_MIRROR_FAULT": fault, "COMET_API_KEY": server.api_key,
           "COMET_URL_OVERRIDE": server.clientlib_url}
    proc = subprocess.run([sys.executable, "-m", "cometx_mirror", "push", "--mirror", str(mirror),
                           "-j", "1", src, dst], env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode


def destination_experiments(server, workspace) -> list[dict]:
    with server.state.lock:
        return [e for e in server.state.data["experiments"].values() if e["workspaceName"] == workspace]


@pytest.mark.parametrize("fault", ["push_after_intent", "push_after_create", "push_asset:3",
                                   "push_before_marker", "push_artifact_version"])
def test_kill_mid_push_then_push_again_finishes_without_duplicates(seeded, mirror_a, server_b, tmp_path, fault):
    ws = seeded.workspace
    assert push_in_subprocess(server_b, mirror_a, ws, server_b.workspace, fault) == 137
    result = last_json(push(server_b, mirror_a, ws, server_b.workspace))
    assert (result["failed"], result["errors"]) == (0, [])
    assert len(destination_experiments(server_b, server_b.workspace)) == 2      # one per source
    back = tmp_path / "back"
    fetch(server_b, back, server_b.workspace)
    assert differences(mirror_a, back) == {}
    server_b.reset_counters()
    assert last_json(push(server_b, mirror_a, ws, server_b.workspace))["unchanged"] == 2
    assert writes(server_b) == {}


def test_a_lost_ledger_is_rebuilt_from_the_destination_markers(seeded, mirror_a, server_b):
    ws = seeded.workspace
    push(server_b, mirror_a, ws, server_b.workspace)
    cli("reindex", "--mirror", mirror_a)               # the index, ledger included, is rebuilt from refs
    server_b.reset_counters()
    result = last_json(push(server_b, mirror_a, ws, server_b.workspace))
    assert (result["unchanged"], result["new"]) == (2, 0)
    assert writes(server_b) == {}
    server_b.reset_counters()
    push(server_b, mirror_a, ws, server_b.workspace)
    assert server_b.counters()["total"] <= 4           # the ledger is back: no marker reads any more


def test_faults_on_the_wire_are_retried_without_duplicates(seeded, mirror_a, server_b, tmp_path):
    # Every kind, several times, on whatever requests come at those counts (reads and
    # writes alike); bounded, so no single request can be unlucky on all of its tries.
    server_b.set_faults("503 every=7 times=6; 429 retry_after=0.05 every=11 times=4; "
                        "reset every=13 times=4; truncate every=17 times=3")
    result = last_json(push(server_b, mirror_a, seeded.workspace, server_b.workspace))
    server_b.set_faults(None)
    assert (result["failed"], result["errors"]) == (0, [])
    assert result["retries"] > 0
    fired = {kind for entry in server_b.requests() for kind in entry["faults"]}
    assert {"503", "429", "reset", "truncate"} <= fired
    back = tmp_path / "back"
    fetch(server_b, back, server_b.workspace)
    assert differences(mirror_a, back) == {}


def test_dry_run_sends_nothing(seeded, mirror_a, server_b):
    result = last_json(push(server_b, mirror_a, seeded.workspace, server_b.workspace, "--dry-run"))
    assert result["new"] == 2 and len(result["plan"]) >= 2
    assert writes(server_b) == {}
    assert destination_experiments(server_b, server_b.workspace) == []


def test_sync_skips_an_experiment_whose_name_exists(seeded, mirror_a, server_b, tmp_path):
    ws = seeded.workspace
    push(server_b, mirror_a, f"{ws}/proj-a", f"{server_b.workspace}/proj-a")
    other = tmp_path / "other"
    import shutil
    shutil.copytree(mirror_a, other)
    cli("reindex", "--mirror", other)                 # no ledger, and pushed to another project's keys
    result = last_json(push(server_b, other, f"{ws}/proj-a", f"{server_b.workspace}/proj-a", "--sync"))
    assert result["unchanged"] + result["skipped"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["unknown path", "no mirror", "wrong key", "no rights", "server down",
                                  "bad destination"])
def test_bad_input_is_one_line_and_a_non_zero_exit(seeded, mirror_a, server_b, tmp_path, case):
    ws = seeded.workspace
    args = {"src": ws, "dst": server_b.workspace, "mirror": mirror_a, "key": server_b.api_key,
            "url": server_b.clientlib_url}
    words = {"unknown path": "nothing at", "no mirror": "no mirror", "wrong key": "refused",
             "no rights": "cannot create workspace", "server down": "cannot reach",
             "bad destination": "bad destination"}[case]
    if case == "unknown path":
        args["src"] = f"{ws}/no-such-project"
    elif case == "no mirror":
        args["mirror"] = tmp_path / "nothing-here"
    elif case == "wrong key":
        args["key"] = "not-a-key"
    elif case == "no rights":
        args["key"] = server_b.users[1].api_key          # bob may not write into alice's workspace
        args["dst"] = server_b.users[0].default_workspace
    elif case == "server down":
        args["url"] = f"http://127.0.0.1:{_free_port()}/clientlib/"
    else:
        args["dst"] = "a/b/c"
    result = cli("push", "--mirror", args["mirror"], "--to-api-key", args["key"], "--to-url-override",
                 args["url"], args["src"], args["dst"], expect=1)
    out = result.output.strip()
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    assert words in out
    assert args["key"] not in out


def test_symlink_needs_the_same_instance(seeded, mirror_a, server_b):
    result = push(server_b, mirror_a, f"{seeded.workspace}/proj-a", f"{server_b.workspace}/linked", "--symlink",
                  expect=1)
    summary = last_json(result)
    assert summary["failed"] == 2 and all("same Comet instance" in e for e in summary["errors"])
    assert destination_experiments(server_b, server_b.workspace) == []

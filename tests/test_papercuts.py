"""The small things a new user hits (issue 12, item 5): each has a test here."""
from __future__ import annotations

import json
import os
import re

import pytest
from click.testing import CliRunner

from core_fixtures import KEY1, filled, mirror  # noqa: F401
from cometx_mirror.cli import main
from cometx_mirror.server.runner import start_server


def cli(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


# -- read side -------------------------------------------------------------------------------------

def test_log_refuses_a_negative_or_zero_limit(filled):
    for n in ("-1", "0"):
        r = cli("log", "-n", n, "--mirror", filled.root)
        assert r.exit_code == 2 and "-n" in r.stderr and "Traceback" not in r.output
    assert cli("log", "-n", "1", "--mirror", filled.root).exit_code == 0


def test_log_counts_in_english(filled):
    line = cli("log", "--mirror", filled.root).stdout.strip()
    assert line.endswith("(5 manifests)"), line


def test_init_refuses_a_folder_that_holds_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    r = cli("init", "--mirror", tmp_path)
    assert r.exit_code == 1 and "not empty and is not a mirror" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]      # nothing strewn into it
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("init", "--mirror", empty).exit_code == 0
    assert cli("init", "--mirror", empty).exit_code == 0                   # a mirror reopens


def test_show_gives_params_and_the_last_value_of_each_metric(filled):
    out = cli("show", "first", "--mirror", filled.root).stdout
    section = out[out.index("params:"):]
    assert re.search(r"^  batch +32$", section, re.M) and re.search(r"^  lr +0\.01$", section, re.M)
    metrics = out[out.index("metrics (last value):"):]
    assert re.search(r"^  acc +0\.95 +\(step 19\) +\[20 points\]$", metrics, re.M), metrics
    summary = json.loads(cli("show", KEY1, "--json", "--mirror", filled.root).stdout)
    assert summary["param_values"] == {"batch": "32", "lr": "0.01"}
    assert summary["last_metrics"]["acc"] == {"value": "0.95", "step": 19, "points": 20}
    assert summary["params"] == 2          # the counts stay


def test_query_refusal_reads_as_english(filled):
    r = cli("query", "INSERT INTO tags VALUES ('x', 'y')", "--mirror", filled.root)
    assert r.exit_code == 1 and "this is an INSERT statement" in r.stderr


def test_verify_says_which_bytes_it_counts(filled):
    r = cli("verify", "--read-data", "--mirror", filled.root)
    assert re.search(r"read 14 objects \([\d,]+ bytes stored, compressed\)", r.stdout), r.stdout


# -- fetch and push --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def destination():
    server = start_server()
    yield server
    server.stop()


def _project(seeded_env):
    return f"{seeded_env.seeded['workspace']}/{sorted(seeded_env.seeded['projects'])[0]}"


def test_fetch_reports_progress_lines_when_not_a_terminal_and_quiet_with_q(seeded_env, tmp_path):
    path = _project(seeded_env)
    env = {"COMETX_MIRROR_PROGRESS_SECONDS": "0"}
    r = cli("fetch", path, "--mirror", tmp_path / "m", env=env)
    assert r.exit_code == 0, r.output
    project = [line for line in r.stderr.splitlines() if line.startswith(f"fetch: project {path} (")]
    assert len(project) == 1 and re.search(r"\((\d+) experiments\); so far 0/\1 experiments", project[0]), r.stderr
    status = [line for line in r.stderr.splitlines() if re.match(r"fetch: \d+/\d+ experiments, [\d.]+ MB", line)]
    assert status, r.stderr
    # the summary says which bytes it counts, in English
    assert re.search(r"new objects \([\d,]+ bytes uncompressed\) in [\d,]+ requests", r.stdout), r.stdout
    quiet = cli("fetch", path, "-q", "--mirror", tmp_path / "m", env=env)
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.stderr
    # by default the first seconds stay quiet: a short fetch prints its summary only
    short = cli("fetch", path, "--mirror", tmp_path / "m")
    assert short.exit_code == 0 and short.stderr == "", short.stderr


def test_fetch_list_of_an_empty_workspace_says_so(destination, tmp_path):
    bob = destination.users[1]
    r = cli("fetch", "--list", bob.default_workspace, "--api-key", bob.api_key,
            "--url-override", destination.clientlib_url, "--mirror", tmp_path / "m")
    assert r.exit_code == 0 and r.stdout == "", r.output
    assert r.stderr.strip() == f"nothing to list: {bob.default_workspace} holds no projects"
    assert not (tmp_path / "m").exists()        # --list creates no mirror


def test_push_dry_run_prints_a_readable_plan_and_json_only_with_json(seeded_env, destination, tmp_path):
    path = _project(seeded_env)
    assert cli("fetch", path, "-q", "--mirror", tmp_path / "m").exit_code == 0
    bob = destination.users[1]
    to = ["--to-api-key", bob.api_key, "--to-url-override", destination.clientlib_url]
    env = {"COMETX_MIRROR_PROGRESS_SECONDS": "0"}
    r = cli("push", path, bob.default_workspace, "--dry-run", *to, "--mirror", tmp_path / "m", env=env)
    assert r.exit_code == 0, r.output
    plan = [line for line in r.stdout.splitlines() if line.startswith("would ")]
    assert plan and all(not line.lstrip().startswith("{") for line in r.stdout.splitlines())
    assert any(re.search(r"^would create \S+ \(from \S+\): [\d,]+ metric points?; ", line) for line in plan), plan
    assert "(dry run)" in r.stdout
    # the progress knows the total: "push: N/N experiments"
    assert re.search(r"push: (\d+)/\1 experiments", r.stderr), r.stderr
    as_json = cli("push", path, bob.default_workspace, "--dry-run", "--json", *to, "--mirror", tmp_path / "m")
    assert json.loads(as_json.stdout)["plan"] and as_json.stderr == ""
    assert destination.state.data["experiments"] == {}          # a dry run wrote nothing


def test_push_debug_stops_with_a_traceback(seeded_env, tmp_path):
    path = _project(seeded_env)
    assert cli("fetch", path, "-q", "--mirror", tmp_path / "m").exit_code == 0
    dead = ["--to-api-key", "nobody", "--to-url-override", "http://127.0.0.1:9/clientlib/"]
    plain = cli("push", path, "dest", *dead, "--mirror", tmp_path / "m")
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    debug = cli("push", path, "dest", "--debug", *dead, "--mirror", tmp_path / "m")
    assert debug.exit_code == 1 and "Traceback (most recent call last)" in debug.stderr, debug.output


def test_serve_seed_says_ready_only_when_seeded_and_keeps_the_sdk_quiet(tmp_path):
    import subprocess
    import sys
    import urllib.request
    env = dict(os.environ, HOME=str(tmp_path), COMET_ERROR_TRACKING_ENABLE="false")
    proc = subprocess.Popen([sys.executable, "-m", "cometx_mirror", "serve", "--seed", "demo"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("ready: "):
                break
        url = lines[-1].split()[1]
        assert line.startswith("ready: ") and "Ctrl-C" in line, lines
        assert not [x for x in lines if x.startswith("COMET")], lines
        listed = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{url}/api/rest/v2/experiments?projectId=" + _project_id(url, "demo-nlp"),
            headers={"Authorization": "alice-api-key-0000000000000001"})).read())
        assert len(listed["experiments"]) == 2          # seeded whole before "ready"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _project_id(url, name):
    import urllib.request
    projects = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{url}/api/rest/v2/projects?workspaceName=alice",
        headers={"Authorization": "alice-api-key-0000000000000001"})).read())["projects"]
    return next(p["projectId"] for p in projects if p["projectName"] == name)

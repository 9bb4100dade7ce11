"""Where offline runs land (issue 12): W&B and Neptune runs that record no workspace get a
workspace of their own source, `fetch --project WS/NAME` names them, and a mirror fetched
before keeps the names its runs have (no rename, no second copy)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cometx_mirror.cli import main
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch
from neptune_fixtures import q

NO_ENTITY_RUN = r'''
import wandb
run = wandb.init(project="solo")          # no entity: an offline run records none
for i in range(3):
    wandb.log({"loss": 1.0 / (i + 1)})
run.finish()
'''


@pytest.fixture(scope="module")
def wandb_no_entity(tmp_path_factory):
    """A wandb/ folder with one offline run (project `solo`, no entity), made by the real SDK."""
    root = tmp_path_factory.mktemp("wandb-no-entity")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(root),
               WANDB_DATA_DIR=str(root / "data"), WANDB_CACHE_DIR=str(root / "cache"),
               WANDB_CONFIG_DIR=str(root / "config"))
    subprocess.run([sys.executable, "-c", NO_ENTITY_RUN], env=env, cwd=str(root), check=True, timeout=240,
                   stdout=subprocess.DEVNULL)
    return root / "wandb"


@pytest.fixture
def no_neptune_project(monkeypatch):
    monkeypatch.delenv("NEPTUNE_PROJECT", raising=False)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def names(mirror) -> list[tuple]:
    return q(mirror, "SELECT source, workspace, project FROM experiments ORDER BY 1, 2, 3")


def test_each_source_gets_its_own_offline_workspace(tmp_path, wandb_no_entity, neptune_v1_offline,
                                                    no_neptune_project):
    mirror = tmp_path / "m"
    for source, folder in (("wandb", wandb_no_entity), ("neptune", neptune_v1_offline)):
        r = cli("fetch", "--from", source, folder, "-q", "--mirror", mirror)
        assert r.stdout.startswith("1 new, 0 changed"), r.output   # (the Neptune run names a missing file)
    assert names(Mirror.open(mirror)) == [("neptune", "neptune-offline", "default"),
                                          ("wandb", "wandb-offline", "solo")]
    ls = cli("ls", "--mirror", mirror).stdout
    assert "wandb-offline" in ls and "neptune-offline" in ls


def test_project_names_runs_at_their_first_fetch_and_then_sticks(tmp_path, wandb_runs, neptune_v1_offline,
                                                                 no_neptune_project):
    wandb_dir, runs = wandb_runs          # runs that record ent-y/proj-x: --project overrides that too
    mirror = tmp_path / "m"
    assert cli("fetch", "--from", "wandb", wandb_dir, "--project", "team/imported", "-q",
               "--mirror", mirror).exit_code == 0
    assert cli("fetch", "--from", "neptune", neptune_v1_offline, "--project", "team/nep", "-q",
               "--mirror", mirror).stdout.startswith("1 new")
    m = Mirror.open(mirror)
    assert names(m) == [("neptune", "team", "nep"), ("wandb", "team", "imported"), ("wandb", "team", "imported")]
    assert q(m, "SELECT DISTINCT source, workspace, project FROM artifacts ORDER BY 1") == [
        ("neptune", "team", "nep"), ("wandb", "team", "imported")]
    refs = dict(m.refs.items())

    # a later fetch under another name (or the recorded one) is refused, and writes no snapshot
    for source, folder, project in (("wandb", wandb_dir, ["--project", "team/other"]), ("wandb", wandb_dir, []),
                                    ("neptune", neptune_v1_offline, [])):
        r = cli("fetch", "--from", source, folder, *project, "-q", "--mirror", mirror)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert "is in the mirror as team/" in r.stderr and "--project team/" in r.stderr, r.stderr
    assert dict(Mirror.open(mirror).refs.items()) == refs

    # the same name again: nothing new
    r = cli("fetch", "--from", "wandb", wandb_dir, "--project", "team/imported", "--mirror", mirror)
    assert r.exit_code == 0 and r.stdout.startswith("0 new, 0 changed, 2 unchanged"), r.output


def test_a_mirror_fetched_before_keeps_its_offline_names(tmp_path, wandb_no_entity, neptune_v1_offline,
                                                         no_neptune_project):
    """Older fetches put both sources' nameless runs in `offline`: a re-fetch changes nothing and says
    why, instead of storing every run a second time under the new name."""
    mirror = Mirror.init(tmp_path / "m")
    # what an older fetch wrote: the same manifests under the old shared names
    run_fetch(mirror, "wandb", str(wandb_no_entity), FetchOptions(project=("offline", "solo")))
    run_fetch(mirror, "neptune", str(neptune_v1_offline), FetchOptions(project=("offline", "offline")))
    before = dict(mirror.refs.items())
    notes = []
    for source, folder in (("wandb", wandb_no_entity), ("neptune", neptune_v1_offline)):
        result = run_fetch(mirror, source, str(folder),
                           FetchOptions(progress=lambda e, **i: notes.append(i.get("message")) if e == "note" else 0))
        assert (result.new, result.changed, result.unchanged) == (0, 0, 1)
    assert dict(mirror.refs.items()) == before
    assert names(mirror) == [("neptune", "offline", "offline"), ("wandb", "offline", "solo")]
    assert sum("keep `offline`, as this mirror already has them" in (n or "") for n in notes) == 2, notes


def test_project_is_refused_where_the_data_names_its_project(tmp_path):
    mirror = tmp_path / "m"
    r = cli("fetch", "--from", "wandb", tmp_path, "--project", "no-slash", "--mirror", mirror)
    assert r.exit_code == 1 and "expected WORKSPACE/PROJECT" in r.stderr
    assert not mirror.exists()         # refused before a mirror was made
    for args in (["--from", "comet", "alice/demo"], ["--from", "cometx", tmp_path],
                 ["--from", "wandb", "ent/proj"], ["--from", "neptune", "ws/proj"]):
        r = cli("fetch", *args, "--project", "a/b", "--mirror", mirror)
        assert r.exit_code == 1 and "--project names offline runs" in r.stderr and "Traceback" not in r.output, \
            (args, r.output)


def test_run_ids_two_exporter_projects_share_are_no_rename(tmp_path):
    """neptune-exporter run ids (`RUN-1`) are unique within a project only: two projects with a RUN-1
    fetch again without being taken for a renamed run."""
    from neptune_fixtures import row, sanitize, write_part
    export = tmp_path / "exports"
    for project in ("ws/a", "other/b"):
        write_part(export / "data" / sanitize(project), "RUN-1", 0, [
            row("RUN-1", "sys/id", "string", project=project, string_value="RUN-1"),
            row("RUN-1", "params/seed", "int", project=project, int_value=len(project))])
    mirror = Mirror.init(tmp_path / "m")
    for project in ("ws/a", "other/b"):        # one project folder at a time, then both
        assert run_fetch(mirror, "neptune", str(export / "data" / sanitize(project)), FetchOptions()).new == 1
    again = run_fetch(mirror, "neptune", str(export), FetchOptions())
    assert (again.new, again.unchanged, again.errors) == (0, 2, [])
    assert names(mirror) == [("neptune", "other", "b"), ("neptune", "ws", "a")]

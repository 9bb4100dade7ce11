"""docs/migrate.md: every command of the guide runs, in order, against local servers.

The guide's bash blocks run verbatim (each in its own `bash -e`), except its "# your values" block, whose
variables the test sets to the local servers instead.  Between round 1 and round 2 the source grows, as it
would while people keep working.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cometx_mirror.server.runner import start_server
from push_fixtures import seed_experiment
from server_fixtures import comet_environment
from test_fetch_cometx import cometx_download

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "migrate.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
# names the guide leaves to the reader -> the test data's
PLACEHOLDERS = {"=my-entity": "=ent-y", "=my-neptune-workspace": "=ws"}


def guide_blocks() -> list[str]:
    return BLOCK.findall(GUIDE.read_text())


@pytest.fixture
def source(tmp_path):
    server = start_server()
    (tmp_path / "sdk-home").mkdir()
    with comet_environment(server, tmp_path / "sdk-home"):
        import comet_ml
        seed_experiment(comet_ml, "proj-a", 0, points=50)
    yield server
    server.stop()


def test_every_command_of_the_guide_runs(source, server_b, wandb_runs, exporter_folder, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(wandb_runs[0], work / "wandb", symlinks=True)
    shutil.copytree(exporter_folder, work / "neptune-export")
    # the fixture leaves one file out on purpose (its own tests); a user's complete export has it
    from neptune_fixtures import sanitize
    (work / "neptune-export" / "files" / sanitize("ws/proj") / sanitize("RUN-1") / "files" / "lost").write_bytes(b"x")
    bob = server_b.users[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMET_", "WANDB_", "NEPTUNE_"))}
    env.update(HOME=str(tmp_path), COMET_URL_OVERRIDE=source.clientlib_url, COMET_API_KEY=source.api_key,
               COMET_TO_URL_OVERRIDE=server_b.clientlib_url, COMET_TO_API_KEY=bob.api_key,
               COMETX_MIRROR=str(tmp_path / "mirror"), SRC=source.workspace, DST=bob.default_workspace,
               COMET_ERROR_TRACKING_ENABLE="false")
    blocks = guide_blocks()
    assert blocks[0].startswith("# your values") and len(blocks) >= 8
    outputs = []
    for block in blocks[1:]:
        block_env = env
        for placeholder, value in PLACEHOLDERS.items():      # the user's names, here the fixtures'
            block = block.replace(placeholder, value)
        if block.startswith("# round 2"):      # the source grew since round 1
            with comet_environment(source, tmp_path / "sdk-home"):
                import comet_ml
                seed_experiment(comet_ml, "proj-a", 1, points=50)
        if block.startswith("# cometx folders"):
            # the folders the real cometx wrote; pushed to a workspace of their own here, so the
            # destination's first copy (through the API route) stays apart from this one
            cometx_download(source, work / "cometx-downloads", source.workspace)
            block_env = dict(env, DST="shared-team")
        done = subprocess.run(["bash", "-e", "-c", block], cwd=work, env=block_env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, (block, done.stdout, done.stderr)
        outputs.append((block, done.stdout))
    for secret in (source.api_key, bob.api_key):
        assert not any(secret in out for _, out in outputs)
    cut_over = next(out for block, out in outputs if "check --read-data" in block)
    assert "the destination holds everything checked" in cut_over
    round_2 = next(out for block, out in outputs if block.startswith("# round 2"))
    assert re.search(r"\b1 new, 0 updated, 1 unchanged\b", round_2), round_2
    dest = [e for e in server_b.state.data["experiments"].values() if e["workspaceName"] == bob.default_workspace]
    assert len([e for e in dest if server_b.state.project_of(e)["projectName"] == "proj-a"]) == 2
    folders = next(out for block, out in outputs if block.startswith("# cometx folders"))
    assert folders.count("the destination holds everything checked") == 1
    pushes = [int(n) for n in re.findall(r"(\d+) writes", folders)]
    assert len(pushes) == 2 and pushes[0] > 0 and pushes[1] == 0, folders
    from_folders = [e for e in server_b.state.data["experiments"].values() if e["workspaceName"] == "shared-team"]
    assert len(from_folders) == 2

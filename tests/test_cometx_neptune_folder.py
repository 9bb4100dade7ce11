"""`fetch --from cometx` reads what `cometx download --from neptune` writes.

The real `cometx download --from neptune` cannot run against our loopback Neptune server: it reads
through the neptune 1.x client, which needs the server's Swagger specs and the 1.x REST API the
server does not speak (docs/cometx.md says exactly what). So the folder is written by cometx's own
Neptune writer (its DownloadManager: export_all + write_data, what `cometx download` calls for each
run) from a real neptune 1.x run in debug mode (the client's in-memory backend, no network).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cometx_mirror.cli import main
from cometx_mirror.store.mirror import Mirror
from neptune_fixtures import q

WRITER = r'''
import os, sys
import neptune
from cometx.framework.neptune import DownloadManager

manager = DownloadManager(output=sys.argv[1])
run = neptune.init_run(mode="debug", project="ws/proj", capture_hardware_metrics=False, capture_stdout=False,
                       capture_stderr=False, source_files=[], git_ref=False)
run["parameters"] = {"lr": 0.1, "batch": 32, "opt": "adam"}
for step in range(3):
    run["train/loss"].append(1.0 / (step + 1), step=step)
run["val/accuracy"].append(0.75, step=2)
run["custom/metric"].append(9.0, step=0)        # not one of cometx's 12 metric paths: not written
run["final/acc"] = 0.5
run["metadata/author"] = "me"
manager.export_all(run)
manager.write_data("ws", "proj", run)
sys.stdout.flush()
os._exit(0)                                      # the debug run has nothing to flush
'''


@pytest.fixture(scope="module")
def cometx_neptune_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cometx-neptune")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEPTUNE_", "COMET_"))}
    subprocess.run([sys.executable, "-c", WRITER, str(root / "out")], cwd=root, env=env, check=True,
                   timeout=240, capture_output=True)
    [folder] = [p for p in (root / "out" / "ws" / "proj").iterdir()]
    return root / "out", folder


def test_fetch_reads_what_cometx_writes_for_neptune(cometx_neptune_folder, tmp_path):
    out, folder = cometx_neptune_folder
    written = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    r = CliRunner().invoke(main, ["fetch", "--from", "cometx", str(out), "-q", "--mirror", str(tmp_path / "m")])
    assert r.exit_code == 0 and r.stdout.startswith("1 new, 0 changed"), r.output
    m = Mirror.open(tmp_path / "m")
    key = folder.name                     # cometx names the folder (and the experiment) after sys/id
    assert q(m, "SELECT source, workspace, project, experiment_key FROM experiments") == [
        ("cometx", "ws", "proj", key)]
    assert dict(q(m, "SELECT name, value FROM params")) == {"lr": "0.1", "batch": "32", "opt": "adam"}
    got = q(m, "SELECT name, step, value, epoch_ms(timestamp) FROM metrics ORDER BY name, step")
    assert got == sorted((w["metricName"], w["step"], w["metricValue"], w["timestamp"]) for w in written)
    assert [(g[0], g[2]) for g in got] == [("train/loss", 1.0), ("train/loss", 0.5),
                                           ("train/loss", pytest.approx(1 / 3)), ("val/accuracy", 0.75)]
    assert dict(q(m, "SELECT name, value FROM others")) == {"final/acc": "0.5", "metadata_author": "me",
                                                           "Name": key}
    # a second fetch of the same folder changes nothing
    r = CliRunner().invoke(main, ["fetch", "--from", "cometx", str(out), "-q", "--mirror", str(tmp_path / "m")])
    assert r.stdout.startswith("0 new, 0 changed, 1 unchanged"), r.output

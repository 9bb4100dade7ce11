"""Session fixtures for the W&B tests: offline runs made by the real wandb SDK.

`wandb_runs` makes, once per session and in a subprocess (wandb keeps global
state), a `wandb/` folder with two offline runs in ent-y/proj-x:
  A: nested config, 5 steps of metrics (with epoch and a nested metric), summary,
     an image, a table, a saved file, artifact my-ds (v0, alias "best"), console output;
  B: artifact my-ds with other content (v1), a config list and a NaN-free summary.
What was logged is written to expected.json for the assertions.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GENERATOR = r'''
import json, os, sys
import numpy as np
import wandb

root = sys.argv[1]
settings = wandb.Settings(x_stats_sampling_interval=1)
expected = {"runs": {}}

saved = os.path.join(root, "notes.txt")
with open(saved, "w") as f:
    f.write("saved file body\n")
data = os.path.join(root, "data.txt")

run = wandb.init(project="proj-x", entity="ent-y", name="first-run", tags=["t1", "t2"], notes="some notes",
                 group="g1", job_type="train", settings=settings,
                 config={"lr": 0.01, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}, "flag": True})
for i in range(5):
    wandb.log({"loss": 1.0 / (i + 1), "acc": i * 0.1, "epoch": i // 2, "train": {"f1": i * 0.25}})
print("hello stdout")
wandb.log({"img": wandb.Image(np.zeros((4, 4, 3), dtype=np.uint8), caption="black"),
           "tbl": wandb.Table(columns=["a", "b"], data=[[1, "x"], [2, "y"]])})
run.summary["best"] = 0.99
run.config.update({"late": "v"})
wandb.save(saved, base_path=root, policy="now")
with open(data, "w") as f:
    f.write("version one")
art = wandb.Artifact("my-ds", type="dataset", metadata={"k": 1})
art.add_file(data)
run.log_artifact(art, aliases=["best"])
expected["runs"]["A"] = {"id": run.id}
run.finish()

run = wandb.init(project="proj-x", entity="ent-y", name="second-run", settings=settings,
                 config={"lr": 0.1, "layers": [8, 4]})
for i in range(3):
    wandb.log({"loss": 2.0 - i}, step=i * 10)
with open(data, "w") as f:
    f.write("version two, longer")
art = wandb.Artifact("my-ds", type="dataset", metadata={"k": 2})
art.add_file(data)
run.log_artifact(art)
expected["runs"]["B"] = {"id": run.id}
run.finish()

with open(os.path.join(root, "expected.json"), "w") as f:
    json.dump(expected, f)
'''


def offline_env(root: Path) -> dict:
    """The environment of a script that logs with the real client offline, every folder under `root`
    and no key, server, entity or project of the developer's."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(root),
               WANDB_DATA_DIR=str(root / "data"), WANDB_CACHE_DIR=str(root / "cache"),
               WANDB_CONFIG_DIR=str(root / "config"), WANDB_ARTIFACT_DIR=str(root / "artifacts"))
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT"):
        env.pop(name, None)
    return env


def make_runs(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    env = offline_env(root)
    script = root / "make_runs.py"
    script.write_text(GENERATOR)
    subprocess.run([sys.executable, str(script), str(root)], env=env, check=True, timeout=240,
                   cwd=str(root), stdout=subprocess.DEVNULL)
    return json.loads((root / "expected.json").read_text())


@pytest.fixture(scope="session")
def wandb_runs(tmp_path_factory):
    """(path of the wandb/ folder, {"A": {"id", "folder"}, "B": ...})."""
    root = tmp_path_factory.mktemp("wandb-offline")
    expected = make_runs(root)
    wandb_dir = root / "wandb"
    for info in expected["runs"].values():
        info["folder"] = next(p for p in wandb_dir.iterdir()
                              if p.name.endswith("-" + info["id"]) and not p.is_symlink())
    return wandb_dir, expected["runs"]


API_KEY = "local-" + "x" * 40


def isolate_wandb(mp: pytest.MonkeyPatch, folder: Path) -> None:
    """wandb.Api with no developer settings: no key, URL, entity, netrc or shared dirs leak in;
    its folders go under `folder`."""
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT"):
        mp.delenv(name, raising=False)
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("WANDB_CONFIG_DIR", str(folder / "wandb-config"))
    mp.setenv("WANDB_CACHE_DIR", str(folder / "wandb-cache"))
    mp.setenv("WANDB_DATA_DIR", str(folder / "wandb-data"))
    mp.setenv("NETRC", str(folder / "no-netrc"))


@pytest.fixture
def wandb_env(monkeypatch, tmp_path):
    """wandb.Api with no developer settings (isolate_wandb), for one test."""
    isolate_wandb(monkeypatch, tmp_path)


@contextlib.contextmanager
def serving_runs(wandb_runs):
    """An emulated W&B server serving runs A and B, stopped when the block ends."""
    from wandb_graphql_server import WandbServer, run_from_folder
    _, runs = wandb_runs
    server = WandbServer(API_KEY, page_size=1)
    server.runs = [run_from_folder(runs["A"]["folder"]), run_from_folder(runs["B"]["folder"])]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def wandb_server(wandb_runs):
    """A fresh emulated W&B server serving runs A and B (changes stay within one test)."""
    with serving_runs(wandb_runs) as server:
        yield server

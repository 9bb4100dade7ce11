"""Fixtures for the mirror core tests: a tiny source ("coretest") and a filled mirror.

The coretest normalizer reads manifests written by `add_experiment` / `add_project`
and the objects they name, so tests exercise the real path
manifest -> snapshot -> ref -> indexer.refresh -> DuckDB without any vendor.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from cometx_mirror import model
from cometx_mirror.sources import normalizer
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer

SOURCE = "coretest"


@normalizer("coretest-experiment/1")
def _normalize_experiment(mirror: Mirror, m: dict) -> model.Experiment:
    exp = model.Experiment(source=SOURCE, workspace=m["workspace"], project=m["project"], key=m["key"],
                           name=m.get("name"), created_at=m.get("created_at"), started_at=m.get("created_at"),
                           ended_at=m.get("ended_at"), state=m.get("state"), tags=list(m.get("tags", [])))
    exp.params = [model.Param(k, str(v), raw=v) for k, v in sorted(m.get("params", {}).items())]
    exp.others = [model.Other(k, str(v)) for k, v in sorted(m.get("others", {}).items())]
    exp.system = dict(m.get("system", {}))
    if m.get("metrics"):
        cols = mirror.get_json(m["metrics"]["object"])
        exp.metrics = model.Metrics(name=cols["name"], step=cols["step"], epoch=cols["epoch"],
                                    timestamp=cols["timestamp"], value=cols["value"], context=cols["context"])
    for kind, ref in sorted(m.get("texts", {}).items()):
        exp.texts.append(model.Text(kind=kind, object_id=ref["object"], size=ref["size"]))
    for a in m.get("assets", []):
        exp.assets.append(model.Asset(asset_id=a["asset_id"], file_name=a["file_name"], type=a["type"],
                                      size=a.get("size"), object_id=a.get("object"), step=a.get("step"),
                                      remote=a.get("remote", False), link=a.get("link"),
                                      metadata=a.get("metadata")))
    return exp


@normalizer("coretest-project/1")
def _normalize_project(mirror: Mirror, m: dict) -> model.Project:
    return model.Project(source=SOURCE, workspace=m["workspace"], name=m["project"],
                         description=m.get("description"), notes=m.get("notes"), public=False)


@normalizer("coretest-artifact/1")
def _normalize_artifact(mirror: Mirror, m: dict) -> model.Artifact:
    return model.Artifact(source=SOURCE, workspace=m["workspace"], name=m["name"], type="dataset",
                          project=m.get("project"), versions=[
        model.ArtifactVersion(version=v["version"], created_at=v["created_at"], files=[
            model.ArtifactFile(path=f["path"], size=f["size"], object_id=f["object"]) for f in v["files"]])
        for v in m["versions"]])


@normalizer("coretest-registry/1")
def _normalize_registry(mirror: Mirror, m: dict) -> model.RegistryModel:
    return model.RegistryModel(source=SOURCE, workspace=m["workspace"], name=m["name"], versions=[
        model.ModelVersion(version=v["version"], created_at=v["created_at"], object_id=v["zip"]["object"],
                           size=v["zip"]["size"]) for v in m["versions"]])


@normalizer("coretest-panel/1")
def _normalize_panel(mirror: Mirror, m: dict) -> model.Panel:
    return model.Panel(source=SOURCE, workspace=m["workspace"], panel_id=m["panel_id"], name=m["name"],
                       object_id=m["zip"]["object"], size=m["zip"]["size"])


def add_workspace_entities(mirror: Mirror, workspace: str) -> dict[str, str]:
    """An artifact with two versions, a registry model (a zip), a panel; label -> manifest id."""
    import io
    import zipfile

    def ref(data: bytes) -> dict:
        return {"object": mirror.objects.put_bytes(data), "size": len(data)}

    def zipped(files: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name, data in files.items():
                z.writestr(name, data)
        return buf.getvalue()

    versions = [{"version": "1.0.0", "created_at": 1, "files": [dict(ref(b"v1 rows"), path="data/train.csv")]},
                {"version": "2.0.0", "created_at": 2, "files": [dict(ref(b"v2 rows"), path="data/train.csv"),
                                                                dict(ref(b"{}"), path="meta.json")]}]
    return {
        f"artifact/{workspace}/ds": mirror.put_json({"type": "artifact", "normalizer": "coretest-artifact/1",
                                                     "source": SOURCE, "workspace": workspace, "name": "ds",
                                                     "versions": versions}),
        f"registry_model/{workspace}/net": mirror.put_json({
            "type": "registry_model", "normalizer": "coretest-registry/1", "source": SOURCE,
            "workspace": workspace, "name": "net",
            "versions": [{"version": "1.0.0", "created_at": 5,
                          "zip": ref(zipped({"model/weights.h5": b"W" * 100, "../evil.txt": b"no"}))}]}),
        f"panel/{workspace}/p1": mirror.put_json({"type": "panel", "normalizer": "coretest-panel/1",
                                                  "source": SOURCE, "workspace": workspace, "panel_id": "p1",
                                                  "name": "My panel", "zip": ref(zipped({"a.js": b"x"}))}),
    }


def metric_columns(n_points: int, names=("loss", "acc"), t0: int = 1_700_000_000_000) -> dict:
    cols = {k: [] for k in ("name", "step", "epoch", "timestamp", "value", "context")}
    for i in range(n_points):
        name = names[i % len(names)]
        step = i // len(names)
        cols["name"].append(name)
        cols["step"].append(step)
        cols["epoch"].append(step // 10)
        cols["timestamp"].append(t0 + i)
        cols["value"].append(math.sin(i) if name != "acc" else step / (step + 1))
        cols["context"].append("train" if i % 3 else None)
    return cols


def add_experiment(mirror: Mirror, workspace: str, project: str, key: str, name: str | None = None,
                   n_points: int = 20, assets: dict[str, bytes] | None = None,
                   texts: dict[str, bytes] | None = None, params: dict | None = None) -> str:
    """Store an experiment's objects and manifest; return the manifest id."""
    def ref(data: bytes) -> dict:
        return {"object": mirror.objects.put_bytes(data), "size": len(data)}

    manifest = {"type": "experiment", "normalizer": "coretest-experiment/1", "source": SOURCE,
                "workspace": workspace, "project": project, "key": key, "name": name,
                "created_at": 1_700_000_000_000, "ended_at": 1_700_000_360_000, "state": "finished",
                "tags": ["core", "test"], "params": params or {"lr": 0.01, "batch": 32},
                "others": {"Name": name or key, "note": "hi"}, "system": {"hostname": "box", "pid": 7,
                                                                          "installedPackages": ["a==1"]},
                "texts": {k: ref(v) for k, v in (texts or {"html": b"<b>hi</b>", "output": b"line 1\nline 2\n",
                                                          "code": b"print('hi')\n"}).items()},
                "assets": []}
    if n_points:
        manifest["metrics"] = {"object": mirror.put_json(metric_columns(n_points))}
    for i, (file_name, data) in enumerate(sorted((assets if assets is not None else
                                                  {"weights.bin": os.urandom(3000), "img.png": b"\x89PNG" * 50}
                                                  ).items())):
        r = ref(data)
        manifest["assets"].append({"asset_id": f"{key[:8]}a{i}", "file_name": file_name,
                                   "type": "image" if file_name.endswith(".png") else "asset",
                                   "object": r["object"], "size": r["size"], "step": i,
                                   "metadata": {"i": i}})
    return mirror.put_json(manifest)


def add_project(mirror: Mirror, workspace: str, project: str, notes: str | None = "project notes") -> str:
    return mirror.put_json({"type": "project", "normalizer": "coretest-project/1", "source": SOURCE,
                            "workspace": workspace, "project": project, "description": "a project",
                            "notes": notes})


def commit(mirror: Mirror, workspace: str, manifests: dict[str, str], refresh: bool = True) -> str:
    sid = mirror.commit_snapshot(f"{SOURCE}/test/{workspace}", SOURCE, "test", workspace, manifests,
                                 {"experiments": len(manifests)})
    if refresh:
        indexer.refresh(mirror)
    return sid


KEY1 = "0123456789abcdef0123456789abcdef"   # 32 hex, like a Comet key
KEY2 = "fedcba9876543210fedcba9876543210"


def fill(mirror: Mirror) -> dict[str, str]:
    """Two projects in workspace `ws`, three experiments; returns label -> manifest id."""
    manifests = {
        "project/ws/proj": add_project(mirror, "ws", "proj"),
        "project/ws/other": add_project(mirror, "ws", "other", notes=None),
        f"experiment/ws/proj/{KEY1}": add_experiment(mirror, "ws", "proj", KEY1, name="first", n_points=40),
        f"experiment/ws/proj/{KEY2}": add_experiment(mirror, "ws", "proj", KEY2, name="second",
                                                     assets={"a.txt": b"same", "b.txt": b"same"}),
        "experiment/ws/other/runthree": add_experiment(mirror, "ws", "other", "runthree", name="third",
                                                       n_points=0, assets={}),
    }
    commit(mirror, "ws", manifests)
    return manifests


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    return Mirror.init(tmp_path / "m")


@pytest.fixture
def filled(mirror: Mirror) -> Mirror:
    fill(mirror)
    return mirror


def age(path: Path, seconds: float = 3 * 86400) -> None:
    """Make a file look old, for grace-period tests."""
    t = time.time() - seconds
    os.utime(path, (t, t))

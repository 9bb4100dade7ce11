"""The seeder: logs realistic data into a Comet-compatible server THROUGH the real comet_ml SDK.

    from cometx_mirror.server import start_server
    from cometx_mirror.server.seed import seed
    srv = start_server()
    logged = seed(srv, size="small")      # or size="large", experiments=..., steps=...

What it logs (sizes scale the counts): several projects; metrics with steps, epochs and
contexts plus `sys.*` metrics; nested params; others; tags; system details and packages;
html; code; git metadata and patch (from a throwaway git repo); output; graph; assets of
every type (image, audio, video, text-sample, confusion-matrix, curve,
histogram_combined_3d, embeddings, dataframe, datagrid, notebook, source_code,
model-element, 3d-image, llm_data), remote assets, duplicate file names; a dataset and a
checkpoint byte-identical across experiments; an OfflineExperiment uploaded with
`comet upload`; artifacts with several versions and aliases; registry models with
versions and tags/stages; code panels; archived, crashed and still-running experiments.

`seed()` returns a plain dict describing what it logged (keys, names, counts, asset
names and sizes) for other components' tests to assert against.

The environment (COMET_* variables, HOME, the git directory) is set for the duration of
the call and restored afterwards; the SDK's `end()` costs 1-2.5 s, so experiments are
logged on a few threads at once.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import wave
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

SIZES = {
    # experiments per project, points per metric, parallel SDK experiments
    "small": {"projects": 2, "experiments": 2, "steps": 120, "workers": 4},
    "large": {"projects": 4, "experiments": 10, "steps": 5000, "workers": 4},
}
SDK_QUIET = dict(auto_output_logging=False, log_env_details=False, log_code=False, log_git_metadata=False,
                 log_git_patch=False, log_env_gpu=False, log_env_cpu=False, log_env_host=False,
                 auto_param_logging=False, auto_metric_logging=False, parse_args=False,
                 display_summary_level=0)
METRICS = ("loss", "accuracy", "lr")
SYS_METRICS = ("sys.cpu.percent.avg", "sys.ram.used", "sys.gpu.0.memory_used")
_env_lock = threading.Lock()


# ----- environment ------------------------------------------------------------------------

def _target_env(server: Any) -> dict:
    if isinstance(server, dict):
        return dict(server)
    return server.env()


@contextlib.contextmanager
def sdk_environment(env: dict, home: str, git_dir: Optional[str] = None):
    """Point comet_ml at the server for the duration of the block (then restore os.environ)."""
    saved = dict(os.environ)
    os.environ.update(env)
    os.environ.update(HOME=home, COMET_ERROR_TRACKING_ENABLE="false", COMET_DISABLE_ANNOUNCEMENT="true",
                      COMET_OFFLINE_SAMPLING_SIZE="1000000",
                      # comet_ml 3.58's end() can wait on a message batch it never sends (a race in
                      # its streamer, seen now and then with several experiments ending at once);
                      # its default wait is an hour: give up on that message after half a minute
                      COMET_TIMEOUT_CLEANING="30")
    if git_dir:
        os.environ["COMET_GIT_DIRECTORY"] = git_dir
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def quiet_sdk():
    """Keep comet_ml's console chatter (and its loggers) off the terminal while seeding."""
    saved = os.environ.get("COMET_LOGGING_CONSOLE")
    os.environ["COMET_LOGGING_CONSOLE"] = "critical"
    log = logging.getLogger("comet_ml")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        log.setLevel(level)
        if saved is None:
            os.environ.pop("COMET_LOGGING_CONSOLE", None)
        else:
            os.environ["COMET_LOGGING_CONSOLE"] = saved


# ----- small realistic files -------------------------------------------------------------

def png_bytes(width: int = 8, height: int = 8, seed: int = 0) -> bytes:
    """A valid RGB PNG, without Pillow."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(width * 3)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def write_wav(path: str, seconds: float = 0.1, rate: int = 8000) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", (i * 37) % 2000 - 1000) for i in range(int(seconds * rate))))


NOTEBOOK = {"cells": [{"cell_type": "code", "metadata": {}, "source": ["print('hi')"], "outputs": [],
                       "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _git_repo(folder: str) -> str:
    """A throwaway git repository with one commit and an uncommitted change (for the patch)."""
    repo = os.path.join(folder, "repo")
    os.makedirs(repo)
    env = dict(os.environ, GIT_AUTHOR_NAME="seed", GIT_AUTHOR_EMAIL="seed@example.invalid",
               GIT_COMMITTER_NAME="seed", GIT_COMMITTER_EMAIL="seed@example.invalid", HOME=folder)

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    with open(os.path.join(repo, "train.py"), "w") as f:
        f.write("print('train')\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "initial")
    git("remote", "add", "origin", "https://example.invalid/demo/repo.git")
    with open(os.path.join(repo, "train.py"), "a") as f:
        f.write("print('uncommitted change')\n")
    return repo


def _git_patch_file(folder: str) -> str:
    path = os.path.join(folder, "git_diff.patch")
    if not os.path.exists(path):
        diff = subprocess.run(["git", "diff"], cwd=os.path.join(folder, "repo"), capture_output=True,
                              check=True).stdout
        with open(path, "wb") as f:
            f.write(diff)
    return path


# ----- one experiment --------------------------------------------------------------------

class _Files:
    """Files shared by every experiment of one seeding run (the byte-identical ones)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        rng = random.Random(1234)
        self.dataset = self._write("dataset.csv", ("x,y\n" + "".join(
            f"{i},{rng.random():.6f}\n" for i in range(2000))).encode())
        self.checkpoint = self._write("checkpoint.bin", bytes(rng.randrange(256) for _ in range(64_000)))
        self.image = self._write("sample.png", png_bytes())
        self.audio = os.path.join(folder, "tone.wav")
        write_wav(self.audio)
        self.video = self._write("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
        self.notebook = self._write("analysis.ipynb", json.dumps(NOTEBOOK).encode())

    def _write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.folder, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    @staticmethod
    def sha256(path: str) -> str:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()


def _log_metrics(exp, steps: int, index: int) -> dict:
    counts: dict[str, int] = {}
    epochs = max(1, steps // 40)
    for step in range(steps):
        epoch = step * epochs // steps
        with exp.train():
            exp.log_metric("loss", round(2.0 / (step + 1 + index), 6), step=step, epoch=epoch)
            exp.log_metric("accuracy", round(min(0.99, 0.3 + step / (steps + 10)), 6), step=step, epoch=epoch)
        exp.log_metric("lr", 0.001 * (0.99 ** epoch), step=step, epoch=epoch)
        counts["loss"] = counts.get("loss", 0) + 1
        counts["accuracy"] = counts.get("accuracy", 0) + 1
        counts["lr"] = counts.get("lr", 0) + 1
        if step % 20 == 0:
            with exp.validate():
                exp.log_metric("val_loss", round(2.5 / (step + 1), 6), step=step, epoch=epoch)
            counts["val_loss"] = counts.get("val_loss", 0) + 1
    for i in range(max(3, steps // 40)):
        for name in SYS_METRICS:
            exp.log_metric(name, 10.0 + i, step=i)
            counts[name] = counts.get(name, 0) + 1
    return counts


def _log_rich(exp, files: _Files, index: int) -> list[dict]:
    """Every asset type, remote assets and duplicate names; returns what was logged."""
    from comet_ml.messages import StandardOutputMessage
    logged = []

    def note(file_name, kind, size=None, remote=False, step=None):
        logged.append({"fileName": file_name, "type": kind, "size": size, "remote": remote, "step": step})

    exp.log_image(files.image, name="sample.png", step=1)
    note("sample.png", "image", os.path.getsize(files.image), step=1)
    exp.log_image(files.image, name="sample.png", step=2)        # the same name twice
    note("sample.png", "image", os.path.getsize(files.image), step=2)
    exp.log_audio(files.audio, file_name="tone.wav", step=1)
    note("tone.wav", "audio", os.path.getsize(files.audio), step=1)
    exp.log_video(files.video, name="clip.mp4", step=1)
    note("clip.mp4", "video", os.path.getsize(files.video), step=1)
    exp.log_text(f"a text sample from experiment {index}", step=1)
    note(None, "text-sample", step=1)
    exp.log_confusion_matrix([0, 1, 2, 1, 0], [0, 2, 2, 1, 0], labels=["a", "b", "c"], step=1)
    note("confusion-matrix.json", "confusion-matrix", step=1)
    exp.log_curve("pr-curve", [0.0, 0.5, 1.0], [1.0, 0.7, 0.2], step=1)
    note("pr-curve", "curve", step=1)
    exp.log_histogram_3d([1, 2, 2, 3, 3, 3, 4], name="weights", step=1)
    note("weights", "histogram_combined_3d", step=1)  # sent as histogram3d
    exp.log_notebook(files.notebook)
    note("analysis.ipynb", "notebook", os.path.getsize(files.notebook))
    exp.log_code(code=f"print('experiment {index}')\n", code_name="snippet.py")
    note("snippet.py", "source_code")
    exp.log_model("classifier", files.checkpoint, file_name="model.bin")
    note("model.bin", "model-element", os.path.getsize(files.checkpoint))
    for kind, name, data in (
            ("embeddings", "embeddings.json", {"embeddings": [{"tensorName": "emb", "tensorShape": [3, 2]}]}),
            ("dataframe", "frame.json", {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}),
            ("datagrid", "grid.datagrid", {"columns": ["img", "label"], "rows": 2}),
            ("3d-image", "scene.json", {"points": [[0, 0, 0], [1, 1, 1]], "boxes": []}),
            ("llm_data", "prompts.json", {"prompt": "hello", "response": "world"})):
        # No public one-liner logs these types without extra packages (kangas, ydata, open3d):
        # the SDK's own asset logger sends them exactly as its helpers would.
        payload = json.dumps(data)
        exp._log_asset_data(payload, file_name=name, asset_type=kind, step=1)
        note(name, kind, len(payload.encode()), step=1)
    exp.log_asset(files.dataset, file_name="dataset.csv")               # byte-identical across experiments
    note("dataset.csv", "asset", os.path.getsize(files.dataset))
    exp.log_asset(files.checkpoint, file_name="checkpoint.bin", step=5, metadata={"epoch": 5, "best": True})
    note("checkpoint.bin", "asset", os.path.getsize(files.checkpoint), step=5)
    exp.log_asset_data(f"run notes {index}", name="notes.txt")
    note("notes.txt", "asset", len(f"run notes {index}"))
    exp.log_asset_data(f"more notes {index}, other bytes", name="notes.txt")   # duplicate file name
    note("notes.txt", "asset", len(f"more notes {index}, other bytes"))
    exp.log_remote_asset("s3://demo-bucket/datasets/train.tfrecord", remote_file_name="train.tfrecord",
                         metadata={"split": "train"})
    note("train.tfrecord", "asset", remote=True)
    exp.log_remote_asset("https://example.invalid/files/labels.txt", remote_file_name="labels.txt")
    note("labels.txt", "asset", remote=True)
    exp.log_html(f"<h1>Report {index}</h1>")
    exp.log_html("<p>appended paragraph</p>")
    exp.set_model_graph(f"Sequential(\n  Linear(10, {index + 2})\n)")
    exp.log_dependency("torch", "2.3.0")
    exp.log_system_info("cluster", "demo-cluster")
    for line in (f"epoch 0 done for {index}\n", "training finished\n"):
        exp._enqueue_message(StandardOutputMessage(output=line, stderr=False))
    return logged


def _log_experiment(env: dict, spec: dict, files: _Files, steps: int) -> dict:
    import comet_ml
    rich = spec.get("rich", False)
    options = dict(SDK_QUIET)
    if rich:
        options.update(log_env_details=True, log_env_host=True, log_env_cpu=False,
                       log_git_metadata=True, log_git_patch=True)
    exp = comet_ml.Experiment(project_name=spec["project"], workspace=env.get("COMET_WORKSPACE"), **options)
    if not exp.alive:
        raise RuntimeError(f"the SDK could not start experiment {spec['name']!r}")
    index = spec["index"]
    exp.set_name(spec["name"])
    params = {"lr": 0.001, "batch_size": 32 * (index + 1), "optimizer": {"name": "adam", "betas": [0.9, 0.999]},
              "model": {"layers": 3 + index, "dropout": 0.1}, "seed": index}
    exp.log_parameters(params)
    exp.log_others({"dataset": "mnist", "index": index, "owner": "seed"})
    tags = ["demo", spec["project"], f"run-{index}"]
    exp.add_tags(tags)
    metric_counts = _log_metrics(exp, steps, index)
    assets = _log_rich(exp, files, index) if rich else []
    if not rich:
        exp.log_asset(files.dataset, file_name="dataset.csv")
        assets.append({"fileName": "dataset.csv", "type": "asset", "size": os.path.getsize(files.dataset),
                       "remote": False, "step": None})
        exp.log_model("classifier", files.checkpoint, file_name="model.bin")
        assets.append({"fileName": "model.bin", "type": "model-element",
                       "size": os.path.getsize(files.checkpoint), "remote": False, "step": None})
    for artifact in spec.get("artifacts", []):
        exp.log_artifact(artifact)
    key = exp.get_key()
    if spec["state"] != "running":
        exp.end()
    else:
        # Flush everything, then stop this process's streamer without the final
        # "is_alive: false": on the server the experiment stays running.
        exp.flush()
    return {"key": key, "name": spec["name"], "project": spec["project"], "workspace": env.get("COMET_WORKSPACE"),
            "state": spec["state"], "archived": spec.get("archived", False), "offline": False, "rich": rich,
            "params": params, "tags": tags, "others": {"dataset": "mnist", "index": index, "owner": "seed"},
            "metrics": metric_counts, "assets": assets, "experiment": exp}


def _log_offline(env: dict, project: str, folder: str, steps: int) -> dict:
    """Log an OfflineExperiment archive (on the calling thread: its end() gives up on pending
    messages after a timeout when the machine is busy, so it runs before the parallel work)."""
    import comet_ml
    runs = os.path.join(folder, "offline-runs")
    exp = comet_ml.OfflineExperiment(project_name=project, workspace=env.get("COMET_WORKSPACE"),
                                     offline_directory=runs, **SDK_QUIET)
    exp.set_name("offline-run")
    exp.log_parameters({"mode": "offline", "epochs": 3})
    exp.add_tags(["offline"])
    for step in range(steps):
        exp.log_metric("loss", round(1.0 / (step + 1), 6), step=step, epoch=step // 50)
    exp.log_asset_data("offline asset", name="offline.txt")
    exp.log_other("uploaded_with", "comet upload")
    key = exp.get_key()
    exp.end()
    return {"key": key, "name": "offline-run", "project": project, "workspace": env.get("COMET_WORKSPACE"),
            "state": "finished", "archived": False, "offline": True, "rich": False,
            "params": {"mode": "offline", "epochs": 3}, "tags": ["offline"],
            "others": {"uploaded_with": "comet upload"}, "metrics": {"loss": steps},
            "assets": [{"fileName": "offline.txt", "type": "asset", "size": len("offline asset"),
                        "remote": False, "step": None}],
            "_archive": os.path.join(runs, f"{key}.zip")}


def _upload_offline(logged: dict, folder: str) -> dict:
    """`comet upload <archive>` in a subprocess: the real CLI."""
    archive = logged.pop("_archive")
    result = subprocess.run([sys.executable, "-m", "comet_ml.scripts.comet_upload", archive],
                            capture_output=True, text=True, env=dict(os.environ), cwd=folder, timeout=300)
    if result.returncode != 0 or "rror" in result.stderr.replace("COMET INFO", ""):
        raise RuntimeError(f"comet upload failed: {result.stderr[-2000:]}")
    return logged


# ----- artifacts, registry, panels, states --------------------------------------------------

def _artifacts(files: _Files) -> list[list]:
    """Artifact versions, grouped by the experiment that logs them (version order matters)."""
    import comet_ml
    # Explicit versions: experiments log concurrently, so arrival order must not decide numbering.
    first = comet_ml.Artifact("mnist-dataset", "dataset", version="1.0.0", metadata={"source": "seed", "rows": 2000},
                              aliases=["stable"], version_tags=["v1"])
    first.add(files.dataset, logical_path="data/dataset.csv")
    first.add_remote("s3://demo-bucket/datasets/mnist-labels.csv", logical_path="labels.csv", sync_mode=False)
    second = comet_ml.Artifact("mnist-dataset", "dataset", version="2.0.0", metadata={"source": "seed", "rows": 2000, "fixed": True},
                               aliases=["best"], version_tags=["v2"])
    second.add(files.dataset, logical_path="data/dataset.csv")
    second.add(files.notebook, logical_path="docs/analysis.ipynb")
    third = comet_ml.Artifact("mnist-dataset", "dataset", version="3.0.0", aliases=["candidate"], version_tags=["v3"])
    third.add(files.image, logical_path="samples/sample.png")
    ckpt = comet_ml.Artifact("classifier-checkpoint", "model", version="1.0.0", metadata={"framework": "torch"}, aliases=["prod"])
    ckpt.add(files.checkpoint, logical_path="model.bin")
    return [[first, ckpt], [second], [third]]


def _registry(api, experiments: list) -> dict:
    """Register the `classifier` experiment model of the first two finished experiments."""
    registered = {"name": "classifier", "versions": []}
    done = [e for e in experiments if e["state"] == "finished" and not e["offline"]][:2]
    for number, (exp, tags) in enumerate(zip(done, (["production"], ["staging"]))):
        version = f"1.{number}.0"
        api_exp = api.get_experiment_by_key(exp["key"])
        api_exp.register_model("classifier", version=version, tags=tags, comment=f"from {exp['name']}",
                               description="the demo classifier")
        registered["versions"].append({"version": version, "tags": tags, "experimentKey": exp["key"]})
    return registered


def _panels(workspace: str) -> list:
    from cometx.api import API as CometxAPI
    api = CometxAPI(cache=False)
    panels = []
    for name, code in (("Loss Overview", "from comet_ml import ui\nui.display('loss')\n"),
                       ("Accuracy Table", "from comet_ml import ui\nui.display('accuracy')\n")):
        result = api.upload_panel_code(workspace, name, code)
        panels.append({"templateName": name, "templateId": result.get("templateId"), "code": code})
    return panels


# ----- entry point ------------------------------------------------------------------------

def plan(size: str, experiments: Optional[int], projects: Optional[int]) -> list[dict]:
    cfg = SIZES[size]
    n_projects = projects or cfg["projects"]
    per_project = experiments or cfg["experiments"]
    specs = []
    for p in range(n_projects):
        project = f"demo-{('vision', 'nlp', 'speech', 'tabular')[p % 4]}" + (f"-{p // 4}" if p >= 4 else "")
        for i in range(per_project):
            specs.append({"project": project, "name": f"{project}-run-{i}", "index": len(specs),
                          "rich": i == 0, "state": "finished"})
    # Lifecycle variety: one crashed, one archived, one still running (all in the last project).
    tail = [s for s in specs if s["project"] == specs[-1]["project"]]
    tail[-1]["state"] = "running"
    if len(tail) > 1:
        tail[0]["state"] = "crashed"
    specs[0]["archived"] = True if len(specs) > 2 else False
    return specs


def seed(server: Any, size: str = "small", experiments: Optional[int] = None, steps: Optional[int] = None,
         projects: Optional[int] = None, workers: Optional[int] = None) -> dict:
    """Log demo data through the real comet_ml SDK into `server` (a ServerHandle or its env() dict).

    size: "small" (a few seconds, for tests) or "large" (benchmarks); `experiments` (per project),
    `steps` (points per metric), `projects` and `workers` override the size's defaults.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    cfg = SIZES[size]
    steps = steps or cfg["steps"]
    env = _target_env(server)
    folder = tempfile.mkdtemp(prefix="comet-seed-")
    try:
        with _env_lock, sdk_environment(env, home=folder, git_dir=_git_repo(folder)):
            return _seed(env, folder, plan(size, experiments, projects), steps, workers or cfg["workers"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _seed(env: dict, folder: str, specs: list, steps: int, workers: int) -> dict:
    import comet_ml
    files = _Files(folder)
    groups = _artifacts(files)
    carriers = [s for s in specs if s["state"] != "running"]
    for spec, group in zip(carriers, groups):
        spec["artifacts"] = group
    offline_project = specs[0]["project"]
    offline_logged = _log_offline(env, offline_project, folder, steps)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        offline = pool.submit(_upload_offline, offline_logged, folder)
        futures = [pool.submit(_log_experiment, env, s, files, steps) for s in specs]
        logged = [f.result() for f in futures] + [offline.result()]
    running = [e.pop("experiment") for e in logged if "experiment" in e]
    api = comet_ml.API(cache=False)
    for exp in logged:
        api_exp = api.get_experiment_by_key(exp["key"])
        if exp["state"] == "crashed":
            api_exp.set_state("crashed")
        elif exp["state"] == "running":
            api_exp.set_state("running")
        if exp["archived"]:
            api_exp.archive()
    for exp in logged:
        if exp["rich"]:
            # The uncommitted change of the seed repo, as the SDK's APIExperiment uploads patches.
            api.get_experiment_by_key(exp["key"]).set_git_patch(_git_patch_file(folder))
    registry = _registry(api, logged)
    workspace = env.get("COMET_WORKSPACE") or api.get_default_workspace()
    panels = _panels(workspace)
    for project in sorted({e["project"] for e in logged}):
        api.set_project_notes(workspace, project, f"Notes for {project}: seeded demo data.")
    for exp in running:
        _abandon(exp)
    artifacts = {
        "mnist-dataset": {"type": "dataset", "versions": ["1.0.0", "2.0.0", "3.0.0"],
                          "aliases": {"stable": "1.0.0", "best": "2.0.0", "candidate": "3.0.0"}},
        "classifier-checkpoint": {"type": "model", "versions": ["1.0.0"], "aliases": {"prod": "1.0.0"}},
    }
    projects: dict[str, list] = {}
    for exp in logged:
        projects.setdefault(exp["project"], []).append(exp["key"])
    return {
        "workspace": workspace, "projects": projects, "experiments": logged,
        "artifacts": artifacts, "registry": [registry], "panels": panels,
        "shared": {"dataset.csv": files.sha256(files.dataset), "checkpoint.bin": files.sha256(files.checkpoint),
                   "model.bin": files.sha256(files.checkpoint)},
        "steps": steps,
    }


def _abandon(exp) -> None:
    """Leave an experiment running on the server: stop its background threads without end().

    The SDK's own atexit hook would otherwise end it when the process exits."""
    try:
        exp.alive = False
        if getattr(exp, "streamer", None) is not None:
            exp.streamer.close(timeout=5)
    except Exception:
        pass
    for attr in ("_heartbeat_thread", "_connection_monitor", "system_metrics_thread"):
        thread = getattr(exp, attr, None)
        if thread is not None and hasattr(thread, "close"):
            with contextlib.suppress(Exception):
                thread.close()


# ----- a run longer than Comet's sampling limit -------------------------------------------

def long_run(server: Any, points: int = 20_000, metrics: tuple = ("loss", "acc"), project: str = "long-run",
             name: str = "long-run", per_ms: int = 1, batch: int = 5_000) -> dict:
    """Log one experiment with `points` values per metric (Comet samples beyond 15,000).

    The experiment is made by the real SDK (online `Experiment`: `OfflineExperiment`
    samples metrics itself); the points go through the SDK's own ingestion endpoint,
    `batch/logger/experiment/metric`, `batch` at a time, which is what `Experiment`
    sends, without its per-point cost.  `per_ms` points share each timestamp (Comet
    sees repeated timestamps whenever a loop logs faster than 1 ms).  Returns
    {"key", "project", "name", "metrics": {name: points}, "values": {name: [text, ...]}}.
    """
    import requests
    env = _target_env(server)
    folder = tempfile.mkdtemp(prefix="comet-seed-")
    try:
        with _env_lock, sdk_environment(env, home=folder):
            import comet_ml
            exp = comet_ml.Experiment(project_name=project, **SDK_QUIET)
            exp.set_name(name)
            key = exp.get_key()
            exp.end()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    url = env["COMET_URL_OVERRIDE"].rstrip("/") + "/batch/logger/experiment/metric"
    t0 = 1_700_000_000_000
    values: dict[str, list] = {}
    for m_index, metric in enumerate(metrics):
        series = [_long_run_value(m_index, i, points) for i in range(points)]
        values[metric] = [json.dumps(v) for v in series]
        for start in range(0, points, batch):
            rows = [{"metricName": metric, "metricValue": series[i], "step": i, "epoch": i // 1000,
                     "timestamp": t0 + i // max(1, per_ms), "context": None}
                    for i in range(start, min(points, start + batch))]
            r = requests.post(url, json={"experimentKey": key, "values": rows},
                              headers={"Authorization": env["COMET_API_KEY"]}, timeout=60)
            r.raise_for_status()
    return {"key": key, "project": project, "name": name, "metrics": {m: points for m in metrics},
            "values": values}


def _long_run_value(metric_index: int, i: int, points: int) -> float:
    # every value different, so a sample cannot pass for the whole
    return round(1.0 / (i + 1 + metric_index), 12) if metric_index % 2 == 0 else i / points


# ----- benchmark workspaces, built in the server's own state --------------------------------

def build_workspace(server: Any, project: str, experiments: int, points: int,
                    metrics: tuple = ("loss", "acc", "lr"), assets: int = 6, asset_bytes: int = 20_000,
                    first: int = 0) -> list[str]:
    """FOR BENCHMARKS ONLY: put `experiments` finished experiments into the state of an
    in-process server (a ServerHandle) directly, without HTTP or the SDK.

    Each experiment holds what bench_workspace's REST seeding sends: `points` values of each
    metric (step, epoch = step // 100, millisecond timestamps), the parameters lr and batch,
    and `assets` random files of `asset_bytes` bytes named blob-K.bin at step K.  The records
    are made by the same helpers the ingestion routes call (add_metric_points,
    add_parameters, the blob store), so the server answers reads of them as if the
    experiments had been uploaded; tests keep seeding through the SDK, which is what proves
    the server reads what comet_ml writes.  Returns the experiment keys.
    """
    from .handlers_clientlib import add_metric_points, add_parameters
    state = server.state
    owner = state.users[0].name
    t0 = 1_700_000_000_000
    keys = []
    for n in range(first, first + experiments):
        rng = random.Random(n)
        key = f"{n:08d}" + rng.randbytes(12).hex()
        with state.lock:
            proj = state.ensure_project(server.workspace, project, owner)
            exp = state.new_experiment(key, proj, None, owner)
            exp["offline"], exp["running"] = True, False
            add_metric_points(state, exp, [
                {"metricName": m, "metricValue": (1 / (s + 1)) if m == "loss" else s / max(1, points),
                 "step": s, "epoch": s // 100, "timestamp": t0 + s, "context": None}
                for m in metrics for s in range(points)])
            add_parameters(state, exp, [{"parameterName": k, "parameterValue": v, "timestamp": t0}
                                        for k, v in (("lr", "0.1"), ("batch", str(32 + n)))])
        for k in range(assets):
            data = rng.randbytes(asset_bytes)
            add_asset_record(state, exp, f"blob-{k}.bin", state.blobs.put(data), len(data), step=k)
        keys.append(key)
    return keys


def add_big_asset(server: Any, key: str, file_name: str, size: int, chunk: int = 1 << 20) -> str:
    """FOR BENCHMARKS ONLY: give an experiment an asset of `size` generated bytes, streamed
    into the server's blob store (which needs a data_dir: in memory it would hold them all),
    so no file of that size exists anywhere but the server's own blob folder."""
    state = server.state
    exp = state.experiment(key)
    block = random.Random(size).randbytes(chunk)

    def chunks():
        left, n = size, 0
        while left > 0:
            # vary each block so the bytes do not compress or deduplicate to nothing
            piece = n.to_bytes(8, "big") + block[8:min(chunk, left)]
            yield piece[:min(chunk, left)]
            left -= min(chunk, left)
            n += 1
    digest = state.blobs.put_stream(chunks())
    return add_asset_record(state, exp, file_name, digest, size)["assetId"]


def add_asset_record(state, exp: dict, file_name: str, blob: str, size: int, step: Optional[int] = None,
                     kind: str = "asset") -> dict:
    """The asset record an upload of `file_name` (not remote, no metadata) makes; see
    handlers_clientlib.store_upload, whose fields these are."""
    from .handlers_clientlib import ASSET_DIRS
    from .state import new_id, now_ms
    asset = {"assetId": new_id(), "fileName": file_name, "fileSize": size, "type": kind, "step": step,
             "epoch": None, "runContext": None, "metadata": None, "createdAt": now_ms(),
             "dir": ASSET_DIRS.get(kind, kind), "remote": False, "link": None, "blob": blob,
             "groupingName": None, "extension": None, "overwrite": False, "artifactVersionId": None,
             "experimentKey": exp["experimentKey"], "tags": [], "etag": None}
    with state.lock:
        asset["seq"] = state.next_seq()
        exp["assets"][asset["assetId"]] = asset
        state.touch()
    return asset

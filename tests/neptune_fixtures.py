"""Neptune inputs for the tests: runs logged by the real clients offline, and an
exporter-format folder written with pyarrow to neptune-exporter's schema.

The clients run in a subprocess with their own cwd and environment, so their
background threads and `.neptune/` folders never touch the test process.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def _run_script(cwd: Path, script: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEPTUNE_")}
    env.update(NEPTUNE_MODE="offline", NEPTUNE_DATA_DIRECTORY=str(cwd / ".neptune"),
               NEPTUNE_DISABLE_PARENT_PROCESS_CHECK="1")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


# -- neptune 1.x offline ------------------------------------------------------------------------
V1_SCRIPT = """
import datetime, neptune
from neptune.types import File
run = neptune.init_run(mode="offline", project="ws/proj", name="my-run", tags=["t1", "t2"],
                       capture_hardware_metrics=False, capture_stdout=True, capture_stderr=False,
                       source_files=[])
run["parameters/lr"] = 0.01
run["parameters/batch"] = 32
run["parameters/flag"] = True
run["parameters/nested"] = {"a": 1, "b": "x"}
run["info/when"] = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
run["info/note"] = "hello"
for i in range(5):
    run["train/loss"].append(1.0 / (i + 1), step=10 + i)
    run["train/acc"].append(0.1 * i)            # no step: numbered 0, 1, 2, ...
    run["log/msg"].append(f"line {i}")
run["files/a"].upload("a.txt")
run["files/gone"].upload("missing.txt")
run["fs"].upload_files("fs/*.txt")
run["dataset"].track_files("a.txt")
run["sys/tags"].add("t3")
run["sys/tags"].remove("t2")
print("to stdout")
run.stop()
"""


@pytest.fixture(scope="session")
def neptune_v1_offline(tmp_path_factory):
    """A `.neptune/offline/run__*` folder written by neptune 1.x; returns the folder holding `.neptune`."""
    d = tmp_path_factory.mktemp("neptune_v1")
    (d / "a.txt").write_text("hello a\n")
    (d / "fs").mkdir()
    (d / "fs" / "x.txt").write_text("x\n")
    (d / "fs" / "y.txt").write_text("yy\n")
    _run_script(d, V1_SCRIPT)
    return d


# -- neptune-scale offline ------------------------------------------------------------------------------
SCALE_SCRIPT = """
import datetime
from neptune_scale import Run
from neptune_scale.types import Histogram
run = Run(project="ws/scaleproj", run_id="scale-run-1", mode="offline", experiment_name="exp-a")
run.log_configs({"params/lr": 0.001, "params/layers": 4, "params/flag": False, "params/opt": "adam",
                 "info/when": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)})
for i in range(4):
    run.log_metrics({"train/loss": 2.0 - i * 0.5, "eval/acc": i / 4}, step=i)
run.log_string_series({"notes/log": "first"}, step=0)
run.log_string_series({"notes/log": "second"}, step=1)
run.log_histograms({"weights/h": Histogram(bin_edges=[0, 1, 2], counts=[3, 4])}, step=1)
run.add_tags(["a", "b", "c"])
run.remove_tags(["c"])
run.assign_files({"files/cfg": "cfg.yaml"})
run.close()
"""


@pytest.fixture(scope="session")
def neptune_scale_offline(tmp_path_factory):
    d = tmp_path_factory.mktemp("neptune_scale")
    (d / "cfg.yaml").write_text("lr: 0.001\n")
    _run_script(d, SCALE_SCRIPT)
    return d


# -- neptune-exporter output ------------------------------------------------------------------------------
SCHEMA = pa.schema([
    ("project_id", pa.string()), ("run_id", pa.string()), ("attribute_path", pa.string()),
    ("attribute_type", pa.string()), ("step", pa.decimal128(18, 6)),
    ("timestamp", pa.timestamp("ms", tz="UTC")), ("int_value", pa.int64()), ("float_value", pa.float64()),
    ("string_value", pa.string()), ("bool_value", pa.bool_()), ("datetime_value", pa.timestamp("ms", tz="UTC")),
    ("string_set_value", pa.list_(pa.string())), ("file_value", pa.struct([("path", pa.string())])),
    ("histogram_value", pa.struct([("type", pa.string()), ("edges", pa.list_(pa.float64())),
                                   ("values", pa.list_(pa.float64()))])),
])


def sanitize(s: str) -> str:
    """neptune-exporter's path sanitizing: keep alnum/_/-, then a blake2b suffix."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", s) + "-" + hashlib.blake2b(s.encode(), digest_size=8).hexdigest()


T0 = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def row(run_id, path, typ, project="ws/proj", step=None, ts=None, **values):
    r = {f.name: None for f in SCHEMA}
    r.update(project_id=project, run_id=run_id, attribute_path=path, attribute_type=typ,
             step=None if step is None else Decimal(str(step)).quantize(Decimal("1.000000")),
             timestamp=ts, **values)
    return r


def write_part(project_dir: Path, run_id: str, n: int, rows: list[dict]) -> Path:
    project_dir.mkdir(parents=True, exist_ok=True)
    p = project_dir / f"{sanitize(run_id)}_part_{n}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), p)
    return p


def ts(i: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=i)


def run1_rows() -> tuple[list[dict], list[dict]]:
    """RUN-1: every attribute type, split over two parts."""
    r = "RUN-1"
    part0 = [
        row(r, "sys/id", "string", string_value=r),
        row(r, "sys/name", "string", string_value="first run"),
        row(r, "sys/creation_time", "datetime", datetime_value=T0),
        row(r, "sys/modification_time", "datetime", datetime_value=ts(100)),
        row(r, "sys/tags", "string_set", string_set_value=["b", "a"]),
        row(r, "sys/state", "string", string_value="Inactive"),
        row(r, "sys/failed", "bool", bool_value=False),
        row(r, "parameters/lr", "float", float_value=0.1),
        row(r, "parameters/epochs", "int", int_value=7),
        row(r, "parameters/use_amp", "bool", bool_value=True),
        row(r, "parameters/optimizer", "string", string_value="sgd"),
        row(r, "config/started", "datetime", datetime_value=ts(5)),
        row(r, "config/groups", "string_set", string_set_value=["g2", "g1"]),
        row(r, "eval/final_acc", "float", float_value=0.93),
    ] + [row(r, "train/loss", "float_series", step=i, ts=ts(10 + i), float_value=1.0 / (i + 1)) for i in range(3)] \
      + [row(r, "monitoring/abc/stdout", "string_series", step=i, ts=ts(20 + i), string_value=f"out {i}\n")
         for i in range(2)] \
      + [row(r, "logs/info", "string_series", step=0.5, ts=ts(30), string_value="half step")]
    part1 = [row(r, "train/loss", "float_series", step=i, ts=ts(10 + i), float_value=1.0 / (i + 1))
             for i in range(3, 5)] + [
        row(r, "weights/hist", "histogram_series", step=2, ts=ts(40),
            histogram_value={"type": "COUNTING", "edges": [0.0, 1.0, 2.0], "values": [5.0, 6.0]}),
        row(r, "files/model", "file", file_value={"path": f"{sanitize(r)}/files/model"}),
        row(r, "images/pred", "file_series", step=0, file_value={"path": f"{sanitize(r)}/images/pred/0.png"}),
        row(r, "images/pred", "file_series", step=1, file_value={"path": f"{sanitize(r)}/images/pred/1.png"}),
        row(r, "source_code/files", "file_set", file_value={"path": f"{sanitize(r)}/source_code/files"}),
        row(r, "datasets/train", "artifact",
            file_value={"path": f"{sanitize(r)}/datasets/train/files_list.json"}),
        row(r, "files/lost", "file", file_value={"path": f"{sanitize(r)}/files/lost"}),
    ]
    return part0, part1


def write_files(files_dir: Path) -> None:
    base = files_dir / sanitize("RUN-1")
    (base / "files").mkdir(parents=True)
    (base / "files" / "model").write_bytes(b"model-bytes")
    (base / "images" / "pred").mkdir(parents=True)
    (base / "images" / "pred" / "0.png").write_bytes(b"\x89PNG-zero")
    (base / "images" / "pred" / "1.png").write_bytes(b"\x89PNG-one")
    (base / "source_code" / "files" / "pkg").mkdir(parents=True)
    (base / "source_code" / "files" / "main.py").write_text("print('hi')\n")
    (base / "source_code" / "files" / "pkg" / "util.py").write_text("X = 1\n")
    (base / "datasets" / "train").mkdir(parents=True)
    (base / "datasets" / "train" / "files_list.json").write_text(json.dumps([
        {"filePath": "train.csv", "fileHash": "abc123", "type": "S3", "size": 120,
         "metadata": {"location": "s3://bucket/train.csv"}},
        {"filePath": "labels.csv", "fileHash": "def456", "type": "S3", "size": 30,
         "metadata": {"location": "s3://bucket/labels.csv"}}]))


@pytest.fixture
def exporter_folder(tmp_path):
    """exports/{data,files}: RUN-1 (all types, 2 parts), RUN-2 (small), RUN-3 (unfinished: no part_0)."""
    root = tmp_path / "exports"
    pdir = root / "data" / sanitize("ws/proj")
    part0, part1 = run1_rows()
    write_part(pdir, "RUN-1", 0, part0)
    write_part(pdir, "RUN-1", 1, part1)
    write_part(pdir, "RUN-2", 0, [row("RUN-2", "sys/id", "string", string_value="RUN-2"),
                                  row("RUN-2", "sys/name", "string", string_value="second"),
                                  row("RUN-2", "sys/creation_time", "datetime", datetime_value=ts(1000)),
                                  row("RUN-2", "sys/failed", "bool", bool_value=True),
                                  row("RUN-2", "params/seed", "int", int_value=42)])
    write_part(pdir, "RUN-3", 1, [row("RUN-3", "params/seed", "int", int_value=1)])
    write_files(root / "files" / sanitize("ws/proj"))
    return root


def q(mirror, sql, *args):
    """Rows of a read-only query on the mirror's index (the Neptune tests' assertions)."""
    import duckdb
    con = duckdb.connect(str(mirror.index_path), read_only=True)
    try:
        return con.execute(sql, list(args)).fetchall()
    finally:
        con.close()


# -- a run fetched again (the grown-run tests) ----------------------------------------------------------
INDEX_TABLES = ("experiments", "params", "others", "tags", "metrics", "texts", "assets")


def fetch_cleanly(mirror, folder):
    """A fetch of `folder` into `mirror` that neither fails nor reports an error."""
    from cometx_mirror.sources.options import FetchOptions
    from cometx_mirror.sync.fetch import run_fetch
    result = run_fetch(mirror, "neptune", str(folder), FetchOptions())
    assert not result.failed and not result.errors, result.errors
    return result


def index_rows(mirror) -> dict:
    """Every row of the index's run tables, by table (the run's id left out: it names the mirror's run)."""
    return {t: sorted(map(repr, q(mirror, f"SELECT * EXCLUDE (exp_id) FROM {t}"))) for t in INDEX_TABLES}


def only_manifest(mirror) -> dict:
    """The one manifest the mirror holds."""
    [manifest_id] = mirror.current_manifests().values()
    return mirror.get_json(manifest_id)


def fresh_fetch(tmp_path, folder, name: str):
    """A new mirror under tmp_path/name, `folder` fetched into it."""
    from cometx_mirror.store.mirror import Mirror
    fresh = Mirror.init(tmp_path / name)
    fetch_cleanly(fresh, folder)
    return fresh

"""Long Neptune runs in the neptune-exporter and neptune-scale formats, for bench/bench_readers.py.

- `write_exporter_run`: `exports/data/<project dir>/<run dir>_part_<n>.parquet` in neptune-exporter's
  schema (the one tests/neptune_fixtures.py writes), one row per point, parts of PART_ROWS rows, as
  the exporter splits a long run.
- `write_scale_run`: `.neptune/<project>_<run>/run_operations.sqlite3` written through
  neptune-scale's own OperationsRepository (the class its offline mode writes with), one
  UpdateRunSnapshot per step carrying every series' value, as `Run.log_metrics` logs them.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal
from pathlib import Path

PROJECT = "bench/long-runs"
T0_MS = 1_740_830_400_000
PART_ROWS = 1_000_000


def _sanitize(s: str) -> str:
    """neptune-exporter's path sanitizing: keep alnum/_/-, then a blake2b suffix."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", s) + "-" + hashlib.blake2b(s.encode(), digest_size=8).hexdigest()


def _value(step: int, s: int) -> float:
    return 1.0 / (step + s + 1)


def write_exporter_run(folder: Path, steps: int, series: int, run_id: str = "BENCH-1") -> Path:
    """The `exports` folder of one run with `steps` points in each of `series` float series."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("project_id", pa.string()), ("run_id", pa.string()), ("attribute_path", pa.string()),
        ("attribute_type", pa.string()), ("step", pa.decimal128(18, 6)),
        ("timestamp", pa.timestamp("ms", tz="UTC")), ("int_value", pa.int64()), ("float_value", pa.float64()),
        ("string_value", pa.string()), ("bool_value", pa.bool_()),
        ("datetime_value", pa.timestamp("ms", tz="UTC")), ("string_set_value", pa.list_(pa.string())),
        ("file_value", pa.struct([("path", pa.string())])),
        ("histogram_value", pa.struct([("type", pa.string()), ("edges", pa.list_(pa.float64())),
                                       ("values", pa.list_(pa.float64()))])),
    ])
    pdir = Path(folder) / "exports" / "data" / _sanitize(PROJECT)
    pdir.mkdir(parents=True, exist_ok=True)
    (Path(folder) / "exports" / "files" / _sanitize(PROJECT)).mkdir(parents=True, exist_ok=True)

    def part(n: int, paths: list, kinds: list, steps_: list, stamps: list, floats: list, strings: list) -> None:
        k = len(paths)
        cols = {"project_id": [PROJECT] * k, "run_id": [run_id] * k, "attribute_path": paths,
                "attribute_type": kinds, "step": steps_, "timestamp": stamps, "float_value": floats,
                "string_value": strings}
        table = pa.table({f.name: pa.array(cols.get(f.name, [None] * k), type=f.type) for f in schema})
        pq.write_table(table, pdir / f"{_sanitize(run_id)}_part_{n}.parquet")

    head = (["sys/id", "sys/name", "parameters/lr"], ["string", "string", "float"], [None] * 3, [None] * 3,
            [None, None, 0.001], [run_id, "bench-run", None])
    rows = [list(c) for c in head]
    n = 0
    for s in range(series):
        for start in range(0, steps, PART_ROWS):
            stop = min(steps, start + PART_ROWS)
            rows[0] += [f"train/s{s}"] * (stop - start)
            rows[1] += ["float_series"] * (stop - start)
            rows[2] += [Decimal(i) for i in range(start, stop)]
            rows[3] += [dt.datetime.fromtimestamp((T0_MS + 10 * i) / 1000, tz=dt.timezone.utc)
                        for i in range(start, stop)]
            rows[4] += [_value(i, s) for i in range(start, stop)]
            rows[5] += [None] * (stop - start)
            if len(rows[0]) >= PART_ROWS:
                part(n, *rows)
                rows, n = [[] for _ in range(6)], n + 1
    if rows[0]:
        part(n, *rows)
    return Path(folder) / "exports"


def write_scale_run(folder: Path, steps: int, series: int, run_id: str = "bench-1") -> Path:
    """The `.neptune` folder of one neptune-scale offline run of `steps` steps × `series` float series."""
    from neptune_api.proto.neptune_pb.ingest.v1 import common_pb2 as pb
    from neptune_scale.sync.operations_repository import OperationsRepository

    run_dir = Path(folder) / ".neptune" / f"{PROJECT.replace('/', '_')}_{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    repo = OperationsRepository(run_dir / "run_operations.sqlite3")
    repo.init_db()
    repo.save_metadata(PROJECT, run_id)
    created = pb.Run(run_id=run_id, experiment_id="bench-run", family=run_id)
    created.creation_time.FromMilliseconds(T0_MS)
    repo.save_create_run(created)
    names = [f"train/s{s}" for s in range(series)]
    batch = []
    for i in range(steps):
        update = pb.UpdateRunSnapshot(step=pb.Step(whole=i, micro=0))
        update.timestamp.FromMilliseconds(T0_MS + 10 * i)
        for s, name in enumerate(names):
            update.append[name].float64 = _value(i, s)
        batch.append(update)
        if len(batch) == 10_000:
            repo.save_update_run_snapshots(batch)
            batch = []
    if batch:
        repo.save_update_run_snapshots(batch)
    repo.close(cleanup_files=False)
    return Path(folder)

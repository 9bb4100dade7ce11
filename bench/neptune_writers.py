"""Long Neptune runs in the neptune-exporter and neptune-scale formats, for bench/bench_readers.py.

- `write_exporter_run`: `exports/data/<project dir>/<run dir>_part_<n>.parquet` in neptune-exporter's
  schema (the one tests/neptune_fixtures.py writes), one row per point, written the way the exporter
  writes (pq.ParquetWriter.write_batch per downloaded batch, row groups of up to 1Mi rows, parts of 50 MB).
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
PART_BYTES = 50 * 1024 * 1024   # neptune-exporter's target_part_size_bytes
ROW_GROUP_ROWS = 1024 * 1024    # pyarrow's largest row group, what one big write_batch becomes


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

    # As neptune-exporter's ParquetWriter writes: one pq.ParquetWriter per part (snappy), one write_batch per
    # batch it downloads (the parameters, then the metrics of up to 128 series), each a row group of at most
    # pyarrow's 1Mi rows; a new part once the file passes 50 MB, checked before each batch; part 0 renamed last.
    parts: list[Path] = []
    state: dict = {}

    def write(cols: dict) -> None:
        k = len(cols["attribute_path"])
        cols = dict(cols, project_id=[PROJECT] * k, run_id=[run_id] * k)
        batch = pa.record_batch([pa.array(cols.get(f.name, [None] * k), type=f.type) for f in schema],
                                schema=schema)
        if "writer" not in state or parts[-1].stat().st_size > PART_BYTES:
            if "writer" in state:
                state["writer"].close()
            parts.append(pdir / f"{_sanitize(run_id)}_part_{len(parts)}.parquet.tmp")
            state["writer"] = pq.ParquetWriter(parts[-1], schema, compression="snappy")
        state["writer"].write_batch(batch)

    write({"attribute_path": ["sys/id", "sys/name", "parameters/lr"], "attribute_type": ["string", "string", "float"],
           "float_value": [None, None, 0.001], "string_value": [run_id, "bench-run", None]})
    for start in range(0, series * steps, ROW_GROUP_ROWS):    # series after series, as the download stacks them
        rows = [divmod(g, steps) for g in range(start, min(series * steps, start + ROW_GROUP_ROWS))]
        write({"attribute_path": [f"train/s{s}" for s, _ in rows], "attribute_type": ["float_series"] * len(rows),
               "step": [Decimal(i).quantize(Decimal("1.000000")) for _, i in rows],
               "timestamp": [dt.datetime.fromtimestamp((T0_MS + 10 * i) / 1000, tz=dt.timezone.utc)
                             for _, i in rows],
               "float_value": [_value(i, s) for s, i in rows]})
    state["writer"].close()
    for part in reversed(parts):
        part.rename(part.with_suffix(""))
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

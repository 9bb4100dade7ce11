"""Long runs written in the W&B and Neptune 1.x offline formats, for bench_readers.py and tests.

The real clients take minutes per million points, so these write the same bytes
directly: the W&B writer frames `wandb_internal_pb2.Record`s the way wandb-core
does (a summary record beside each history record, `num` counting records, keys
as `nested_key`), the Neptune writer appends `LogFloats` operations as neptune
1.x's offline queue does.  `odd=True` adds the values a reader must keep exact:
integers, booleans, NaN / Infinity, a nested key, strings, an epoch axis.
"""
from __future__ import annotations

import json
import math
import os
import struct
import uuid
import zlib
from pathlib import Path

BLOCK = 32768
START = 1_700_000_000


class _Framer:
    """LevelDB-log framing as wandb writes it, into a file."""

    def __init__(self, f):
        self.f, self.pos = f, 7
        f.write(b":W&B" + struct.pack("<HB", 0xBEE1, 0))

    def write(self, payload: bytes) -> None:
        first, rest = True, payload
        while True:
            left = BLOCK - self.pos % BLOCK
            if left < 7:
                self.f.write(b"\0" * left)
                self.pos += left
                continue
            chunk, rest = rest[:left - 7], rest[left - 7:]
            kind = (1 if first else 4) if not rest else (2 if first else 3)
            crc = zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
            self.f.write(struct.pack("<IHB", crc, len(chunk), kind) + chunk)
            self.pos += 7 + len(chunk)
            first = False
            if not rest:
                return


def _metric_value(step: int, k: int, odd: bool) -> str:
    if not odd:
        return repr(1.0 / (step + k + 1))
    choice = (step + k) % 9
    return {0: "7", 1: "true", 2: "NaN", 3: "Infinity", 4: '"a string"', 5: "123456789012345678",
            6: "-0.0", 7: "1e-07"}.get(choice, repr(step * 0.5 + k))


def _core_items(items: list, rng) -> list:
    """The items in an order as wandb-core's Go map iteration gives it: the top-level entries in a
    random order, a nested dict's parts together (in a random order of their own)."""
    groups: dict = {}
    for key, value in items:
        groups.setdefault(key[0] if len(key) > 1 else (key[0],), []).append((key, value))
    entries = list(groups.values())
    rng.shuffle(entries)
    for entry in entries:
        rng.shuffle(entry)
    return [item for entry in entries for item in entry]


def _go_float(x: float) -> str:
    """A float as wandb-core's JSON writes a time (shortest digits, Go's exponent form: 1.7e+09)."""
    import numpy as np
    return np.format_float_scientific(x, unique=True, exp_digits=2).replace(".e", "e")


def write_wandb_run(folder: Path, steps: int, metrics: int, odd: bool = False, run_id: str = "bench001",
                    stdout_every: int = 0, core: bool = False) -> Path:
    """A run folder `offline-run-<time>-<id>/run-<id>.wandb` of `steps` history rows × `metrics` keys.

    stdout_every=N: a line the script printed after every N rows, as wandb-core's console capture logs
    it (an output_raw record; offline, files/output.log is left empty).
    core: each row as wandb 0.31's wandb-core writes `run.log({"train": {...}, ..., "phase": "main"})`
    (checked against runs the client wrote): every second metric under a nested dict ("train"),
    a string key, each record's items in Go map order (`_core_items`), the time in Go's exponent
    form, and before each row's summary record a second one of the run's time (`_wandb.runtime`
    as a nested key, `_runtime` as a legacy `key`)."""
    import random
    from wandb.proto import wandb_internal_pb2 as pb
    run_dir = Path(folder) / f"offline-run-20240101_000000-{run_id}"
    (run_dir / "files").mkdir(parents=True, exist_ok=True)
    path = run_dir / f"run-{run_id}.wandb"
    names = [[f"m{k}"] for k in range(metrics)]
    nested = [["train", f"m{k}"] if k == 1 else [f"m{k}"] for k in range(metrics)]   # odd: every 5th row
    with open(path, "wb") as f:
        out, num = _Framer(f), 0

        def emit(rec) -> None:
            nonlocal num
            num += 1
            rec.num = num
            out.write(rec.SerializeToString())

        rec = pb.Record()
        rec.header.version_info.producer = "bench-writer"
        emit(rec)
        rec = pb.Record()
        r = rec.run
        r.run_id, r.entity, r.project, r.display_name = run_id, "bench", "long-runs", f"run-{run_id}"
        r.start_time.seconds = START
        for key, value in (("lr", "0.001"), ("layers", "[8, 4]")):
            item = r.config.update.add()
            item.key, item.value_json = key, value
        emit(rec)
        rng = random.Random(run_id)
        core_names = [["train", f"m{k}"] if k % 2 == 0 else [f"m{k}"] for k in range(metrics)]
        for step in range(steps):
            ts = json.dumps(START + step * 0.01 + 0.5) if not core else _go_float(START + step * 0.01 + 0.5)
            items = [(["_step"], str(step)), (["_timestamp"], ts), (["_runtime"], repr(step * 0.01))]
            keys = core_names if core else nested if odd and step % 5 == 0 else names
            items += [(name, _metric_value(step, k, odd)) for k, name in enumerate(keys)]
            if odd:
                items.append((["epoch"], str(step // 100)))
            if core:
                items.append((["phase"], '"warmup"' if step < 100 else '"train"'))
                runtime = pb.Record()
                it = runtime.summary.update.add()
                it.nested_key.extend(["_wandb", "runtime"])
                it.value_json = str(step // 100)
                it = runtime.summary.update.add()
                it.key, it.value_json = "_runtime", str(step // 100)
                emit(runtime)
            summary = pb.Record()
            for key, value in (_core_items(items, rng) if core else items):
                it = summary.summary.update.add()
                it.nested_key.extend(key)
                it.value_json = value
            emit(summary)
            rec = pb.Record()
            for key, value in (_core_items(items, rng) if core else items):
                it = rec.history.item.add()
                it.nested_key.extend(key)
                it.value_json = value
            rec.history.step.num = step
            emit(rec)
            if stdout_every and step % stdout_every == stdout_every - 1:
                line = pb.Record()
                line.output_raw.output_type = pb.OutputRawRecord.STDOUT
                line.output_raw.timestamp.seconds = START + step // 100
                line.output_raw.line = f"step {step}: m0 {_metric_value(step, 0, odd)}\n"
                emit(line)
            if step % 1000 == 999:
                stats = pb.Record()
                stats.stats.timestamp.seconds = START + step // 100
                it = stats.stats.item.add()
                it.key, it.value_json = "cpu", repr(step / steps)
                emit(stats)
        rec = pb.Record()
        rec.exit.exit_code, rec.exit.runtime = 0, steps // 100
        emit(rec)
    if stdout_every:
        (run_dir / "files" / "output.log").write_bytes(b"")
    return run_dir


def write_neptune_v1_run(folder: Path, steps: int, series: int, odd: bool = False, per_op: int = 100,
                         stdout_every: int = 0, client: bool = False) -> Path:
    """`.neptune/offline/run__<uuid>__1__x/data-1.log` with `steps` points in each of `series` float series.

    per_op=100 is what `extend` / `log([...])` queue (one LogFloats op per series per 100 points, the
    client's batch size); per_op=1 is what a training loop of `append` calls queues: one op per call,
    step after step, series after series (the client merges ops only when it uploads them).
    stdout_every=N: a line the script printed after every N of those ops, as the client's stdout
    capture queues it (a LogStrings op on monitoring/<hash>/stdout), so other ops sit among the points.
    client: as neptune 1.x writes `run[path].append(value)` (checked against runs the client wrote):
    no step given, so each point's step is null (the series numbers it), and a printed line
    `print("step", i, "loss", x)` is one LogStrings op per write the capture sees (the words, the
    spaces and the newline: eight ops)."""
    run_uuid = str(uuid.UUID(int=steps * 1000 + series))
    run_dir = Path(folder) / ".neptune" / "offline" / f"run__{run_uuid}__1__bench"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metadata.json").write_text(json.dumps({
        "mode": "offline", "containerType": "run", "containerId": run_uuid, "structureVersion": 2,
        "neptuneClientVersion": "1.14.0", "createdAt": "2024-01-01T00:00:00.000Z"}))
    version = 0
    with open(run_dir / "data-1.log", "w") as f:
        def op(obj: dict) -> None:
            nonlocal version
            version += 1
            f.write(json.dumps({"obj": obj, "version": version, "at": START + version * 0.001}) + "\n")

        op({"type": "AssignString", "path": ["sys", "name"], "value": "bench-run"})
        op({"type": "AssignFloat", "path": ["parameters", "lr"], "value": 0.001})
        for start in range(0, steps, per_op):
            for s in range(series):
                values = []
                for step in range(start, min(steps, start + per_op)):
                    value = 1.0 / (step + s + 1)
                    if odd and step % 7 == 3:
                        value = {0: math.nan, 1: 7, 2: math.inf}.get(s % 3, -0.0)
                    # the client's key order; a series logged without steps has "step": null (numbered)
                    values.append({"value": value, "step": None if client or odd and s == 1 else float(step),
                                   "ts": START + step * 0.01})
                op({"type": "LogFloats", "path": ["train", f"s{s}"], "values": values})
                printed = stdout_every and (start // per_op * series + s + 1) % stdout_every == 0
                if printed and client:
                    for word in ("step", " ", str(start), " ", "loss", " ", repr(values[-1]["value"]), "\n"):
                        op({"type": "LogStrings", "path": ["monitoring", "7d3a9c1e", "stdout"],
                            "values": [{"value": word, "step": None, "ts": START + start * 0.01}]})
                elif printed:
                    op({"type": "LogStrings", "path": ["monitoring", "7d3a9c1e", "stdout"],
                        "values": [{"value": f"step {start}: loss {values[-1]['value']}", "step": None,
                                    "ts": START + start * 0.01}]})
    os.utime(run_dir / "data-1.log")
    return Path(folder)

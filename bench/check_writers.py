"""Are bench/run_writers.py's Neptune 1.x files what neptune's own reader reads?

    python bench/check_writers.py

Writes a small run with write_neptune_v1_run (odd values, printed lines among the
points) and reads its queue back with neptune 1.x's DiskQueue (the reader `neptune
sync` uploads from), counting the LogFloats points; exits non-zero on a mismatch.
(The W&B writer's logs are read by wandb-core, a Go binary with no offline reading
entry point: `wandb sync` needs a server that ingests runs, which no fixture here
provides.)
"""
from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_writers import write_neptune_v1_run  # noqa: E402


def main() -> None:
    from neptune.core.components.queue.disk_queue import DiskQueue
    from neptune.internal.operation import Operation
    steps, series = 1000, 3
    for shape in ({"odd": True, "stdout_every": 4}, {"per_op": 1, "stdout_every": 10, "client": True},
                  {"client": True}):
        with tempfile.TemporaryDirectory() as tmp:
            root = write_neptune_v1_run(Path(tmp), steps, series, **shape)
            [run_dir] = (root / ".neptune" / "offline").iterdir()
            queue = DiskQueue(run_dir, lambda op: op.to_dict(), Operation.from_dict, threading.RLock())
            points, kinds = 0, set()
            while batch := queue.get_batch(1000):
                for element in batch:
                    kinds.add(type(element.obj).__name__)
                    if type(element.obj).__name__ == "LogFloats":
                        points += len(element.obj.values)
                queue.ack(batch[-1].ver)
            queue.close()
        print(f"neptune DiskQueue read {points} points of {shape}; operations: {sorted(kinds)}")
        if points != steps * series or ("LogStrings" in kinds) != bool(shape.get("stdout_every")):
            raise SystemExit(f"expected {steps * series} points, and the printed lines' LogStrings where it prints")


if __name__ == "__main__":
    main()

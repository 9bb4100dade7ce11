"""A small Neptune project with every attribute type the readers map, for tests and the demo."""
from __future__ import annotations

import datetime as dt

from .data import NeptuneData

T0 = 1_740_830_400_000     # 2025-03-01T12:00:00Z, in ms


def seed(data: NeptuneData, project: str = "ws/proj", points: int = 300) -> NeptuneData:
    """run-1: params of each type, tags, a float series of `points` points, a string series,
    console output, a histogram series, a file and a file series; run-2: a fork of run-1 at
    step 10 with its own points; run-3: a second experiment's run with one parameter."""
    r1 = data.run(project, "run-1", experiment="exp-a", created_ms=T0)
    r1.log_configs({"parameters/lr": 0.1, "parameters/epochs": 7, "parameters/use_amp": True,
                    "parameters/optimizer": "sgd", "eval/final_acc": 0.93,
                    "config/started": dt.datetime(2025, 3, 1, 12, 0, 5, tzinfo=dt.timezone.utc),
                    "config/groups": {"g2", "g1"}})
    r1.add_tags("b", "a")
    for i in range(points):
        r1.log_metrics(i, {"train/loss": 1.0 / (i + 1), "train/acc": i / points}, ts=T0 + 1000 * i)
    r1.log_metrics(points + 0.5, {"train/loss": 0.0}, ts=T0 + 1000 * points)   # a decimal step
    for i in range(3):
        r1.log_string("logs/info", i, f"line {i}", ts=T0 + 2000 + i)
        r1.log_string("monitoring/abc/stdout", i, f"out {i}\n", ts=T0 + 3000 + i)
    r1.log_histogram("weights/hist", 2, [0.0, 1.0, 2.0], [5.0, 6.0], ts=T0 + 4000)
    r1.upload_file("files/model", b"model-bytes", "model.bin")
    r1.log_file("images/pred", 0, b"\x89PNG-zero", "0.png", ts=T0 + 5000)
    r1.log_file("images/pred", 1, b"\x89PNG-one", "1.png", ts=T0 + 5001)
    r2 = data.run(project, "run-2", experiment="exp-a", fork_of=("run-1", 10), created_ms=T0 + 10_000)
    for i in range(11, 20):
        r2.log_metrics(i, {"train/loss": 0.5 / i}, ts=T0 + 10_000 + i)
    r3 = data.run(project, "run-3", experiment="exp-b", created_ms=T0 + 20_000)
    r3.log_configs({"params/seed": 42})
    return data

"""A run as wandb-core (the real client since 0.18) writes it: every history and summary record's
items in Go map order, a new order nearly every record once a run logs a dozen keys; nested
dicts as nested keys; strings and booleans among the numbers; beside each summary record a
second one of the run's time (`_wandb.runtime`, `_runtime`); a printed line between rows.  The run
is made by the real client offline.  The chunked history reader reads it in bulk, row for row what the row path
gives, and the store-time fold decodes a handful of its summary records, not one a row."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cometx_mirror.sources.wandb import history_bulk, records

from test_wandb_history_bulk import _fetch_both
from wandb_fixtures import offline_env

STEPS = 1500
GENERATOR = r'''
import sys
import wandb
run = wandb.init(project="order", entity="ent", dir=sys.argv[1])
for i in range(%d):
    row = {"train": {"loss": 1.0 / (i + 1), "acc": i / 1500}, "val": {"loss": 2.0 / (i + 1)},
           "lr": 0.001, "phase": "warm" if i < 100 else "main", "flag": i %% 2 == 0, "count": i,
           **{f"m{k}": (i + k) * 0.5 for k in range(8)}}
    if i %% 500 == 250:
        row["late"] = {"x": 1}              # a key set seen once in a while
    run.log(row)
    print("step", i, "loss", 1.0 / (i + 1))   # an output record between rows
run.finish()
''' % STEPS


@pytest.fixture(scope="module")
def core_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb-core")
    subprocess.run([sys.executable, "-c", GENERATOR, str(root)], env=offline_env(root), check=True, timeout=240,
                   cwd=str(root), stdout=subprocess.DEVNULL)
    return root / "wandb"


def _log(folder) -> bytes:
    return next(folder.glob("offline-run-*/run-*.wandb")).read_bytes()


def test_the_client_writes_items_in_many_orders(core_run):
    """(What the rest is about: were the client to write one order, this file would test little.)"""
    orders, kinds = set(), set()
    for _, r in records.iter_records(_log(core_run)):
        if r.WhichOneof("record_type") == "history":
            orders.add(tuple(tuple(it.nested_key) for it in r.history.item))
            kinds |= {len(it.nested_key) for it in r.history.item}
    assert len(orders) > STEPS // 2 and kinds == {1, 2}


def test_history_in_any_order_is_read_in_bulk_as_the_row_path_reads_it(core_run, monkeypatch, tmp_path):
    points = {"arrays": 0, "records": 0}
    real = history_bulk.ChunkReader.pieces

    def counting(self, chunk):
        for kind, piece in real(self, chunk):
            points[kind] += len(piece[1]) if kind == "arrays" else len(piece)
            yield kind, piece
    monkeypatch.setattr(history_bulk.ChunkReader, "pieces", counting)
    bulk, rows, _ = _fetch_both(monkeypatch, core_run, tmp_path)
    assert bulk == rows
    names = {r.split("'")[3] for r in rows["metrics"]}
    assert {"train.loss", "train.acc", "val.loss", "flag", "count", "m7"} <= names and "phase" not in names
    assert len(rows["metrics"]) >= STEPS * 14
    assert points["arrays"] >= STEPS * 14 and points["records"] <= 10     # records left to the row path


def test_the_fold_decodes_a_handful_of_summary_records_and_folds_the_same(core_run, monkeypatch):
    data = _log(core_run)
    decoded = []
    real = records._decode

    def counting(pb, payload, name, offset):
        r = real(pb, payload, name, offset)
        decoded.append(r.WhichOneof("record_type"))
        return r
    monkeypatch.setattr(records, "_decode", counting)
    held = vars(records.fold(data, "t.wandb", history=False))
    summaries = decoded.count("summary")
    with monkeypatch.context() as m:                 # the reference: every summary record decoded
        m.setattr(records._LatestSummary, "hold", lambda self, payload, offset: False)
        m.setattr(records._LatestSummary, "learn", lambda self, r: None)
        decoded.clear()
        every = vars(records.fold(data, "t.wandb", history=False))
    assert decoded.count("summary") >= 2 * STEPS
    assert decoded.count("output_raw") >= STEPS // 2           # the printed lines, between the rows
    assert held == every
    assert held["summary"]["train"]["loss"] == 1.0 / STEPS and held["summary"]["late"] == {"x": 1}
    assert summaries < 30, summaries

"""W&B offline points stream into the index in batches, giving the rows the eager reader gave."""
from __future__ import annotations

import json

import pytest

from cometx_mirror import metric_stream
from cometx_mirror.index.db import open_read
from cometx_mirror.model import Metrics
from cometx_mirror.sources import get_normalizer
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.sources.wandb import normalize
from cometx_mirror.sources.wandb.records import fold, is_history
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch

from bench.run_writers import write_wandb_run


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory):
    """A 900-row run with ints, bools, NaN/Infinity, strings, a nested key, an epoch; fetched."""
    src = tmp_path_factory.mktemp("odd") / "wandb"
    write_wandb_run(src, 900, 4, odd=True)
    mirror = Mirror.init(tmp_path_factory.mktemp("mirror"))
    assert run_fetch(mirror, "wandb", str(src), FetchOptions()).errors == []
    return mirror


def _eager_metrics(mirror, manifest) -> Metrics:
    """The points as the reader gave them before streaming: every row folded, then mapped."""
    log = fold(mirror.objects.get_bytes(manifest["log"]["object"]))
    state = normalize.RunState(run={}, history=log.history, system=log.system)
    return normalize._metrics(state)[0]


def _manifest(mirror):
    [(label, mid)] = [(lbl, m) for lbl, m in mirror.current_manifests().items() if "experiment/" in lbl]
    return mirror.get_json(mid)


def test_streamed_points_equal_the_eager_reading(odd_run, monkeypatch):
    monkeypatch.setattr(metric_stream, "BATCH_POINTS", 1000)   # several batches
    manifest = _manifest(odd_run)
    exp = get_normalizer(manifest["normalizer"])(odd_run, manifest)
    assert isinstance(exp.metrics, metric_stream.MetricStream)
    batches = list(metric_stream.batches(exp.metrics))
    assert len(batches) > 3 and all(len(b) <= 1000 + 8 for b in batches)
    eager = _eager_metrics(odd_run, manifest)
    streamed = exp.metrics.whole()
    for column in ("name", "step", "epoch", "timestamp", "text", "context"):
        assert getattr(streamed, column) == getattr(eager, column), column
    assert [json.dumps(v) for v in streamed.value] == [json.dumps(v) for v in eager.value]
    assert {t for t in streamed.text if t} >= {"7", "true", "123456789012345678"}
    assert "train.m1" in set(streamed.name)         # the nested key took the row path


def test_index_rows_match_eager_and_survive_reindex(odd_run):
    manifest = _manifest(odd_run)
    eager = _eager_metrics(odd_run, manifest)
    query = "SELECT name, step, epoch, epoch_ms(timestamp), value::VARCHAR, text FROM metrics ORDER BY ALL"
    with open_read(odd_run.index_path) as con:
        before = con.execute(query).fetchall()
    assert len(before) == len(eager)
    assert manifest["extent"]["points"] == 900                  # history rows counted, not kept
    indexer.rebuild(odd_run)
    with open_read(odd_run.index_path) as con:
        assert con.execute(query).fetchall() == before


def test_history_records_told_from_their_tags():
    from wandb.proto import wandb_internal_pb2 as pb
    rec = pb.Record()
    rec.num = 300
    rec.history.item.add(key="a", value_json="1")
    assert is_history(rec.SerializeToString())
    rec = pb.Record()
    rec.num = 5
    rec.summary.update.add(key="_timestamp", value_json="1")
    rec.control.connection_id = "x"
    assert not is_history(rec.SerializeToString())
    assert is_history(b"\x08")                                   # damaged: decode and report it


def test_a_summary_value_then_a_key_under_it_merge_as_before():
    from test_wandb_records import record, write_log  # noqa: F401  (framing helper)
    from wandb.proto import wandb_internal_pb2 as pb
    first, second = pb.Record(), pb.Record()
    first.summary.update.add(key="opt", value_json='{"m": 0.8}')
    second.summary.update.add(nested_key=["opt", "lr"], value_json="0.1")
    log = fold(write_log([first.SerializeToString(), second.SerializeToString()]))
    assert log.summary == {"opt": {"m": 0.8, "lr": 0.1}}

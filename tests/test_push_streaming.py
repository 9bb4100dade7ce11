"""Push streams metric points: the plan and the sender read the mirror's stream a batch at a
time, never whole(), and still send exactly the missing points, once (fresh, resumed, and with
a batch whose answer was lost after it was stored)."""
from __future__ import annotations

from collections import Counter

import pytest

from cometx_mirror import model
from cometx_mirror.metric_stream import MetricStream
from cometx_mirror.server.runner import start_server
from cometx_mirror.sinks.comet import experiment as E
from cometx_mirror.sinks.comet.client import CometClient, resolve_credentials
from cometx_mirror.sinks.comet.plan import plan_experiment

BATCH = 50


class NeverWhole(MetricStream):
    """A stream that fails the test if anything reads it whole, and counts its batches."""

    def __init__(self, points: list[tuple]):
        self.produced = 0
        self.largest = 0

        def produce():
            for start in range(0, len(points), BATCH):
                batch = model.Metrics()
                for p in points[start:start + BATCH]:
                    batch.add(*p)
                self.produced += 1
                self.largest = max(self.largest, len(batch))
                yield batch
        super().__init__(produce)

    def whole(self):
        raise AssertionError("push read the metric points whole")


def _points(n: int) -> list[tuple]:
    # (name, value, step, epoch, timestamp, context, text): a repeated point, exact texts
    out = [("loss", 1.0 / (i + 1), i, i // 100, 1_700_000_000_000 + i, None, None) for i in range(n)]
    out += [("acc", 0.5, i, None, 1_700_000_000_000 + i, "train", None) for i in range(n // 3)]
    out += [("loss", 0.25, 7, 0, 1_700_000_000_007, None, None)] * 2
    out += [("big", float(2 ** 53), 1, None, 1_700_000_000_001, None, "9007199254740993")]
    return out


def _key(p: tuple) -> tuple:
    name, value, step, epoch, ts, context, text = p
    return (name, step, epoch, ts, text if text is not None else model.double_text(value), context)


def _held(client, key) -> Counter:
    m = E.read_metrics(client, key)
    whole = model.Metrics()
    for batch in m.batches():
        for c in ("name", "step", "epoch", "timestamp", "value", "context", "text"):
            getattr(whole, c).extend(getattr(batch, c))
    return Counter((whole.name[i], whole.step[i], whole.epoch[i], whole.timestamp[i], whole.exact(i),
                    whole.context[i]) for i in range(len(whole)))


@pytest.fixture(scope="module")
def dest():
    server = start_server()
    client = CometClient(resolve_credentials(server.api_key, server.clientlib_url))
    yield server, client
    server.stop()


def _push(client, server, key: str, exp: model.Experiment, old=None, create=True):
    writer = E.ExperimentWriter(client, None, server.workspace, "streamed", key, lambda a: a.asset_id)
    if create:
        writer.create()
    plan = plan_experiment(exp, old, create=create)
    writer.apply(exp, plan, {"experiment": exp.id, "manifest": "m"},
                 before=old.metrics if old is not None else None, before_output="")
    writer.appends.check_no_excess()
    return plan


def _exp(key: str, points) -> model.Experiment:
    exp = model.Experiment(source="comet", workspace="w", project="p", key=key)
    exp.metrics = NeverWhole(points)
    return exp


def test_a_fresh_push_sends_every_point_once_a_batch_at_a_time(dest):
    server, client = dest
    points = _points(400)
    exp = _exp("src1", points)
    key = "a" * 32
    plan = _push(client, server, key, exp)
    assert plan.metrics.count == len(points)
    assert exp.metrics.largest == BATCH                    # never more than one stream batch at once
    assert exp.metrics.produced == 3 * -(-len(points) // BATCH)   # plan, send, read-back check
    assert _held(client, key) == Counter(_key(p) for p in points)


def test_a_resumed_push_sends_only_the_missing_points(dest):
    server, client = dest
    points = _points(300)
    key = "b" * 32
    first = [p for i, p in enumerate(points) if i % 3 == 0] + [points[-2]]    # one of the two repeats
    _push(client, server, key, _exp("src2", first))
    old, _, _ = E.destination_picture(client, key)          # as after a killed push
    exp = _exp("src2", points)
    plan = _push(client, server, key, exp, old=old, create=False)
    assert plan.metrics.count == len(points) - len(first)
    assert _held(client, key) == Counter(_key(p) for p in points)     # each point exactly once


def test_a_stored_batch_whose_answer_was_lost_is_not_sent_again(dest):
    server, client = dest
    points = _points(200)
    key = "c" * 32
    server.reset_counters()
    server.set_faults("applied-502 path=batch/logger/experiment/metric nth=1")
    try:
        _push(client, server, key, _exp("src3", points))
    finally:
        server.set_faults(None)
    sent = server.counters()["endpoints"]["POST /clientlib/batch/logger/experiment/metric"]
    assert sent["count"] == 1 and sent["status"] == {"502": 1}    # stored, answered 502, never resent
    assert _held(client, key) == Counter(_key(p) for p in points)


def test_a_large_destination_answer_is_read_back_as_a_stream_with_the_same_points(dest, monkeypatch):
    """read_metrics holds a large get-all answer as its bytes and parses them a run at a time on
    each pass: the points equal those of the answer parsed whole, and nothing reads them whole."""
    from cometx_mirror.sources.comet import metric_columns
    server, client = dest
    points = _points(900)
    key = "e" * 32
    _push(client, server, key, _exp("src-large", points))
    parsed_whole = _held(client, key)
    monkeypatch.setattr(metric_columns, "WHOLE_BYTES", 0)
    monkeypatch.setattr(E, "BATCH_POINTS", 200)
    monkeypatch.setattr(MetricStream, "whole", NeverWhole.whole)
    read = E.read_metrics(client, key)
    assert [len(b) for b in read.batches()] == [200] * (len(points) // 200) + [len(points) % 200]
    assert _held(client, key) == parsed_whole == Counter(_key(p) for p in points)

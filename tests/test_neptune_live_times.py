"""A live Neptune run whose server gives no sys/modification_time: the run's updated_at is its
latest point's time, found by the scan of the stored float pages (sources/neptune/live.py)."""
from __future__ import annotations

from neptune_fixtures import q

from cometx_mirror.server.neptune import start_neptune_server
from cometx_mirror.server.neptune.seed import T0, seed
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch


def test_updated_at_falls_back_to_the_latest_point(tmp_path):
    srv = start_neptune_server()
    try:
        seed(srv.data, points=20)
        runs = srv.data.projects["ws/proj"]
        run2 = runs.by_custom_id("run-2")
        run2.attrs.pop("sys/modification_time")
        mirror = Mirror.init(tmp_path / "m")
        result = run_fetch(mirror, "neptune", "ws/proj", FetchOptions(api_key=srv.api_token))
        assert not result.errors, result.errors
        got = dict(q(mirror, "SELECT experiment_key, epoch_ms(updated_at) FROM experiments"))
        latest = max(ts for s in run2.series.values() for _, ts, _ in s["points"])
        assert latest == T0 + 10_019
        assert got["run-2"] == latest
        assert got["run-1"] == runs.by_custom_id("run-1").modification_time()   # the server's own time
    finally:
        srv.stop()

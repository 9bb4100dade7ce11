"""push --symlink: link experiments into another project of the same Comet instance, once."""
from __future__ import annotations

import os

from push_fixtures import SDK_QUIET, fetch, last_json, push, writes

from cometx_mirror.server.runner import start_server


def test_symlink_links_each_experiment_once_and_copies_nothing(tmp_path):
    server = start_server()
    saved = dict(os.environ)
    try:
        os.environ.update(server.env(), HOME=str(tmp_path), COMET_ERROR_TRACKING_ENABLE="false",
                          COMET_DISABLE_ANNOUNCEMENT="true")
        import comet_ml
        exp = comet_ml.Experiment(project_name="source", **SDK_QUIET)
        exp.log_metric("loss", 0.5, step=1)
        exp.end()
        key = exp.get_key()
        mirror = tmp_path / "m"
        ws = server.workspace
        fetch(server, mirror, f"{ws}/source")
        server.reset_counters()

        first = last_json(push(server, mirror, f"{ws}/source", f"{ws}/linked", "--symlink"))
        assert first["symlinked"] == 1 and first["new"] == 0
        assert writes(server) == {"/api/rest/v2/write/project/create": 1, "/api/rest/v2/write/project/symlink": 1}
        api = comet_ml.API(cache=False)
        assert [e.key for e in api.get_experiments(ws, "linked")] == [key]
        assert len(server.state.data["experiments"]) == 1          # linked, not copied

        server.reset_counters()
        again = last_json(push(server, mirror, f"{ws}/source", f"{ws}/linked", "--symlink"))
        assert again["symlinked"] == 0 and writes(server) == {}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()

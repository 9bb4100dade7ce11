"""push: round trips through real servers, write counts of repeat and delta pushes."""
from __future__ import annotations

import json

from push_fixtures import SDK_QUIET, differences, fetch, last_json, push, seed_experiment, writes

from cometx_mirror.server.runner import start_server


def test_round_trip_to_another_server_is_lossless_and_a_repeat_sends_no_write(seeded, mirror_a, server_b, tmp_path):
    ws = seeded.workspace
    first = last_json(push(server_b, mirror_a, ws, server_b.workspace))
    assert (first["new"], first["failed"], first["errors"]) == (2, 0, [])
    assert first["workspace_entities"] == 3            # the artifact, the registry model, the panel

    back = tmp_path / "back"
    fetch(server_b, back, server_b.workspace)
    assert differences(mirror_a, back) == {}

    sent = writes(server_b)
    assert sent["/clientlib/logger/add/run"] == 2
    assert sent["/clientlib/batch/logger/experiment/metric"] == 2      # 403 points each: one batch
    assert "/api/rest/v2/write/experiment/metric" not in sent

    server_b.reset_counters()
    again = last_json(push(server_b, mirror_a, ws, server_b.workspace))
    assert (again["unchanged"], again["new"], again["updated"]) == (2, 0, 0)
    assert writes(server_b) == {}
    assert server_b.counters()["total"] <= 4, [r["endpoint"] for r in server_b.requests()]


def test_push_into_another_workspace_of_the_same_server(seeded, mirror_a, tmp_path):
    # same instance: asset ids and keys must not clash, so they are derived (and remapped)
    result = last_json(push(seeded, mirror_a, f"{seeded.workspace}/proj-a", "shared-team/copied"))
    assert (result["new"], result["failed"]) == (2, 0)
    back = tmp_path / "back"
    fetch(seeded, back, "shared-team/copied")
    experiment_tables = ("experiments", "params", "metrics", "others", "tags", "system_details", "texts",
                         "assets")
    assert differences(mirror_a, back, experiment_tables) == {}
    seeded.reset_counters()
    assert last_json(push(seeded, mirror_a, f"{seeded.workspace}/proj-a", "shared-team/copied"))["unchanged"] == 2
    assert writes(seeded) == {}


def test_a_grown_source_sends_only_the_difference(tmp_path, monkeypatch, server_b):
    a = start_server()
    try:
        monkeypatch.setenv("HOME", str(tmp_path))
        for k, v in {**a.env(), "COMET_ERROR_TRACKING_ENABLE": "false", "COMET_DISABLE_ANNOUNCEMENT": "true"}.items():
            monkeypatch.setenv(k, v)
        import comet_ml
        key = seed_experiment(comet_ml, "grow", 0, points=50)
        mirror = tmp_path / "m"
        fetch(a, mirror, f"{a.workspace}/grow")
        push(server_b, mirror, f"{a.workspace}/grow", f"{server_b.workspace}/grow")

        exp = comet_ml.ExistingExperiment(previous_experiment=key, **SDK_QUIET)
        for step in range(50, 60):
            exp.log_metric("loss", 0.01, step=step)
        exp.add_tag("grown")
        exp.log_asset_data("later", name="later.txt")
        exp.end()
        fetch(a, mirror, f"{a.workspace}/grow")

        server_b.reset_counters()
        result = last_json(push(server_b, mirror, f"{a.workspace}/grow", f"{server_b.workspace}/grow"))
        assert result["updated"] == 1
        sent = writes(server_b)
        assert sent.pop("/clientlib/batch/logger/experiment/metric") == 1
        assert sent.pop("/clientlib/tags/add-tags-to-experiment") == 1
        assert sent.pop("/clientlib/asset/upload") == 1
        # the marker moves to the new manifest; the SDK's resumed run also changed its times, state
        # and its auto-logged curr_step parameter at the source: those are part of the difference
        assert sent.pop("/api/rest/v2/write/experiment/log-other") == 1
        assert set(sent) <= {"/clientlib/batch/logger/experiment/parameter",
                             "/api/rest/v2/write/experiment/set-start-end-time",
                             "/api/rest/v2/write/experiment/update-status"}, sent
        back = tmp_path / "back"
        fetch(server_b, back, f"{server_b.workspace}/grow")
        tables = ("experiments", "params", "metrics", "others", "tags", "system_details", "texts", "assets")
        assert differences(mirror, back, tables) == {}
    finally:
        a.stop()


def test_panels_alone(seeded, mirror_a, server_b, tmp_path):
    result = last_json(push(server_b, mirror_a, f"{seeded.workspace}/panels", server_b.workspace))
    assert result["workspace_entities"] == 1
    back = tmp_path / "back"
    fetch(server_b, back, f"{server_b.workspace}/panels")
    assert differences(mirror_a, back, ("panels",)) == {}


def test_an_older_snapshot_can_be_pushed(seeded, mirror_a, server_b, tmp_path):
    from cometx_mirror.store.mirror import Mirror
    snapshot = [s.id for s in Mirror.open(mirror_a).history()
                if any(label.startswith("experiment/") for label in s.manifests)][-1]
    result = last_json(push(server_b, mirror_a, f"{seeded.workspace}/proj-a", f"{server_b.workspace}/restored",
                            "--snapshot", snapshot))
    assert (result["new"], result["failed"]) == (2, 0)
    push(server_b, mirror_a, f"{seeded.workspace}/proj-a", f"{server_b.workspace}/restored", "--snapshot", "0" * 32,
         expect=1)


def test_ids_inside_confusion_matrix_and_datagrid_assets_are_remapped():
    import io
    import zipfile

    from cometx_mirror.sinks.comet.experiment import remap_ids
    old, new = "a" * 32, "b" * 32
    cm = json.dumps({"sampleMatrix": [[{"assetId": old}]], "other": "x"}).encode()
    assert remap_ids(cm, {old: new}) == cm.replace(old.encode(), new.encode())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.sqlite", b"\x00header" + old.encode() + b"\x00tail")
    out = zipfile.ZipFile(io.BytesIO(remap_ids(buf.getvalue(), {old: new})))
    assert out.read("data.sqlite") == b"\x00header" + new.encode() + b"\x00tail"


def test_the_rich_seeded_workspace_round_trips(seeded_server, server_b, tmp_path):
    """Every kind of data the project's seeder logs (images, audio, video, embeddings, datagrids, 3D,
    offline uploads, several artifact versions and aliases, registry stages, running experiments)."""
    ws = seeded_server.workspace
    mirror = tmp_path / "m"
    fetch(seeded_server, mirror, ws)
    result = last_json(push(server_b, mirror, ws, server_b.workspace))
    assert (result["failed"], result["errors"]) == (0, []), result
    assert result["new"] == len(seeded_server.seeded["experiments"]) and result["workspace_entities"] >= 4
    back = tmp_path / "back"
    fetch(server_b, back, server_b.workspace)
    assert differences(mirror, back) == {}
    import duckdb
    con = duckdb.connect(str(back / "index.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM projects WHERE notes LIKE 'Notes for %'").fetchone()[0] >= 2
    con.close()
    server_b.reset_counters()
    push(server_b, mirror, ws, server_b.workspace)
    assert writes(server_b) == {}


def test_one_experiment_by_name_or_key(seeded, mirror_a, server_b):
    ws = seeded.workspace
    by_name = last_json(push(server_b, mirror_a, f"{ws}/proj-a/run-0", f"{server_b.workspace}/one"))
    assert (by_name["new"], by_name["failed"]) == (1, 0)
    by_key = last_json(push(server_b, mirror_a, f"{ws}/proj-a/{seeded.keys[0]}", f"{server_b.workspace}/one"))
    assert by_key["unchanged"] == 1                   # the same experiment: already there
    push(server_b, mirror_a, f"{ws}/proj-a/no-such-run", f"{server_b.workspace}/one", expect=1)

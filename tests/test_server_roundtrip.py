"""Log with the real comet_ml SDK, read back with the real comet_ml.API(cache=False), compare."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

from server_fixtures import SDK_QUIET

CHECKPOINT = os.urandom(20_000)


def _values(summary: list) -> dict:
    return {item["name"]: item["valueCurrent"] for item in summary}


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """One experiment logging every kind of resource, then its APIExperiment from a fresh API."""
    from cometx_mirror.server import start_server
    from server_fixtures import comet_environment
    import comet_ml

    server = start_server()
    home = tmp_path_factory.mktemp("rich-home")
    with comet_environment(server, home):
        (home / "a.txt").write_text("hello asset")
        (home / "ckpt.bin").write_bytes(CHECKPOINT)
        exp = comet_ml.Experiment(project_name="round-trip", **SDK_QUIET)
        assert exp.alive
        exp.set_name("rich-run")
        for step in range(500):
            exp.log_metric("loss", 1.0 / (step + 1), step=step, epoch=step // 100)
        with exp.validate():
            exp.log_metric("acc", 0.75, step=7, epoch=1)
        exp.log_metric("sys.gpu.0.used", 42.0, step=1)
        exp.log_parameters({"lr": 0.01, "layers": 3, "opt": {"name": "adam", "beta": 0.9}, "flag": True})
        exp.log_other("dataset", "mnist")
        exp.log_others({"seed": 7})
        exp.add_tags(["t1", "t2"])
        exp.log_html("<b>one</b>")
        exp.log_html("<i>two</i>")
        exp.set_model_graph("Linear(3, 1)")
        exp.log_code(code="print('hi')\n", code_name="snippet.py")
        exp.log_asset(str(home / "a.txt"), file_name="a.txt", step=3, metadata={"k": "v"})
        exp.log_asset_data("other bytes!", name="a.txt")                 # duplicate name
        exp.log_asset(str(home / "ckpt.bin"), file_name="ckpt.bin", step=5)
        exp.log_remote_asset("s3://bucket/data/train.csv", remote_file_name="train.csv", metadata={"s": 1})
        exp.log_model("mymodel", str(home / "ckpt.bin"), file_name="weights.bin")
        exp.log_text("a sample", step=2)
        exp.log_curve("roc", [0, 1], [1, 0], step=1)
        exp.log_histogram_3d([1, 2, 3], name="hist", step=4)
        exp.log_confusion_matrix([0, 1], [1, 1])
        exp.log_system_info("cluster", "c1")
        exp.log_dependency("torch", "2.0")
        from comet_ml.messages import StandardOutputMessage
        exp._enqueue_message(StandardOutputMessage(output="line one\n"))
        exp._enqueue_message(StandardOutputMessage(output="line two\n"))
        key = exp.get_key()
        exp.end()
        api = comet_ml.API(cache=False)
        yield {"server": server, "key": key, "api": api, "exp": api.get_experiment_by_key(key), "home": home}
    server.stop()


def test_metadata_and_name(rich):
    exp = rich["exp"]
    meta = exp.get_metadata()
    assert meta["experimentKey"] == rich["key"]
    assert meta["experimentName"] == "rich-run" == exp.name == exp.get_name()
    assert meta["projectName"] == "round-trip" and meta["workspaceName"] == "alice"
    assert meta["running"] is False and meta["hasCrashed"] is False and meta["archived"] is False
    assert meta["endTimeMillis"] >= meta["startTimeMillis"]
    assert exp.get_state() == "finished"


def test_metrics_are_unsampled_with_step_epoch_context(rich):
    exp = rich["exp"]
    loss = exp.get_metrics("loss")
    assert [m["step"] for m in loss] == list(range(500))
    assert [m["epoch"] for m in loss] == [s // 100 for s in range(500)]
    assert [float(m["metricValue"]) for m in loss] == [1.0 / (s + 1) for s in range(500)]
    everything = exp.get_metrics()
    assert len([m for m in everything if m["metricName"] == "loss"]) == 500
    acc = exp.get_metrics("acc")
    assert len(acc) == 1 and acc[0]["runContext"] == "validate" and acc[0]["step"] == 7 and acc[0]["epoch"] == 1
    summary = {m["name"]: m for m in exp.get_metrics_summary()}
    assert summary["loss"]["valueCurrent"] == str(1.0 / 500) and summary["loss"]["valueMax"] == "1.0"
    assert summary["loss"]["stepCurrent"] == 499
    assert "sys.gpu.0.used" in exp.get_system_details()["systemMetricNames"]


def test_metrics_chart(rich):
    chart = rich["api"].get_metrics_for_chart([rich["key"]], ["loss"])
    series = chart[rich["key"]]["metrics"][0]
    assert series["metricName"] == "loss" and series["steps"] == list(range(500))
    assert series["values"][0] == 1.0


def test_parameters_and_others(rich):
    exp = rich["exp"]
    params = _values(exp.get_parameters_summary())
    assert params["lr"] == "0.01" and params["layers"] == "3" and params["flag"] == "true"
    assert params["opt|name"] == "adam" and params["opt|beta"] == "0.9"
    others = _values(exp.get_others_summary())
    assert others["dataset"] == "mnist" and others["seed"] == "7" and others["Name"] == "rich-run"


def test_tags_html_graph_code_output(rich):
    exp = rich["exp"]
    assert exp.get_tags() == ["t1", "t2"]
    assert exp.get_html() == "<b>one</b><i>two</i>"
    assert exp.get_model_graph() == "Linear(3, 1)"
    assert exp.get_output() == "line one\nline two\n"
    assert exp.get_code() == ""     # the modern SDK uploads code as source_code assets


def test_system_details_every_key(rich):
    exp = rich["exp"]
    details = exp.get_system_details()
    for getter in ("get_os", "get_os_type", "get_os_release", "get_user", "get_python_version",
                   "get_python_version_verbose", "get_pid", "get_hostname", "get_ip", "get_machine",
                   "get_processor", "get_executable", "get_command", "get_environment_details", "get_os_packages",
                   "get_installed_packages", "get_gpu_static_info", "get_additional_system_info",
                   "get_system_metric_names", "get_network_interface_ips", "get_max_memory",
                   "get_total_memory"):
        getattr(exp, getter)()     # raises KeyError when a key is missing
    assert {"key": "cluster", "value": "c1"} in [{"key": i["key"], "value": i["value"]}
                                                 for i in details["logAdditionalSystemInfoList"]]


def test_assets_by_type_and_bytes(rich):
    exp = rich["exp"]
    assets = exp.get_asset_list()
    by_name = {}
    for a in assets:
        by_name.setdefault(a["fileName"], []).append(a)
    assert len(by_name["a.txt"]) == 2                       # duplicate names are both kept
    first = next(a for a in by_name["a.txt"] if a["fileSize"] == len("hello asset"))
    assert first["step"] == 3
    assert json.loads(first["metadata"]) == {"k": "v"} and first["fileSize"] == len("hello asset")
    assert exp.get_asset(first["assetId"]) == b"hello asset"
    ckpt = by_name["ckpt.bin"][0]
    assert ckpt["step"] == 5 and exp.get_asset(ckpt["assetId"]) == CHECKPOINT
    remote = by_name["train.csv"][0]
    assert remote["remote"] is True and remote["link"] == "s3://bucket/data/train.csv"
    assert json.loads(remote["metadata"]) == {"s": 1}
    types = {a["type"] for a in assets}
    assert {"asset", "model-element", "text-sample", "curve", "histogram_combined_3d",
            "confusion-matrix", "source_code"} <= types
    assert [a["fileName"] for a in exp.get_asset_list("curve")] == ["roc"]
    assert [(c["name"], c["x"], c["y"]) for c in exp.get_curves()] == [("roc", [0, 1], [1, 0])]
    target = rich["home"] / "download.bin"
    rich["api"].download_experiment_asset(rich["key"], ckpt["assetId"], str(target))
    assert target.read_bytes() == CHECKPOINT
    assert exp.get_asset_by_name("ckpt.bin") == CHECKPOINT


def test_models(rich):
    exp = rich["exp"]
    assert exp.get_model_names() == ["mymodel"]
    assets = exp.get_model_asset_list("mymodel")
    assert [a["fileName"] for a in assets] == ["weights.bin"] and assets[0]["dir"] == "models/mymodel"


def test_projects_and_workspaces(rich):
    api = rich["api"]
    assert "alice" in api.get_workspaces()
    assert "round-trip" in api.get_projects("alice")
    project = api.get_project("alice", "round-trip")
    assert project["projectName"] == "round-trip" and project["public"] is False
    api.set_project_notes("alice", "round-trip", "some notes")
    assert api.get_project_notes("alice", "round-trip") == "some notes"
    assert [e.key for e in api.get_experiments("alice", "round-trip")] == [rich["key"]]
    assert api.get_experiment("alice", "round-trip", "rich-run").key == rich["key"]
    assert api.get_account_details()["userName"] == "alice"


def test_query_and_search(rich):
    from comet_ml.query import Metric, Parameter, Tag
    api = rich["api"]
    assert [e.key for e in api.query("alice", "round-trip", Metric("loss") < 0.01)] == [rich["key"]]
    assert api.query("alice", "round-trip", Metric("loss") > 10) == []
    assert [e.key for e in api.query("alice", "round-trip", Parameter("layers") == 3)] == [rich["key"]]
    assert [e.key for e in api.query("alice", "round-trip", Tag("t1"))] == [rich["key"]]
    assert [e.key for e in api.search("alice", "round-trip", Metric("loss") < 0.01)] == [rich["key"]]


def test_rest_writes_through_api_experiment(rich, tmp_path):
    api = rich["api"]
    created = api.create_project("alice", "written", project_description="d", public=True)
    assert created
    project = api.get_project("alice", "written")
    assert project["projectDescription"] == "d" and project["public"] is True
    from comet_ml import APIExperiment
    exp = APIExperiment(workspace="alice", project_name="written", experiment_name="via-rest")
    exp.log_metric("m", 3.5, step=2, epoch=1)
    exp.log_parameter("p", "x")
    exp.log_other("o", 1)
    exp.add_tags(["rest"])
    exp.log_html("<p>r</p>")
    exp.set_code("print(2)")
    exp.set_model_graph("g")
    exp.set_git_metadata(user="u", root="/r", branch="main", parent="abc", origin="o")
    (tmp_path / "git_diff.patch").write_text("diff --git a b\n")
    exp.set_git_patch(str(tmp_path / "git_diff.patch"))    # the SDK zips it
    exp.set_start_time(1_700_000_000_000)
    exp.set_end_time(1_700_000_005_000)
    (tmp_path / "r.txt").write_bytes(b"rest asset")
    exp.log_asset(str(tmp_path / "r.txt"), name="r.txt", step=9, metadata={"via": "rest"})
    fresh = api.get_experiment_by_key(exp.key)
    assert fresh.name == "via-rest"
    assert fresh.get_metrics("m")[0]["metricValue"] == "3.5" and fresh.get_metrics("m")[0]["step"] == 2
    assert _values(fresh.get_parameters_summary())["p"] == "x"
    assert _values(fresh.get_others_summary())["o"] == "1"
    assert fresh.get_tags() == ["rest"] and fresh.get_html() == "<p>r</p>" and fresh.get_code() == "print(2)"
    assert fresh.get_model_graph() == "g"
    assert fresh.get_git_metadata() == {"user": "u", "root": "/r", "branch": "main", "parent": "abc", "origin": "o"}
    patch = fresh.get_git_patch()
    assert zipfile.ZipFile(io.BytesIO(patch)).read("git_diff.patch") == b"diff --git a b\n"
    meta = fresh.get_metadata()
    assert (meta["startTimeMillis"], meta["endTimeMillis"]) == (1_700_000_000_000, 1_700_000_005_000)
    asset = next(a for a in fresh.get_asset_list() if a["fileName"] == "r.txt")
    assert asset["step"] == 9 and fresh.get_asset(asset["assetId"]) == b"rest asset"
    assert json.loads(asset["metadata"]) == {"via": "rest"}
    fresh.archive()
    assert api.get_experiments("alice", "written") == []
    assert [e.key for e in api.get_archived_experiments("alice", "written")] == [exp.key]


def test_offline_experiment_comet_upload(comet_server, tmp_path):
    import comet_ml
    exp = comet_ml.OfflineExperiment(project_name="offline", offline_directory=str(tmp_path / "runs"), **SDK_QUIET)
    exp.set_name("off")
    for step in range(300):
        exp.log_metric("x", step * 2, step=step)
    exp.log_parameter("p", 5)
    exp.log_asset_data("offline bytes", name="o.txt")
    exp.add_tags(["off"])
    key = exp.get_key()
    exp.end()
    archive = tmp_path / "runs" / f"{key}.zip"
    result = subprocess.run([sys.executable, "-m", "comet_ml.scripts.comet_upload", str(archive)],
                            capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert result.returncode == 0, result.stderr
    fresh = comet_ml.API(cache=False).get_experiment_by_key(key)
    assert fresh.name == "off" and fresh.get_tags() == ["off"]
    assert [int(m["metricValue"]) for m in fresh.get_metrics("x")] == [s * 2 for s in range(300)]
    assert _values(fresh.get_parameters_summary())["p"] == "5"
    asset = next(a for a in fresh.get_asset_list() if a["fileName"] == "o.txt")
    assert fresh.get_asset(asset["assetId"]) == b"offline bytes"
    again = subprocess.run([sys.executable, "-m", "comet_ml.scripts.comet_upload", str(archive)],
                           capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert "already" in (again.stdout + again.stderr).lower()    # 90999: the key is taken


def test_artifacts_versions_aliases_and_files(comet_server, tmp_path):
    import comet_ml
    (tmp_path / "d.bin").write_bytes(b"dataset bytes")
    (tmp_path / "e.txt").write_text("second")
    exp = comet_ml.Experiment(project_name="arts", **SDK_QUIET)
    first = comet_ml.Artifact("ds", "dataset", metadata={"m": 1}, aliases=["best"], version_tags=["vt"])
    first.add(str(tmp_path / "d.bin"), logical_path="data/d.bin")
    first.add_remote("s3://bucket/x.csv", logical_path="x.csv", sync_mode=False)
    exp.log_artifact(first)
    second = comet_ml.Artifact("ds", "dataset")
    second.add(str(tmp_path / "e.txt"))
    exp.log_artifact(second)
    exp.end()
    api = comet_ml.API(cache=False)
    latest = api.get_artifact("alice", "ds")
    assert str(latest.version) == "2.0.0" and [a.logical_path for a in latest.assets] == ["e.txt"]
    best = api.get_artifact("alice", "ds", alias="best")
    assert str(best.version) == "1.0.0" and best.metadata == {"m": 1}
    assert best.aliases == frozenset({"best"}) and best.version_tags == frozenset({"vt"})
    assert best.source_experiment_key == exp.get_key()
    files = {a.logical_path: a for a in best.assets}
    assert files["x.csv"].remote and files["x.csv"].link == "s3://bucket/x.csv"
    assert str(api.get_artifact("alice", "ds", version="1.0.0").version) == "1.0.0"
    best.download(str(tmp_path / "out"))
    assert (tmp_path / "out" / "data" / "d.bin").read_bytes() == b"dataset bytes"
    listed = api.get_artifact_list("alice")["artifacts"]
    assert [a["name"] for a in listed] == ["ds"] and listed[0]["latestVersion"] == "2.0.0"
    details = api._client.get_artifact_details(workspace="alice", name="ds")
    assert [v["version"] for v in details["versions"]] == ["1.0.0", "2.0.0"]


def test_registry_models(comet_server, tmp_path):
    import comet_ml
    (tmp_path / "w.bin").write_bytes(b"weights")
    exp = comet_ml.Experiment(project_name="reg", **SDK_QUIET)
    exp.log_model("clf", str(tmp_path / "w.bin"))
    exp.end()
    api = comet_ml.API(cache=False)
    api_exp = api.get_experiment_by_key(exp.get_key())
    api_exp.register_model("clf", version="1.0.0", tags=["production"], description="desc", comment="c1")
    api_exp.register_model("clf", version="1.1.0", tags=["staging"])
    assert api.get_registry_model_names("alice") == ["clf"]
    details = api.get_registry_model_details("alice", "clf")
    assert details["description"] == "desc"
    assert [(v["version"], v["stages"]) for v in details["versions"]] == [("1.0.0", ["production"]),
                                                                          ("1.1.0", ["staging"])]
    assert details["versions"][0]["comment"] == "c1"
    assert api.get_model("alice", "clf").find_versions() == ["1.0.0", "1.1.0"] or \
        sorted(api.get_model("alice", "clf").find_versions()) == ["1.0.0", "1.1.0"]
    api._client.update_registry_model_notes("alice", "clf", "model notes")
    assert api.get_registry_model_notes("alice", "clf") == "model notes"
    out = tmp_path / "model-out"
    api.download_registry_model("alice", "clf", version="1.0.0", output_path=str(out))
    assert (out / "w.bin").read_bytes() == b"weights"


def test_panels_upload_list_download(comet_server, tmp_path):
    from cometx.api import API as CometxAPI
    api = CometxAPI(cache=False)
    result = api.upload_panel_code("alice", "My Panel", "print('panel')\n")
    rows = api.get_panels("alice")
    assert [r["templateName"] for r in rows] == ["My Panel"] and rows[0]["templateId"] == result["templateId"]
    panel = api.get_panel(result["templateId"])
    assert panel["code"]["pyCode"] == "print('panel')\n"
    path = api.download_panel_zip(result["templateId"], str(tmp_path / "p.zip"))
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read("tempVisualizationTemplate.json"))["templateName"] == "My Panel"

"""Every value arrives as the source wrote it: odd values through the real SDK on both ends.

Comet: params, others and metrics logged with comet_ml.Experiment on server A, fetched,
pushed to server B through a recording proxy (every JSON body must be strict JSON), and
read back with comet_ml.API on B: each value's text equals A's, byte for byte.
W&B: through the GraphQL emulator and the real wandb.Api, a config null stays a JSON
null and a string "NaN" stays apart from a real NaN.
"""
from __future__ import annotations

import gzip
import http.client
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import duckdb
import pytest

from cometx_mirror import model
from cometx_mirror.server.runner import start_server
from cometx_mirror.sinks.comet.values import metric_wire, param_wire, wire_value
from cometx_mirror.store.mirror import Mirror
from push_fixtures import SDK_QUIET, fetch, push
from server_fixtures import comet_environment

ODD_TEXTS = ["1.50", "1e3", "-0", "true", '["a", "b"]']
ODD_TYPED = {"t_float": 1.5, "t_int": 7, "t_bool": True, "t_list": [1, "x"], "t_dict": {"k": "v"}}
ODD_METRICS = {"big": 123456789012345678, "b53": 2 ** 53 + 1, "seven": 7, "tenth": 0.1, "tiny": 1e-7,
               "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "word": "abc"}


class RecordingProxy:
    """Forwards every request to `target` over loopback and keeps the JSON bodies it saw."""

    def __init__(self, target_url: str):
        target = urlparse(target_url)
        self.bodies: list[tuple[str, bytes]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "json" in (self.headers.get("Content-Type") or ""):
                    raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                    proxy.bodies.append((self.path, raw))
                con = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                con.request(self.command, self.path, body=body, headers=headers)
                answer = con.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                con.close()

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/clientlib/"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _no_constants(name):
    raise ValueError(f"non-standard JSON token {name}")


def _texts(api_exp) -> dict:
    """Every value's exact text as comet_ml.API reads it back."""
    params = {p["name"]: p["valueCurrent"] for p in api_exp.get_parameters_summary()}
    others = {o["name"]: o["valueCurrent"] for o in api_exp.get_others_summary()
              if o["name"] in ODD_TYPED or o["name"].startswith(("s_", "t_"))}
    metrics = sorted((m["metricName"], m["step"], m["metricValue"]) for m in api_exp.get_metrics())
    assets = {a["fileName"]: a["metadata"] for a in api_exp.get_asset_list()}
    return {"params": params, "others": others, "metrics": metrics, "assets": assets}


def _log_odd_experiment(comet_ml) -> str:
    exp = comet_ml.Experiment(project_name="odd", **SDK_QUIET)
    exp.set_name("odd-values")
    for i, text in enumerate(ODD_TEXTS):
        exp.log_parameter(f"s_{i}", text)
        exp.log_other(f"s_{i}", text)
    for name, value in ODD_TYPED.items():
        exp.log_parameter(name, value)
        exp.log_other(name, value)
    for name, value in ODD_METRICS.items():
        exp.log_metric(name, value, step=1)
    exp.log_asset_data("hello", name="meta.txt", metadata={"lang": "en", "a": 1})
    exp.end()
    return exp.get_key()


def test_odd_values_round_trip_through_the_real_sdk_on_both_ends(tmp_path):
    server_a, server_b = start_server(), start_server()
    proxy = RecordingProxy(server_b.clientlib_url)
    home = tmp_path / "home"
    home.mkdir()
    try:
        with comet_environment(server_a, home):
            import comet_ml
            key = _log_odd_experiment(comet_ml)
            source = _texts(comet_ml.API(cache=False).get_experiment_by_key(key))
        # what the SDK sent, as Comet shows it: the cases this test is about are really there
        assert source["params"]["s_0"] == "1.50" and source["params"]["s_4"] == '["a", "b"]'
        by_name = {n: v for n, _, v in source["metrics"]}
        assert by_name["big"] == "123456789012345678" and by_name["b53"] == "9007199254740993"
        assert by_name["seven"] == "7" and by_name["nan"] == "NaN" and by_name["word"] == "abc"
        assert source["assets"]["meta.txt"] == '{"a":1,"lang":"en"}'

        mirror = tmp_path / "m"
        fetch(server_a, mirror, f"{server_a.workspace}/odd")
        con = duckdb.connect(str(Mirror.open(mirror).index_path), read_only=True)
        try:
            params = dict(con.execute("SELECT name, value FROM params").fetchall())
            raws = con.execute("SELECT count(*) FROM params WHERE raw IS NOT NULL").fetchone()[0]
            points = {n: (v, t) for n, v, t in con.execute("SELECT name, value, text FROM metrics").fetchall()}
            metadata = con.execute("SELECT metadata FROM assets WHERE file_name = 'meta.txt'").fetchone()[0]
        finally:
            con.close()
        assert params == source["params"]
        assert raws == 0                      # Comet gives text only: no type is invented
        assert points["big"] == (123456789012345678.0, "123456789012345678")
        assert points["b53"] == (float(2 ** 53), "9007199254740993")
        assert points["seven"] == (7.0, "7")
        assert points["tenth"] == (0.1, None) and points["tiny"] == (1e-7, None)
        assert math.isnan(points["nan"][0]) and points["nan"][1] is None
        assert points["inf"] == (math.inf, None) and points["ninf"] == (-math.inf, None)
        assert points["word"] == (None, "abc")
        assert metadata == '{"a":1,"lang":"en"}'

        proxied = type("B", (), {"api_key": server_b.api_key, "clientlib_url": proxy.url})
        push(proxied, mirror, f"{server_a.workspace}/odd", f"{server_b.workspace}/odd")
        assert proxy.bodies, "the proxy saw no JSON body"
        for path, body in proxy.bodies:
            json.loads(body, parse_constant=_no_constants)      # strict JSON, or this raises

        with comet_environment(server_b, home):
            import comet_ml
            api = comet_ml.API(cache=False)
            (dest,) = api.get_experiments(server_b.workspace, "odd")
            landed = _texts(dest)
        landed["params"].pop("cometx-mirror.source", None)
        assert landed == source
    finally:
        proxy.stop()
        server_a.stop()
        server_b.stop()


def test_wire_values_are_exact_and_strict_json():
    cases = {"7": 7, "0.1": 0.1, "1e-07": 1e-07, "123456789012345678": 123456789012345678,
             "-0.0": -0.0, "1.50": "1.50", "1e3": "1e3", "-0": "-0", "true": "true", "NaN": "NaN",
             '["a", "b"]': '["a", "b"]', "": "", "abc": "abc", "1" * 5000: "1" * 5000}
    for text, wire in cases.items():
        got = wire_value(text)
        assert type(got) is type(wire) and got == wire, text
        assert json.dumps(got, allow_nan=False) in (text, json.dumps(text))
    m = model.Metrics()
    for value, text in ((float("nan"), None), (math.inf, None), (-math.inf, None), (0.5, None),
                        (float(2 ** 53), "9007199254740993"), (None, "abc"), (7.0, "7")):
        m.add("x", value, step=0, text=text)
    sent = [metric_wire(m, i) for i in range(len(m))]
    assert sent == ["NaN", "Infinity", "-Infinity", 0.5, 9007199254740993, "abc", 7]
    json.dumps(sent, allow_nan=False)
    assert param_wire(model.Param("p", "1.50")) == "1.50"
    assert param_wire(model.Param("p", None, model.JSON_NULL)) is None


def test_point_comparison_is_exact():
    from cometx_mirror.sinks.comet.plan import missing_points
    a, b = model.Metrics(), model.Metrics()
    a.add("big", float(2 ** 53), step=0, text="9007199254740993")
    b.add("big", float(2 ** 53), step=0, text="9007199254740992")
    a.add("n", float("nan"), step=1)
    b.add("n", float("nan"), step=1)
    assert missing_points(a, b) == [0]     # one double, two integers: a point is missing


# -- W&B ------------------------------------------------------------------------

def test_wandb_null_and_nan_text_stay_apart(tmp_path, wandb_env):
    from wandb_fixtures import API_KEY
    from wandb_graphql_server import WandbServer
    from cometx_mirror.sources.options import FetchOptions
    from cometx_mirror.sync.fetch import run_fetch

    server = WandbServer(API_KEY, page_size=1)
    row = {"_step": 0, "_timestamp": 1_700_000_000.0, "real_nan": float("nan"), "text_nan": "NaN",
           "text_lower": "nan", "text_inf": "Infinity", "big": 2 ** 53 + 1, "seven": 7, "half": 0.5}
    server.runs = [{"id": "run1", "entity": "ent", "project": "proj", "name": "odd", "tags": [],
                    "group": None, "job_type": None, "notes": None, "state": "finished",
                    "created": "2024-01-01T00:00:00", "heartbeat": "2024-01-01T00:01:00",
                    "config": {"nothing": None, "lr": 0.1}, "summary": {"s_none": None},
                    "history": [row], "system": [], "files": {}, "artifacts": [], "used": []}]
    server.start()
    try:
        mirror = Mirror.init(tmp_path / "m")
        run_fetch(mirror, "wandb", "ent/proj", FetchOptions(api_key=API_KEY, url=server.url, parallel=1))
    finally:
        server.stop()
    con = duckdb.connect(str(mirror.index_path), read_only=True)
    try:
        params = {n: (v, r) for n, v, r in con.execute("SELECT name, value, raw FROM params").fetchall()}
        others = {n: (v, r) for n, v, r in con.execute("SELECT name, value, raw FROM others").fetchall()}
        points = {n: (v, t) for n, v, t in con.execute("SELECT name, value, text FROM metrics").fetchall()}
    finally:
        con.close()
    assert params["nothing"] == (None, "null")          # a logged null, not "no value"
    assert params["lr"] == ("0.1", "0.1")
    assert others["s_none"] == (None, "null")
    assert set(points) == {"real_nan", "big", "seven", "half"}     # strings are not metric points
    assert math.isnan(points["real_nan"][0]) and points["real_nan"][1] is None
    assert points["big"] == (float(2 ** 53), "9007199254740993")
    assert points["seven"] == (7.0, "7") and points["half"] == (0.5, None)

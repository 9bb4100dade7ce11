"""Writing one experiment to a Comet instance, through the wire protocol.

Every write is idempotent or append-only-with-a-plan, so a retry after a reset
or a second run after a crash never duplicates: the experiment key and the asset
ids are chosen by us and deterministic (see ids.py); params, others, tags, html,
graph, system details, times and state are set-style; metric points and output
are sent only as planned (the points and bytes not already there).  The marker
`others` entry goes last: its presence means "this manifest is fully pushed".
"""
from __future__ import annotations

import io
import itertools
import json
import time
import zipfile
from collections import Counter
from typing import Any, Callable, Iterator

from ... import model
from ...json_stream import ObjectStream
from ...metric_stream import BATCH_POINTS, MetricStream
from ...sources.comet import metric_columns
from ...store.objects import CHUNK
from ...store import faultpoint
from ...store.mirror import Mirror
from .client import CometClient, HttpError, PushError, multipart, object_reader
from .landed import Appends, chunks
from . import sampled
from .plan import MARKER, ExperimentPlan
from .values import metric_wire, param_wire

METRIC_BATCH = 5000          # points per batch request (the SDK uses 1,000)
OUTPUT_BATCH_BYTES = 2 << 20
ALREADY_EXISTS = 90999
REMAPPED_TYPES = ("confusion-matrix", "embeddings", "datagrid")


class ExperimentWriter:
    def __init__(self, client: CometClient, mirror: Mirror, workspace: str, project: str,
                 dest_key: str, asset_id_of: Callable[[model.Asset], str]):
        self.client = client
        self.mirror = mirror
        self.workspace = workspace
        self.project = project
        self.key = dest_key
        self.asset_id_of = asset_id_of

    # -- creation ------------------------------------------------------------
    def create(self) -> bool:
        """Create the experiment under our key; False when it already exists (a resumed push)."""
        body = {"apiKey": self.client.creds.api_key, "experimentKey": self.key, "offline": True,
                "projectName": self.project, "teamName": self.workspace, "libVersion": "cometx-mirror",
                "local_timestamp": int(time.time() * 1000), "getOrCreateEnabled": False}
        answer = self.client.request("POST", "clientlib", "logger/add/run", write=True, json_body=body,
                                     ok_codes=(ALREADY_EXISTS,))
        return answer.get("sdk_error_code") != ALREADY_EXISTS

    # -- the plan ------------------------------------------------------------
    # Which writes may be resent when a try's answer is lost (client.request), and why:
    #   log-other, batch parameter   set-style: reads show the latest value; same value again
    #   tags                         a set: a tag already there is not added twice
    #   system-details               merged by key; html (override=True), code, graph,
    #   git metadata, git-patch      replaced whole
    #   file-path, set-start-end-time, update-status, archive    set a field
    #   asset/upload                 our asset id, overwrite=False: the same id is replaced,
    #                                never a second asset
    #   logger/add/run               our experiment key: a second try answers "already exists"
    # Append-only, checked at the destination before any resend (landed.Appends):
    #   batch/logger/experiment/metric (metric and system-metric points), write/experiment/output.
    def apply(self, exp: model.Experiment, plan: ExperimentPlan, marker: dict,
              before: model.Metrics | None = None, before_output: str | None = None) -> None:
        """`before`/`before_output`: the destination's metrics and output when the push began
        (None: none for a new experiment, else the output is read before it is appended to)."""
        self.appends = Appends(lambda: read_metrics(self.client, self.key), self._dest_output, before,
                               "" if plan.create and before_output is None else before_output)
        if plan.others:
            for other in plan.others:
                self._post("write/experiment/log-other",
                           {"key": other.name, "value": param_wire(other),
                            "timestamp": other.timestamp})
        if plan.params:
            self._params(plan.params)
        if plan.tags:
            self.client.request("POST", "clientlib", "tags/add-tags-to-experiment", write=True,
                                json_body={"apiKey": self.client.creds.api_key, "experimentKey": self.key,
                                           "addedTags": plan.tags})
        if plan.system:
            self.client.post("write/experiment/system-details", {"experimentKey": self.key, **plan.system},
                             base="rest-clientlib")
        for tw in plan.texts:
            self._text(tw.text, tw.append_from)
        faultpoint.hit("push_before_metrics")
        self._metrics(exp.metrics, plan)
        faultpoint.hit("push_before_assets")
        self._assets(exp, plan.assets)
        if plan.file_path:
            self._post("write/experiment/file-path", {"filePath": exp.extra["filePath"]})
        if plan.times:
            self._post("write/experiment/set-start-end-time",
                       {"startTimeMillis": exp.started_at, "endTimeMillis": exp.ended_at})
        if plan.state:
            self._post("write/experiment/update-status",
                       {"isAlive": exp.state == "running", "error": None, "hasCrashed": exp.state == "crashed"})
        if plan.archive:
            self.client.request("GET", "rest", "write/experiment/archive", write=True,
                                params={"experimentKey": self.key})
        faultpoint.hit("push_before_marker")
        self._post("write/experiment/log-other", {"key": MARKER, "value": json.dumps(marker, sort_keys=True)})

    def _post(self, path: str, body: dict) -> Any:
        return self.client.post(path, {"experimentKey": self.key, **body})

    def _params(self, params: list[model.Param]) -> None:
        values = []
        for p in params:
            # the exact text the source showed (values.py): a number only where that is exact
            values.append({"parameterName": p.name, "parameterValue": param_wire(p), "step": None,
                           "source": p.source or "manual", "context": None})
        for start in range(0, len(values), METRIC_BATCH):
            self.client.request("POST", "clientlib", "batch/logger/experiment/parameter", write=True,
                                gzip_json=True,
                                json_body={"experimentKey": self.key, "values": values[start:start + METRIC_BATCH]})

    def _metrics(self, m: model.Metrics, plan: ExperimentPlan) -> None:
        """The planned points, a batch of the mirror's stream at a time (never all of them)."""
        if not plan.metrics.count:
            return
        self.appends.resend = lambda: plan.metrics.batches(m)
        before_counts = self.appends.before_sums().count
        for batch in chunks(plan.metrics.batches(m), plan.metrics.by_name, before_counts, METRIC_BATCH):
            values = [{"metricName": batch.name[i], "metricValue": metric_wire(batch, i), "step": batch.step[i],
                       "epoch": batch.epoch[i], "context": batch.context[i], "timestamp": batch.timestamp[i]}
                      for i in range(len(batch))]
            self.client.request("POST", "clientlib", "batch/logger/experiment/metric", write=True,
                                gzip_json=True, json_body={"experimentKey": self.key, "values": values},
                                landed=lambda: self.appends.batch_landed(batch))
            self.appends.batch_sent(batch)
            faultpoint.hit("push_metric_batch")

    # -- texts ---------------------------------------------------------------
    def _text(self, text: model.Text, append_from: int) -> None:
        data = self.mirror.objects.get_bytes(text.object_id)
        kind = text.kind
        if kind == "html":
            self._post("write/experiment/html", {"html": data.decode("utf-8", "replace"), "override": True})
        elif kind == "code":
            self._post("write/experiment/code", {"code": data.decode("utf-8", "replace")})
        elif kind == "graph":
            self._post("write/experiment/graph", {"graph": data.decode("utf-8", "replace")})
        elif kind == "git_metadata":
            meta = json.loads(data)
            self._post("write/experiment/git/metadata",
                       {k: meta.get(k) for k in ("user", "root", "branch", "parent", "origin")})
        elif kind == "git_patch":
            if not data.startswith(b"PK"):      # plain patch text: Comet wants it zipped
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                    z.writestr("git_diff.patch", data)
                data = buf.getvalue()
            self.client.request("POST", "clientlib", "git-patch/upload", write=True,
                                params={"experimentId": self.key},
                                files_factory=multipart([("file", ("file", data, "application/zip"))]))
        elif kind in ("output", "stderr"):
            self._output(data[append_from:], stderr=kind == "stderr")

    def _output(self, data: bytes, stderr: bool) -> None:
        lines = data.decode("utf-8", "replace").splitlines(keepends=True)
        batch, size = [], 0
        for line in lines:
            batch.append({"stderr": stderr, "output": line, "localTimestamp": None, "offset": None})
            size += len(line)
            if size >= OUTPUT_BATCH_BYTES:
                self._send_output(batch)
                batch, size = [], 0
        if batch:
            self._send_output(batch)

    def _send_output(self, lines: list[dict]) -> None:
        text = "".join(line["output"] for line in lines)
        self.appends.output_before()     # known before the first append, so a lost answer is decidable
        self.client.request("POST", "rest-clientlib", "write/experiment/output", write=True, gzip_json=True,
                            json_body={"experimentKey": self.key, "runContext": None, "outputLines": lines},
                            landed=lambda: self.appends.output_landed(text))
        self.appends.output_sent(text)

    def _dest_output(self) -> str:
        return (self.client.get("experiment/output", {"experimentKey": self.key}) or {}).get("output") or ""

    # -- assets --------------------------------------------------------------
    def _assets(self, exp: model.Experiment, assets: list[model.Asset]) -> None:
        assets = sampled.without_generated(self.client, self.key, assets, self.asset_id_of)
        id_map = {a.asset_id: self.asset_id_of(a) for a in exp.assets}
        changed = {k: v for k, v in id_map.items() if k != v}
        for a in assets:
            self.upload_asset(a, changed)
            faultpoint.hit("push_asset")

    def upload_asset(self, a: model.Asset, id_changes: dict[str, str],
                     artifact_version_id: str | None = None) -> None:
        params = {"experimentId": self.key, "assetId": self.asset_id_of(a), "fileName": a.file_name,
                  "overwrite": "False"}
        if artifact_version_id:
            params = {"artifactVersionId": artifact_version_id, "assetId": self.asset_id_of(a),
                      "fileName": a.file_name, "overwrite": "False"}
            if self.key:
                params["experimentId"] = self.key
        if a.type and a.type != "asset":
            params["type"] = a.type
        for name in ("step", "epoch", "context"):
            if getattr(a, name) is not None:
                params[name] = getattr(a, name)
        ext = a.file_name.rsplit(".", 1)[1] if "." in a.file_name else None
        if ext:
            params["extension"] = ext
        model_dir = (a.extra or {}).get("dir") or ""
        if a.type == "model-element" and model_dir.startswith("models/"):
            params["groupingName"] = model_dir[len("models/"):]
        fields: list[tuple[str, tuple]] = []
        if a.metadata is not None:
            text = a.metadata_text if a.metadata_text is not None else json.dumps(a.metadata, sort_keys=True)
            fields.append(("metadata", (None, text, None)))     # the source's bytes when it sent any
        if a.remote:
            params["isRemote"] = "True"
            fields.append(("link", (None, a.link or "", None)))
        else:
            mirror, oid, atype = self.mirror, a.object_id, a.type

            def content():
                if id_changes and atype in REMAPPED_TYPES:     # small JSON/zip files: rewritten in memory
                    return remap_ids(mirror.objects.get_bytes(oid), id_changes)
                return object_reader(mirror.objects, oid)
            fields.append(("file", ("file", content, "application/octet-stream")))
        self.client.request("POST", "clientlib", "asset/upload", write=True, params=params,
                            files_factory=multipart(fields))


def remap_ids(data: bytes, changes: dict[str, str]) -> bytes:
    """Replace source asset ids by destination ids inside a JSON or zip asset.

    Ids are equal-length hex strings, so a byte-for-byte replacement keeps every
    offset inside the file valid (e.g. a SQLite database inside a datagrid zip).
    """
    if data.startswith(b"PK"):
        src, out = io.BytesIO(data), io.BytesIO()
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                zout.writestr(info, _replace(zin.read(info), changes))
        return out.getvalue()
    return _replace(data, changes)


def _replace(data: bytes, changes: dict[str, str]) -> bytes:
    for old, new in changes.items():
        if len(old) == len(new):
            data = data.replace(old.encode(), new.encode())
        else:   # different lengths: only safe in text formats
            data = data.replace(f'"{old}"'.encode(), f'"{new}"'.encode())
    return data


def destination_picture(client: CometClient, key: str) -> tuple[model.Experiment, dict[str, bytes], set[str]]:
    """Read back what a half-pushed experiment holds: the appended resources and asset ids.

    Only needed after a crash; set-style resources are simply written again.
    """
    got = model.Experiment(source="comet", workspace="", project="", key=key)
    got.metrics = read_metrics(client, key)
    sampled.refuse_sampled(got.metrics, key)      # a sample cannot say which points are missing
    output = (client.get("experiment/output", {"experimentKey": key}) or {}).get("output") or ""
    assets = client.get("experiment/asset/list", {"experimentKey": key, "type": "all"}).get("assets", [])
    # Comet keeps stdout and stderr in one stream: what is there counts against "output".
    return got, {"output": output.encode("utf-8")}, {a.get("assetId") for a in assets}


def read_metrics(client: CometClient, key: str) -> model.Metrics:
    """What the destination holds of `key`'s metrics.  Its answer's bytes are held, never its
    points as dicts: a large answer (60 metrics of 15,000 points: 134 MB, 1.3 GB parsed) is a
    MetricStream that parses them again, a run of entries at a time, on each pass."""
    # A metric at 15,000 values is a sample: read whole from the destination's total-fidelity
    # files where it has them; `.sampled` names the others (engineer A: landed.Appends may
    # now trust series above 15,000 that are not in `.sampled`).
    return sampled.whole(client, key, *_metric_answer(client, key))


def _metric_answer(client: CometClient, key: str) -> tuple[model.Metrics, Counter | None]:
    """The get-all answer's points, and for a large answer its points per name (counted while it
    is read through once, so text that is not JSON fails here, not mid-use).  An answer that is
    not JSON is asked for again, as client.get does."""
    for _ in range(client.max_tries):
        body = client.request("GET", "rest", "experiment/metrics/get-all", write=False,
                              params={"experimentKey": key}, expect_json=False)
        try:
            if len(body) <= metric_columns.WHOLE_BYTES:
                return _destination_points(json.loads(body).get("metrics") or []), None
            counts = Counter(m.get("metricName") for m in _destination_entries(body))
            return MetricStream(lambda: _destination_batches(body)), counts
        except (ValueError, AttributeError):
            continue
    raise PushError("GET experiment/metrics/get-all: the destination's answer is not JSON")


def _destination_points(entries) -> model.Metrics:
    out = model.Metrics()
    for m in entries:
        value, text = model.metric_from_text(m.get("metricValue"))     # exact, as fetch keeps it
        out.add(m.get("metricName"), value, step=m.get("step"), epoch=m.get("epoch"),
                timestamp=m.get("timestamp"), context=m.get("runContext"), text=text)
    return out


def _destination_entries(body: bytes) -> Iterator[Any]:
    return ObjectStream((body[i:i + CHUNK] for i in range(0, len(body), CHUNK)), "metrics").items()


def _destination_batches(body: bytes) -> Iterator[model.Metrics]:
    entries = _destination_entries(body)
    while batch := _destination_points(itertools.islice(entries, BATCH_POINTS)):
        yield batch


def read_marker(client: CometClient, key: str) -> dict | None:
    """The marker on a destination experiment, or None (absent, or the experiment is not there)."""
    try:
        values = client.get("experiment/log-other", {"experimentKey": key}).get("values", [])
    except HttpError as e:
        if e.status in (400, 404):
            return None
        raise
    for v in values:
        if v.get("name") == MARKER:
            try:
                return json.loads(v.get("valueCurrent") or "")
            except ValueError:
                return None
    return None

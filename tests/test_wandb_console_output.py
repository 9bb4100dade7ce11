"""W&B console output from the log's output records (wandb >= 0.19 offline leaves output.log
empty): kept as one text that no fold holds as lines, saved beside the fold state as its own
object, and continued, not rebuilt, when a grown log is folded on from that state."""
from __future__ import annotations

import json

import pytest

from cometx_mirror.index.db import open_read
from cometx_mirror.sources.console_text import ConsoleText
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.sources.wandb import fold_state, offline
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch

from test_wandb_history_bulk import _record
from test_wandb_records import write_log

LINES = 3000


def _payloads() -> tuple[list[bytes], list[str]]:
    from wandb.proto import wandb_internal_pb2 as pb
    rec = pb.Record()
    rec.num = 1
    rec.run.run_id, rec.run.entity, rec.run.project = "con1", "ent", "proj"
    rec.run.start_time.seconds = 1_700_000_000
    out, lines = [rec.SerializeToString()], []
    for row in range(LINES):
        out.append(_record(pb, 2 * row + 2, [("_step", str(row)), ("loss", repr(1 / (row + 1)))], step=row))
        o = pb.Record()
        o.num = 2 * row + 3
        o.output_raw.output_type = 0 if row % 500 == 7 else 1       # stderr now and then: one text all the same
        o.output_raw.timestamp.seconds = 1_700_000_000 + row
        lines.append(f"step {row}: lösś {1 / (row + 1)}\n" if row % 3 else "")    # empty lines too
        o.output_raw.line = lines[-1]
        out.append(o.SerializeToString())
    return out, lines


def _run_folder(root, payloads):
    folder = root / "wandb" / "offline-run-20240101_000000-con1"
    (folder / "files").mkdir(parents=True, exist_ok=True)
    (folder / "files" / "output.log").write_bytes(b"")        # as wandb 0.19+ offline leaves it
    (folder / "run-con1.wandb").write_bytes(write_log(payloads))
    return root / "wandb"


def _output(mirror) -> tuple[str, str]:
    with open_read(mirror.index_path) as con:
        [(object_id, content)] = con.execute("SELECT object_id, content FROM texts WHERE kind = 'output'").fetchall()
    return object_id, content


def _state(mirror) -> dict:
    (snapshot_id,) = [s for r, s in mirror.refs.items() if r.startswith("wandb/offline/")]
    (manifest_id,) = [m for label, m in mirror.snapshot(snapshot_id).manifests.items()
                      if label.startswith("experiment/")]
    manifest = mirror.get_json(manifest_id)
    return json.loads(mirror.objects.get_bytes(manifest["log"]["resume"]["object"]))


@pytest.mark.parametrize("in_memory", [1 << 20, 2000])      # 2000: the text goes through its spool
def test_a_grown_log_continues_the_saved_output(tmp_path, monkeypatch, in_memory):
    monkeypatch.setattr(ConsoleText, "JOIN_AT", 64)
    monkeypatch.setattr(ConsoleText, "IN_MEMORY", in_memory)
    payloads, lines = _payloads()
    starts = []
    real = offline.fold
    monkeypatch.setattr(offline, "fold", lambda *a, **k: starts.append(k.get("start", 0)) or real(*a, **k))

    grown = Mirror.init(tmp_path / "grown")
    half = 2 * (LINES // 2) + 1
    source = _run_folder(tmp_path / "live", payloads[:half])
    assert run_fetch(grown, "wandb", str(source), FetchOptions()).errors == []
    assert _output(grown)[1] == "".join(lines[:LINES // 2])
    _run_folder(tmp_path / "live", payloads)
    assert run_fetch(grown, "wandb", str(source), FetchOptions()).errors == []
    assert starts[0] == 0 and starts[-1] > 0          # the second fold went on from the saved state

    fresh = Mirror.init(tmp_path / "fresh")
    assert run_fetch(fresh, "wandb", str(_run_folder(tmp_path / "whole", payloads)), FetchOptions()).errors == []
    assert _output(grown) == _output(fresh)
    object_id, content = _output(fresh)
    assert content == "".join(lines) and grown.objects.get_bytes(object_id) == "".join(lines).encode()
    saved = _state(grown)["output"]                    # the state names the text; it holds no lines
    assert saved == {"object": object_id, "size": len("".join(lines).encode())}


def test_a_state_saved_with_the_lines_is_read_as_well(tmp_path):
    payloads, lines = _payloads()
    mirror = Mirror.init(tmp_path / "m")
    assert run_fetch(mirror, "wandb", str(_run_folder(tmp_path / "src", payloads)), FetchOptions()).errors == []
    state = _state(mirror)
    old = dict(state, output=[["stdout", 1_700_000_000_000 + i, line] for i, line in enumerate(lines)])
    assert fold_state.decode(old, mirror.objects).output == fold_state.decode(state, mirror.objects).output
    assert fold_state.decode(old, mirror.objects).output.seal() == _output(mirror)[0]


def test_an_unchanged_output_is_not_read_back(tmp_path, monkeypatch):
    payloads, _ = _payloads()
    mirror = Mirror.init(tmp_path / "m")
    source = _run_folder(tmp_path / "src", payloads)
    assert run_fetch(mirror, "wandb", str(source), FetchOptions()).errors == []
    object_id = _output(mirror)[0]
    read = []
    real = type(mirror.objects).read_chunks
    monkeypatch.setattr(type(mirror.objects), "read_chunks", lambda self, oid: read.append(oid) or real(self, oid))
    result = run_fetch(mirror, "wandb", str(source), FetchOptions())
    assert result.errors == [] and object_id not in read

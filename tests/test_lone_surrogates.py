"""A lone surrogate (neptune's JSON log spells one `\\ud800`; a file name decoded with `surrogateescape`
gives one) has no UTF-8. A run holding one in a name, a tag, a parameter, a series name, a string series
or its stdout is fetched whole: the mirror's objects write it as that escape (canonical JSON reads it
back as the same string) and the index holds the escape as text. Before, the fetch of such a run failed."""
import json

import duckdb
from click.testing import CliRunner

from cometx_mirror.cli import main
from cometx_mirror.store import canonical

from push_fixtures import server_b  # noqa: F401
from test_neptune_one_point_ops import write_offline_run

OPS = [{"type": "AssignString", "path": ["parameters", "name"], "value": "a\ud800b\U0001F600"},
       {"type": "AssignString", "path": ["sys", "name"], "value": "r\udcff"},
       {"type": "AddStrings", "path": ["sys", "tags"], "values": ["t\udcff"]},
       {"type": "LogFloats", "path": ["m\ud800"], "values": [{"value": 1.0, "step": None, "ts": 1.7e9}]},
       {"type": "LogStrings", "path": ["notes", "s"], "values": [{"value": "x\ud800y", "step": None, "ts": 1.7e9}]},
       {"type": "LogStrings", "path": ["monitoring", "a", "stdout"],
        "values": [{"value": "x\ud800y", "step": None, "ts": 1.7e9}]}]


def _cli(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0 and result.exception is None, (result.output, result.exception)
    return result.output


def _index(root) -> dict:
    con = duckdb.connect(str(root / "index.duckdb"), read_only=True)
    try:
        return {table: con.execute(sql).fetchall() for table, sql in {
            "params": "SELECT name, value, raw FROM params ORDER BY ALL",
            "experiments": "SELECT name FROM experiments",
            "tags": "SELECT tag FROM tags",
            "metrics": "SELECT name, step, value FROM metrics",
            "texts": "SELECT kind, name, content FROM texts ORDER BY ALL"}.items()}
    finally:
        con.close()


def test_a_run_holding_lone_surrogates_is_fetched_and_indexed_as_their_escapes(tmp_path):
    src = write_offline_run(tmp_path / "src", OPS)
    mirror = tmp_path / "m"
    _cli("fetch", str(src), "--from", "neptune", "--mirror", str(mirror))
    index = _index(mirror)
    (name, value, raw), = index["params"]
    assert (name, value) == ("parameters/name", "a\\ud800b\U0001F600")       # the pair of the emoji stays one
    assert json.loads(raw)["value"] == "a\\ud800b\U0001F600"
    assert index["experiments"] == [("r\\udcff",)] and index["tags"] == [("t\\udcff",)]
    assert index["metrics"] == [("m\\ud800", 0, 1.0)]
    assert index["texts"] == [("output", "monitoring/a/stdout", "x\\ud800y")]
    again = _cli("fetch", str(src), "--from", "neptune", "--mirror", str(mirror))
    assert again.startswith("0 new, 0 changed, 1 unchanged, 0 failed; 0 new objects")
    _cli("reindex", "--mirror", str(mirror))
    assert _index(mirror) == index


def test_canonical_json_writes_a_lone_surrogate_as_its_escape_and_reads_it_back():
    value = {"k\udcff": ["x\ud800y", "\U0001F600"]}
    text = canonical.dumps(value)
    assert b"\\udcff" in text and b"\\ud800" in text and "\U0001F600".encode() in text
    assert json.loads(text) == value


def test_such_a_run_pushes_to_comet_and_reads_back_the_same(tmp_path, server_b):
    from push_fixtures import differences, fetch, last_json, push
    src = write_offline_run(tmp_path / "src", OPS)
    _cli("fetch", str(src), "--from", "neptune", "--mirror", str(tmp_path / "m"))
    result = last_json(push(server_b, tmp_path / "m", "neptune-offline/default", f"{server_b.workspace}/odd"))
    assert (result["new"], result["failed"], result["errors"]) == (1, 0, [])
    fetch(server_b, tmp_path / "back", f"{server_b.workspace}/odd")
    assert differences(tmp_path / "m", tmp_path / "back", ("metrics", "tags")) == {}
    assert _index(tmp_path / "back")["metrics"] == [("m\\ud800", 0, 1.0)]

"""neptune: a console series (monitoring/<hash>/stdout, stderr) is kept as its text only, the values
concatenated as written, so a run that printed a line every step holds its output, not a list per line."""

import tracemalloc

import duckdb
import pytest

from cometx_mirror.sources.console_text import ConsoleText
from cometx_mirror.sources.neptune import mapping
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.objects import hash_bytes
from cometx_mirror.store import canonical
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import housekeeping
from cometx_mirror.sync.fetch import run_fetch

from test_neptune_one_point_ops import write_offline_run


@pytest.mark.parametrize("join_at,in_memory", [(1, 1 << 20), (3, 1 << 20), (4096, 1 << 20), (1, 5), (3, 0)])
def test_the_console_text_is_the_values_concatenated_as_written(monkeypatch, join_at, in_memory):
    monkeypatch.setattr(ConsoleText, "JOIN_AT", join_at)
    monkeypatch.setattr(ConsoleText, "IN_MEMORY", in_memory)
    values = ["epoch 1\n", None, "ünï\r\n", 7, 2.5, "", "tail without newline", None, "x" * 10_000]
    run = mapping.RunData("w", "p", "k")
    for step, v in enumerate(values):
        run.add_point("monitoring/7d3a/stdout", "string_series", step, 1_700_000_000_000 + step, v)
        run.add_point("train/notes", "string_series", step, 1_700_000_000_000 + step, v)
    assert "points" not in run.series["monitoring/7d3a/stdout"]
    exp, blobs = mapping.to_experiment(run)
    [text] = exp.texts
    assert text.kind == "output" and text.name == "monitoring/7d3a/stdout"
    expected = "".join(str(v) for v in values if v is not None).encode("utf-8")
    assert text.object_id == hash_bytes(expected) and text.size == len(expected)
    assert b"".join(blobs[text.object_id].chunks()) == expected
    assert b"".join(blobs[text.object_id].chunks()) == expected     # read back again: the mapping runs twice
    assert mapping.to_experiment(run)[0].texts == exp.texts
    [asset] = exp.assets                  # any other string series keeps every point, as JSON lines
    assert asset.metadata["points"] == len(values)
    lines = b"".join(canonical.dumps({"step": step, "timestamp": 1_700_000_000_000 + step, "value": v}) + b"\n"
                     for step, v in enumerate(values))
    assert asset.object_id == hash_bytes(lines) and asset.size == len(lines)
    assert b"".join(blobs[asset.object_id].chunks()) == lines


@pytest.mark.parametrize("in_memory", [1 << 20, 1000])    # 1000: the output goes through the spool
def test_a_run_that_prints_every_step_indexes_its_output_whole(tmp_path, monkeypatch, in_memory):
    monkeypatch.setattr(ConsoleText, "IN_MEMORY", in_memory)
    ops, lines = [{"type": "AssignString", "path": ["sys", "name"], "value": "r"}], []
    for step in range(6000):
        ops.append({"type": "LogFloats", "path": ["train", "loss"],
                    "values": [{"value": 1 / (step + 1), "step": float(step), "ts": 1.7e9 + step}]})
        if step % 2:
            lines.append(f"step {step}: loss {1 / (step + 1)}\n")
            ops.append({"type": "LogStrings", "path": ["monitoring", "7d3a", "stdout"],
                        "values": [{"value": lines[-1], "step": None, "ts": 1.7e9 + step}]})
        if step == 4000:
            ops.append({"type": "LogStrings", "path": ["monitoring", "7d3a", "stderr"],
                        "values": [{"value": "warning: x\n", "step": None, "ts": 1.7e9 + step}]})
    folder = write_offline_run(tmp_path / "src", ops)
    mirror = Mirror.init(tmp_path / "m")
    assert not run_fetch(mirror, "neptune", str(folder), FetchOptions()).errors
    stored = mirror.objects.get_bytes(hash_bytes("".join(lines).encode()))
    assert stored == "".join(lines).encode()

    def indexed():
        con = duckdb.connect(str(tmp_path / "m" / "index.duckdb"), read_only=True)
        texts = dict(con.execute("SELECT kind, content FROM texts").fetchall())
        points = con.execute("SELECT count(*) FROM metrics WHERE name = 'train/loss'").fetchone()[0]
        con.close()
        return texts, points
    assert indexed() == ({"output": "".join(lines), "stderr": "warning: x\n"}, 6000)
    assert housekeeping.reindex(mirror) == 1 and indexed()[0]["output"] == "".join(lines)


def test_a_long_output_is_not_held_in_memory(monkeypatch):
    """Past IN_MEMORY bytes the text goes to its compressed spool: what Python holds stays small
    while 8 MB are printed, and the text read back is whole."""
    monkeypatch.setattr(ConsoleText, "JOIN_AT", 16)
    line = "step {}: " + "x" * 1000 + "\n"
    text = ConsoleText()
    tracemalloc.start()
    try:
        for step in range(8000):
            text.add(line.format(step))
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert held < (1 << 20) + 200_000, held    # IN_MEMORY, then a join's worth
    expected = "".join(line.format(step) for step in range(8000)).encode()
    assert text.seal() == hash_bytes(expected) and text.size == len(expected)
    assert b"".join(text.chunks()) == expected
    with pytest.raises(RuntimeError):
        text.add("after the end")


def test_a_long_string_series_is_not_held_in_memory(monkeypatch):
    """A string series' JSON lines go to their spool as the points come, as a console text does."""
    monkeypatch.setattr(ConsoleText, "JOIN_AT", 16)
    run = mapping.RunData("w", "p", "k")
    note = "x" * 1000
    tracemalloc.start()
    try:
        for step in range(8000):
            run.add_point("train/notes", "string_series", step, 1_700_000_000_000 + step, f"{step} {note}")
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert held < (1 << 20) + 200_000, held
    exp, blobs = mapping.to_experiment(run)
    [asset] = exp.assets
    lines = b"".join(canonical.dumps({"step": step, "timestamp": 1_700_000_000_000 + step,
                                      "value": f"{step} {note}"}) + b"\n" for step in range(8000))
    assert (asset.object_id, asset.size, asset.metadata["points"]) == (hash_bytes(lines), len(lines), 8000)
    assert b"".join(blobs[asset.object_id].chunks()) == lines


@pytest.mark.parametrize("join_at,in_memory", [(1, 1 << 20), (5, 0), (4096, 1 << 20)])
def test_a_histogram_series_is_the_json_array_the_points_make(monkeypatch, join_at, in_memory):
    """Written element by element, the array is canonical.dumps of the whole list, odd values too."""
    monkeypatch.setattr(ConsoleText, "JOIN_AT", join_at)
    monkeypatch.setattr(ConsoleText, "IN_MEMORY", in_memory)
    values = [{"type": "COUNTING", "edges": [0.0, 0.5, 1.0], "values": [3, 4]}, None, {},
              {"edges": [float("nan"), float("inf"), 1e-7, -0.0], "values": [2 ** 70, "ünï"]},
              {"type": "x", "step": 99}]
    run = mapping.RunData("w", "p", "k")
    for step, v in enumerate(values):
        run.add_point("weights/h", "histogram_series", step * 0.5, 1_700_000_000_000 + step, v)
    run.add_point("weights/one", "histogram_series", 1, 2, {"values": [1]})
    exp, blobs = mapping.to_experiment(run)
    many, one = sorted(exp.assets, key=lambda a: a.file_name)
    expected = canonical.dumps([{"step": step * 0.5, "timestamp": 1_700_000_000_000 + step, **(v or {})}
                                for step, v in enumerate(values)])
    assert (many.file_name, many.type, many.metadata["points"]) == ("weights/h.json", "histogram_combined_3d", 5)
    assert many.object_id == hash_bytes(expected) and many.size == len(expected)
    assert b"".join(blobs[many.object_id].chunks()) == expected
    assert b"".join(blobs[one.object_id].chunks()) == canonical.dumps([{"step": 1, "timestamp": 2, "values": [1]}])

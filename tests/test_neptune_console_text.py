"""neptune: a console series (monitoring/<hash>/stdout, stderr) is kept as its text only, the values
concatenated as written, so a run that printed a line every step holds its output, not a list per line."""

import duckdb
import pytest

from cometx_mirror.sources.neptune import mapping
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch

from test_neptune_one_point_ops import write_offline_run


@pytest.mark.parametrize("join_at", [1, 3, 4096])
def test_the_console_text_is_the_values_concatenated_as_written(monkeypatch, join_at):
    monkeypatch.setattr(mapping.ConsoleText, "JOIN_AT", join_at)
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
    assert blobs[text.object_id] == expected and text.size == len(expected)
    [asset] = exp.assets                  # any other string series keeps every point, as JSON lines
    assert asset.metadata["points"] == len(values)


def test_a_run_that_prints_every_step_indexes_its_output_whole(tmp_path):
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
    con = duckdb.connect(str(tmp_path / "m" / "index.duckdb"), read_only=True)
    texts = dict(con.execute("SELECT kind, content FROM texts").fetchall())
    points = con.execute("SELECT count(*) FROM metrics WHERE name = 'train/loss'").fetchone()[0]
    con.close()
    assert texts == {"output": "".join(lines), "stderr": "warning: x\n"} and points == 6000

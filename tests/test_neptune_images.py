"""neptune 1.x inline images (LogImages ops, as `run[...].append(File.as_image(...))` queues them offline):
each point an image asset with the client's PNG bytes, its name, description and step, and none of the
images held in memory while the run is read (sources/blob_spool.py)."""
from __future__ import annotations

import base64
import json
import tracemalloc

from neptune_fixtures import _run_script, q
from test_neptune_one_point_ops import write_offline_run

from cometx_mirror.sources.blob_spool import BlobSpool
from cometx_mirror.sources.neptune import mapping, offline_v1
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch

SCRIPT = """
import neptune, numpy as np
from neptune.types import File
run = neptune.init_run(mode="offline", project="ws/proj", name="img-run", capture_hardware_metrics=False,
                       capture_stdout=False, capture_stderr=False, source_files=[])
for i in range(4):
    run["images/pred"].append(File.as_image(np.full((8, 8, 3), i / 4)), step=10 + i, name=f"p{i}",
                              description="later" if i else None)
run["images/raw"].append(File.as_image(np.zeros((2, 2, 3))))      # no step, no name
run["train/loss"].append(0.5)
run.stop()
"""


def _logged_images(folder) -> list[tuple]:
    """(path, step, name, description, PNG bytes) of each LogImages point in the client's op log."""
    out = []
    for log in sorted((folder / ".neptune" / "offline").glob("*/data-*.log")):
        for line in log.read_text().splitlines():
            op = json.loads(line)["obj"]
            if op["type"] == "LogImages":
                for v in op["values"]:
                    out.append(("/".join(op["path"]), v["step"], v["value"]["name"], v["value"]["description"],
                                base64.b64decode(v["value"]["data"])))
    return out


def test_inline_images_become_image_assets_with_the_clients_bytes(tmp_path):
    _run_script(tmp_path, SCRIPT)
    logged = _logged_images(tmp_path)
    assert len(logged) == 5 and all(png.startswith(b"\x89PNG") for *_, png in logged)
    mirror = Mirror.init(tmp_path / "m")
    assert not run_fetch(mirror, "neptune", str(tmp_path), FetchOptions()).errors
    rows = q(mirror, "SELECT file_name, type, size, step, object_id, metadata FROM assets WHERE type = 'image' "
                     "ORDER BY file_name")
    assert [r[0] for r in rows] == ["images/pred/p0.png", "images/pred/p1.png", "images/pred/p2.png",
                                    "images/pred/p3.png", "images/raw/0.png"]
    by_name = {r[0]: r for r in rows}
    for path, step, name, description, png in logged:
        file_name, _, size, at, object_id, metadata = by_name[f"{path}/{name or int(step or 0)}.png"]
        assert mirror.objects.get_bytes(object_id) == png and size == len(png)
        assert json.loads(metadata)["description"] == description
        assert at == (int(step) if step is not None else 0)


def test_a_bare_or_empty_image_value_is_read_as_the_client_reads_it():
    run = mapping.RunData("w", "p", "k")
    png = b"\x89PNG not really"
    bare = offline_v1._image(base64.b64encode(png).decode(), run, "images/x")      # an older queue's bare base64 text
    assert (bare["name"], bare["description"]) == (None, None) and bare["bytes"].size == len(png)
    assert bare["bytes"].spool.read(bare["bytes"].offset, len(png)) == png
    assert offline_v1._image(None, run, "images/x")["bytes"] is None
    run.add_point("images/x", "image_series", 0, None, offline_v1._image(None, run, "images/x"))
    run.add_point("images/x", "image_series", 1, None, bare)
    exp, blobs = mapping.to_experiment(run)
    [asset] = exp.assets                                        # the point without data has no asset
    assert asset.step == 1 and blobs[asset.object_id] is bare["bytes"]


def test_images_are_not_held_in_memory(tmp_path):
    run = mapping.RunData("w", "p", "k", images=BlobSpool(tmp_path / "spool"))
    image = base64.b64encode(bytes(range(256)) * 400).decode()      # 100 KB an image
    tracemalloc.start()
    try:
        for step in range(200):                                     # 20 MB of images
            run.add_point("images/x", "image_series", step, None, offline_v1._image({"data": image}, run, "images/x"))
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert held < 2 << 20, held
    assert (tmp_path / "spool").is_dir() and not list((tmp_path / "spool").iterdir())   # there, unnamed
    exp, blobs = mapping.to_experiment(run)
    assert len(exp.assets) == 200 and {a.size for a in exp.assets} == {102_400}


def test_an_image_that_is_not_base64_is_counted_and_the_run_kept(tmp_path):
    ops = [{"type": "LogImages", "path": ["images", "x"],
            "values": [{"value": {"data": "!!not base64", "name": "a", "description": None}, "step": 0, "ts": 1.7e9},
                       {"value": {"data": base64.b64encode(b"\x89PNG fine").decode(), "name": "b",
                                  "description": None}, "step": 1, "ts": 1.7e9}]},
           {"type": "LogImages", "path": ["images", "y"], "values": [{"value": 12, "step": 0, "ts": 1.7e9}]},
           {"type": "LogFloats", "path": ["train", "loss"], "values": [{"value": 0.5, "step": 0, "ts": 1.7e9}]}]
    folder = write_offline_run(tmp_path / "src", ops)
    mirror = Mirror.init(tmp_path / "m")
    result = run_fetch(mirror, "neptune", str(folder), FetchOptions())
    assert (result.new, result.failed, result.errors) == (1, 0, [])
    [(object_id, name)] = q(mirror, "SELECT object_id, file_name FROM assets WHERE type = 'image'")
    assert name == "images/x/b.png" and mirror.objects.get_bytes(object_id) == b"\x89PNG fine"
    assert q(mirror, "SELECT count(*) FROM metrics") == [(1,)]
    [(extra,)] = q(mirror, "SELECT extra FROM experiments")
    assert json.loads(extra)["unreadable_images"] == {"images/x": 1}

"""A neptune 1.x run folder the previous fetch read, unchanged since, is not read again
(sources/neptune/queue_stamps): runs written by the real client offline, fetched twice; then each thing
that can change it (a line appended, a file the run uploaded, a touched log, a lost object) makes the next
fetch read it again, and the index is then a fresh fetch's."""
from __future__ import annotations

import json
import os

import pytest
from neptune_fixtures import _run_script, q

from cometx_mirror.sources.neptune import float_lines, offline_v1, queue_stamps
from cometx_mirror.sources.neptune.driver import raw_of
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync.fetch import run_fetch

V1_LOOP = """
import neptune
run = neptune.init_run(mode="offline", project="ws/proj", capture_hardware_metrics=False,
                       capture_stdout=True, capture_stderr=False, source_files=[])
run["parameters/lr"] = 0.01
for i in range(300):
    run["train/loss"].append(1.0 / (i + 1))
    if i % 10 == 9:
        print("step", i)
run["files/a"].upload("a.txt")
run.stop()
"""
TABLES = ("experiments", "params", "metrics", "texts", "assets")


def _fetch(mirror, path):
    return run_fetch(mirror, "neptune", str(path), FetchOptions())


def _rows(mirror) -> dict:
    return {t: sorted(map(repr, q(mirror, f"SELECT * EXCLUDE (exp_id) FROM {t}"))) for t in TABLES}


def _fresh_rows(tmp_path, folder, name: str) -> dict:
    fresh = Mirror.init(tmp_path / name)
    assert not _fetch(fresh, folder).failed
    return _rows(fresh)


@pytest.fixture
def v1_written(tmp_path):
    """A run folder the real client wrote (the file it uploads is read from where it was logged)."""
    d = tmp_path / "queue"
    d.mkdir()
    (d / "a.txt").write_text("hello a\n")
    _run_script(d, V1_LOOP)
    return d


@pytest.fixture
def counted(monkeypatch):
    """How many segments the store read from the op logs (scanned)."""
    reads = {"n": 0}
    scan_whole = float_lines.scan_whole

    def scanned(segment):
        reads["n"] += 1
        return scan_whole(segment)
    monkeypatch.setattr(float_lines, "scan_whole", scanned)
    return reads


def _again(mirror, folder, reads) -> tuple:
    """(new, changed, unchanged, segments read, objects added) of one more fetch."""
    before, reads["n"] = set(mirror.objects.ids()), 0
    result = _fetch(mirror, folder)
    assert not result.failed and not result.errors, result.errors
    return result.new, result.changed, result.unchanged, reads["n"], len(set(mirror.objects.ids()) - before)


def test_a_v1_run_unchanged_is_not_read_and_any_change_reads_it(tmp_path, v1_written, counted):
    folder = v1_written
    log = next(folder.glob(".neptune/offline/run__*/data-1.log"))
    assert b'"type": "UploadFile"' in log.read_bytes() and b'"type": "LogStrings"' in log.read_bytes()
    mirror = Mirror.init(tmp_path / "m")
    assert _again(mirror, folder, counted)[:2] == (1, 0)
    assert _again(mirror, folder, counted) == (0, 0, 1, 0, 0)          # not read: nothing written

    upload = json.loads(next(line for line in log.read_bytes().splitlines() if b'"type": "UploadFile",' in line))
    uploaded = upload["obj"]["file_path"]
    with open(uploaded, "a") as f:                     # the file the run uploaded, changed
        f.write("more\n")
    new, changed, _, read, _ = _again(mirror, folder, counted)
    assert (changed, read > 0) == (1, True)
    [(object_id,)] = q(mirror, "SELECT object_id FROM assets WHERE file_name = 'files/a.txt'")
    assert mirror.objects.get_bytes(object_id) == b"hello a\nmore\n"
    assert _again(mirror, folder, counted) == (0, 0, 1, 0, 0)

    st = log.stat()            # touched, its bytes the same: its stamp is new, but the saved fold goes on
    os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))      # from its end with no line to fold
    assert _again(mirror, folder, counted)[:4] == (0, 1, 0, 0)
    assert _again(mirror, folder, counted) == (0, 0, 1, 0, 0)

    point = {"obj": {"type": "LogFloats", "path": ["train", "loss"],
                     "values": [{"value": 0.5, "step": None, "ts": 1.8e9}]}, "version": 10**6, "at": 1.8e9}
    with log.open("a") as f:                           # the run went on: read, and indexed as a fresh fetch
        f.write(json.dumps(point) + "\n")
    _, changed, _, read, _ = _again(mirror, folder, counted)
    assert changed == 1 and read > 0
    assert q(mirror, "SELECT count(*) FROM metrics WHERE name = 'train/loss'") == [(301,)]
    assert _rows(mirror) == _fresh_rows(tmp_path, folder, "fresh")

    manifest = mirror.get_json(mirror.current_manifests()[next(iter(mirror.current_manifests()))])
    segment = manifest["logs"][0]["segments"][0]
    mirror.objects.remove(segment)                     # a lost object: the queue is read to store it again
    new, changed, unchanged, read, added = _again(mirror, folder, counted)
    assert (unchanged, read > 0, added) == (1, True, 1) and mirror.objects.exists(segment)


def test_a_v1_run_naming_a_glob_is_read_every_time(tmp_path, neptune_v1_offline, counted):
    """upload_files globs are matched when fetched, so such a run is read again (as before)."""
    mirror = Mirror.init(tmp_path / "m")
    _fetch(mirror, neptune_v1_offline)
    counted["n"] = 0
    assert _fetch(mirror, neptune_v1_offline).unchanged == 1 and counted["n"] > 0


def test_a_previous_manifest_the_check_cannot_read_means_the_queue_is_read(tmp_path, v1_written, counted):
    """A damaged previous manifest (a log entry without its segments, a stamp of the wrong type, a saved
    fold that is not stored, or one that cannot be restored) is no reason to fail the run: the queue is read,
    as on a first fetch."""
    mirror = Mirror.init(tmp_path / "m")
    assert _fetch(mirror, v1_written).new == 1
    [manifest_id] = mirror.current_manifests().values()
    good = mirror.get_json(manifest_id)
    [run] = offline_v1.runs(v1_written, [], [])
    reader = run.store.__self__
    saved = json.loads(mirror.objects.get_bytes(good["resume"]))
    del saved["run"]["attrs"]                  # a saved fold the checks take, that cannot be restored
    unrestorable = mirror.objects.put_bytes(json.dumps(saved).encode())
    restamped = [{**good["logs"][0], "size": "many"}]
    # a stamp of the wrong type: not as before, but the saved fold (v1_resume) goes on, with no line to read
    for damaged, read in (({**good, "logs": [{k: v for k, v in good["logs"][0].items() if k != "segments"}]}, True),
                          ({**good, "logs": restamped}, False),
                          ({**good, "logs": restamped, "resume": unrestorable}, True),
                          ({**good, "logs": None}, True), ({**good, "resume": "0" * 32}, True), (None, True),
                          ([], True)):
        counted["n"] = 0
        raw = reader.store(mirror, damaged)
        assert (counted["n"] > 0, raw) == (read, raw_of(good)), repr(damaged)[-300:]
    counted["n"] = 0
    as_before = queue_stamps.previous(lambda mirror, old: reader._as_before(mirror, old, []), mirror, good)
    assert reader.store(mirror, good) == as_before and counted["n"] == 0

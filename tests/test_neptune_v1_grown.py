"""A neptune 1.x run that grew since the last fetch: the fetch folds only the lines written since (from the
fold it saved, sources/neptune/v1_resume.py) and the index appends only their points
(offline_v1.grown_since); the manifest is the one a fresh fetch writes, and the index a fresh fetch's and
a reindex's. A log that did not simply grow is read whole. The run is written by the real neptune client
offline, fetched while it is still running."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from neptune_fixtures import fetch_cleanly, fresh_fetch, index_rows, only_manifest, q

from cometx_mirror.sources.neptune import float_lines, offline_v1
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch

LIVE = """
import os, time, neptune
def pause(name):                  # everything so far written to the op log; wait to be let go
    run.wait()
    open(name + ".ready", "w").close()
    while not os.path.exists(name + ".go"):
        time.sleep(0.02)
run = neptune.init_run(mode="offline", project="ws/proj", capture_hardware_metrics=False,
                       capture_stdout=True, capture_stderr=False, source_files=[])
run["parameters/lr"] = 0.01
run["files/a"].upload("a.txt")
for i in range(500):
    run["train/loss"].append(1.0 / (i + 1), step=i)
    run["train/acc"].append(0.001 * i)                 # no step: numbered on from the last
    if i % 5 == 4:
        print("step", i)
pause("one")
print("half way", flush=True)
for i in range(500, 1100):
    run["train/loss"].append(1.0 / (i + 1), step=i)
    run["train/acc"].append(0.001 * i)
    run["log/msg"].append(f"m{i}")
run["parameters/lr"] = 0.02
pause("two")
run["train/acc"].clear()                               # its old points go: the index is made whole
run["train/acc"].append(5.0)
run.stop()
"""


class _LiveRun:
    """The client's script, run in `cwd`, paused at each named point until let go."""

    def __init__(self, cwd):
        self.cwd = cwd
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEPTUNE_")}
        env.update(NEPTUNE_MODE="offline", NEPTUNE_DATA_DIRECTORY=str(cwd / ".neptune"),
                   NEPTUNE_DISABLE_PARENT_PROCESS_CHECK="1")
        self.proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(LIVE)], cwd=cwd, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def at(self, name: str) -> None:
        deadline = time.monotonic() + 120
        while not (self.cwd / f"{name}.ready").exists():
            assert self.proc.poll() is None, self.proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, f"the client never reached {name}"
            time.sleep(0.05)

    def go(self, name: str) -> None:
        (self.cwd / f"{name}.go").touch()

    def end(self) -> None:
        assert self.proc.wait(120) == 0, self.proc.stderr.read()[-3000:]


@pytest.fixture
def read(monkeypatch):
    """The bytes the store's fold scanned, and the segments the index streams points from."""
    counts = {"bytes": 0, "segments": []}
    scan_whole, segments_from = float_lines.scan_whole, offline_v1._segments_from

    def scanned(segment):
        counts["bytes"] += len(segment)
        return scan_whole(segment)

    def streamed(manifest, start):
        for seg, head in segments_from(manifest, start):
            counts["segments"].append(head)
            yield seg, head
    monkeypatch.setattr(float_lines, "scan_whole", scanned)
    monkeypatch.setattr(offline_v1, "_segments_from", streamed)
    return counts


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The live run's folder and its op log's bytes at each pause and at the end."""
    folder = tmp_path_factory.mktemp("live")
    (folder / "a.txt").write_text("hello a\n")
    live = _LiveRun(folder)
    sizes = []
    for name in ("one", "two"):
        live.at(name)
        log = next(folder.glob(".neptune/offline/run__*/data-1.log"))
        sizes.append(log.read_bytes())
        live.go(name)
    live.end()
    return folder, log, sizes + [log.read_bytes()]


def _as_at(log, data: bytes) -> None:
    log.write_bytes(data)


def test_a_grown_run_folds_and_indexes_only_its_new_lines(tmp_path, written, read):
    folder, log, (one, two, end) = written
    assert one.count(b"\n") < offline_v1.SEGMENT_LINES < two.count(b"\n")     # growth crosses a segment
    mirror = Mirror.init(tmp_path / "m")
    _as_at(log, one)
    fetch_cleanly(mirror, folder)
    before = only_manifest(mirror)
    assert len(before["logs"][0]["segments"]) == 1 and "resume" in before

    _as_at(log, two)
    read.update(bytes=0, segments=[])
    assert fetch_cleanly(mirror, folder).changed == 1
    assert read["bytes"] == len(two) - len(one)           # the new lines alone were folded
    assert read["segments"] == [len(one), 0]              # the index: the new lines of the old segment on
    after = only_manifest(mirror)
    fresh = fresh_fetch(tmp_path, folder, "fresh")
    assert after == only_manifest(fresh)                      # the manifest a fresh fetch writes, byte for byte
    assert index_rows(mirror) == index_rows(fresh)
    assert q(mirror, "SELECT count(*), max(step) FROM metrics WHERE name = 'train/acc'") == [(1100, 1099)]
    assert q(mirror, "SELECT value FROM params WHERE name = 'parameters/lr'") == [("0.02",)]
    [(stdout,)] = q(mirror, "SELECT object_id FROM texts WHERE kind = 'output'")
    assert b"step 499\n" in mirror.objects.get_bytes(stdout) and b"half way" in mirror.objects.get_bytes(stdout)
    [(msgs,)] = q(mirror, "SELECT object_id FROM assets WHERE file_name = 'log/msg.jsonl'")
    assert mirror.objects.get_bytes(msgs).count(b"\n") == 600

    _as_at(log, end)                 # a clear: the fold goes on, but the index of that series is made again
    read.update(bytes=0, segments=[])
    fetch_cleanly(mirror, folder)
    assert read["bytes"] == len(end) - len(two)
    assert read["segments"][0] == 0 and len(read["segments"]) == 2      # every segment, from the first
    assert q(mirror, "SELECT count(*), max(value) FROM metrics WHERE name = 'train/acc'") == [(1, 5.0)]
    assert only_manifest(mirror) == only_manifest(fresh := fresh_fetch(tmp_path, folder, "fresh2"))
    indexed = index_rows(mirror)
    indexer.rebuild(mirror)                               # a reindex folds every stored line again
    assert index_rows(mirror) == indexed == index_rows(fresh)


def test_a_torn_tail_and_a_second_log_go_on_from_the_saved_fold(tmp_path, written, read):
    """The writer mid-line at the last fetch: that line was not stored, and the next fetch folds it whole.
    A log the client rolled over to: the full one is kept as it was, the new one read from the start."""
    folder, log, (one, two, end) = written
    cut = len(one) + 57                                    # inside a line
    assert two[cut - 1:cut] != b"\n"
    mirror = Mirror.init(tmp_path / "m")
    _as_at(log, two[:cut])
    fetch_cleanly(mirror, folder)
    _as_at(log, two)
    read.update(bytes=0)
    fetch_cleanly(mirror, folder)
    assert read["bytes"] == len(two) - len(one)
    assert only_manifest(mirror) == only_manifest(fresh := fresh_fetch(tmp_path, folder, "fresh"))
    assert index_rows(mirror) == index_rows(fresh)

    second = log.with_name("data-2.log")
    try:
        second.write_bytes(end[len(two):][:200].rsplit(b"\n", 1)[0] + b"\n")
        fetch_cleanly(mirror, folder)
        second.write_bytes(end[len(two):])
        read.update(bytes=0, segments=[])
        fetch_cleanly(mirror, folder)
        assert 0 < read["bytes"] < len(end) - len(two)     # the new lines of data-2.log alone
        assert only_manifest(mirror) == only_manifest(fresh := fresh_fetch(tmp_path, folder, "fresh2"))
        assert index_rows(mirror) == index_rows(fresh)
    finally:
        second.unlink()


@pytest.mark.parametrize("change", ["rewritten", "unfinished last line", "lost text"])
def test_a_log_that_did_not_only_grow_is_read_whole(tmp_path, written, read, change):
    """An early byte changed (the same size), the last line stored without its newline (it may go on),
    or the saved text the fold would go on from lost from the store: read whole, as a fresh fetch."""
    folder, log, (one, two, _) = written
    mirror = Mirror.init(tmp_path / "m")
    _as_at(log, one[:-1] if change == "unfinished last line" else one)
    fetch_cleanly(mirror, folder)
    if change == "lost text":
        [(stdout,)] = q(mirror, "SELECT object_id FROM texts WHERE kind = 'output'")
        mirror.objects.remove(stdout)
    grown = two
    if change == "rewritten":
        at = two.index(b'"value": 0.5')
        grown = two[:at] + b'"value": 0.6' + two[at + len(b'"value": 0.6'):]
    _as_at(log, grown)
    read.update(bytes=0)
    fetch_cleanly(mirror, folder)
    assert read["bytes"] == len(grown)                     # every line folded again
    assert only_manifest(mirror) == only_manifest(fresh := fresh_fetch(tmp_path, folder, "fresh"))
    assert index_rows(mirror) == index_rows(fresh)


def test_a_log_cut_short_does_not_replace_the_run_stored(tmp_path, written):
    """The op log shorter than the last fetch stored it (truncated, or the client's async queue cleaned
    up): the stored run is kept and the fetch says so; `--allow-shrink` takes the shorter one."""
    folder, log, (one, two, _) = written
    mirror = Mirror.init(tmp_path / "m")
    _as_at(log, two)
    fetch_cleanly(mirror, folder)
    stored, indexed = only_manifest(mirror), index_rows(mirror)
    assert stored["extent"]["lines"] == two.count(b"\n")
    _as_at(log, one)
    kept = run_fetch(mirror, "neptune", str(folder), FetchOptions())
    assert kept.failed == 1 and "kept the stored version" in kept.errors[0] and "lines" in kept.errors[0]
    assert (only_manifest(mirror), index_rows(mirror)) == (stored, indexed)
    assert not run_fetch(mirror, "neptune", str(folder), FetchOptions(allow_shrink=True)).errors
    assert index_rows(mirror) == index_rows(fresh_fetch(tmp_path, folder, "fresh"))

"""A neptune 1.x run still syncing (async mode): the client's disk queue deletes each op log once the server
has acknowledged an operation of the next one. The logs the mirror stored are kept when the client deletes
them and no operation went unseen (sources/neptune/acked_logs.py): the run fetched as it syncs is the run a
fresh fetch of all its logs gives, manifest and index. A log deleted before the mirror read all of it keeps
the stored run, as before.

The queue is the client's own: neptune's DiskQueue and Operation classes, as its async processor makes
them (with a small max_file_size, so that a short run spans several logs), acknowledged by DiskQueue.ack as
the processor does once its server answers; only the server is left out."""
from __future__ import annotations

import shutil
import threading

import pytest
from neptune_fixtures import fetch_cleanly, fresh_fetch, index_rows, only_manifest, q

from cometx_mirror.sources.neptune import float_lines
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch

RUN = "run__3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f__4242__k3j5h2g1"


class _SyncingRun:
    """A run's async queue in `root`/.neptune/async, written and acknowledged by the client's classes."""

    def __init__(self, root):
        from neptune.core.components.metadata_file import MetadataFile
        from neptune.core.components.operation_storage import OperationStorage
        from neptune.core.components.queue.disk_queue import DiskQueue
        from neptune.internal.container_type import ContainerType
        from neptune.internal.operation import Operation
        from neptune.internal.operation_processors.utils import common_metadata
        self.root, self.path = root, root / ".neptune" / "async" / RUN
        self.path.mkdir(parents=True)
        MetadataFile(self.path, common_metadata("async", RUN.split("__")[1], ContainerType.RUN)).flush()
        self.queue = DiskQueue(self.path, lambda op: op.to_dict(), Operation.from_dict, threading.RLock(),
                               max_file_size=8192)
        self.storage, self.upload = OperationStorage(self.path), None

    def log(self, start: int, stop: int) -> None:
        from neptune.internal.operation import AssignFloat, LogFloats, LogStrings, UploadFile
        from neptune.types import File
        if start == 0:
            self.queue.put(AssignFloat(["parameters", "lr"], 0.01))
            # an in-memory file: the client writes it under upload_path/, and deletes it once uploaded
            self.upload = UploadFile.of_file(File.from_content("notes\n"), ["files", "notes"], self.storage)
            self.queue.put(self.upload)
        for i in range(start, stop):
            self.queue.put(LogFloats(["train", "loss"], [LogFloats.ValueType(1.0 / (i + 1), i, 1.7e9 + i)]))
            self.queue.put(LogFloats(["train", "acc"], [LogFloats.ValueType(0.001 * i, None, 1.7e9 + i)]))
            if i % 5 == 4:
                self.queue.put(LogStrings(["monitoring", "0a1b2c3d", "stdout"],
                                          [LogStrings.ValueType(f"step {i}\n", None, 1.7e9 + i)]))
        self.queue.flush()

    def logs(self) -> list[str]:
        return sorted((p.name for p in self.path.glob("data-*.log")), key=lambda n: int(n[5:-4]))

    def ack_through(self, log_name: str) -> None:
        """Acknowledge every operation before `log_name`'s first: the queue deletes the logs before it, and
        the upload (sent by then) is cleaned as the client's backend cleans it once sent."""
        first = int(log_name[5:-4])                 # a log is named by its first operation's version
        self.queue.ack(first)
        assert self.logs()[0] == log_name
        if self.upload is not None:
            self.upload.clean(self.storage)
            self.upload = None

    def copy(self, to):
        """The whole queue as it stands, in a folder of its own (file times kept)."""
        shutil.copytree(self.root / ".neptune", to / ".neptune")
        return to


@pytest.fixture
def syncing(tmp_path):
    run = _SyncingRun(tmp_path / "live")
    yield run
    run.queue.close()


@pytest.fixture
def read(monkeypatch):
    """The bytes the store's fold scanned."""
    counts = {"bytes": 0}
    scan_whole = float_lines.scan_whole

    def scanned(segment):
        counts["bytes"] += len(segment)
        return scan_whole(segment)
    monkeypatch.setattr(float_lines, "scan_whole", scanned)
    return counts


@pytest.mark.parametrize("way", ["resumed", "folded again from the store"])
def test_logs_the_client_deleted_are_kept_as_stored(tmp_path, syncing, read, way):
    syncing.log(0, 200)
    first_logs = syncing.logs()
    assert len(first_logs) >= 4
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, syncing.root)
    grown = syncing.path / first_logs[-1]            # the log being written when the mirror read it
    read_then = grown.stat().st_size

    syncing.log(200, 300)
    whole = syncing.copy(tmp_path / "whole")
    syncing.ack_through(first_logs[-1])         # every log complete when the mirror read it: deleted
    if way != "resumed":                        # the saved fold lost: the kept logs fold from their segments
        mirror.objects.remove(only_manifest(mirror)["resume"])
    grown = syncing.path / first_logs[-1]
    read.update(bytes=0)
    assert fetch_cleanly(mirror, syncing.root).changed == 1
    new_bytes = sum((syncing.path / n).stat().st_size for n in syncing.logs() if n not in first_logs)
    if way == "resumed":                        # the lines written since alone
        assert read["bytes"] == grown.stat().st_size - read_then + new_bytes
    else:
        assert read["bytes"] == sum(f.stat().st_size for f in whole.glob(".neptune/async/*/data-*.log"))
    fresh = fresh_fetch(tmp_path, whole, "fresh")
    assert only_manifest(mirror) == only_manifest(fresh)       # as if nothing had been deleted
    assert index_rows(mirror) == index_rows(fresh)
    assert q(mirror, "SELECT count(*), min(step), max(step) FROM metrics WHERE name = 'train/acc'") == [(300, 0, 299)]
    assert not list(syncing.path.glob("upload_path/*"))                  # the upload is kept as stored
    [(notes,)] = q(mirror, "SELECT object_id FROM assets WHERE file_name = 'files/notes.txt'")
    assert mirror.objects.get_bytes(notes) == b"notes\n"

    syncing.ack_through(syncing.logs()[-1])     # all but the log being written: nothing new to read
    read.update(bytes=0)
    assert fetch_cleanly(mirror, syncing.root).unchanged == 1
    assert read["bytes"] == 0

    syncing.log(300, 350)
    grown_more = fresh_fetch(tmp_path, syncing.copy(tmp_path / "whole2"), "partial")
    fetch_cleanly(mirror, syncing.root)
    assert q(mirror, "SELECT count(*), max(step) FROM metrics WHERE name = 'train/acc'") == [(350, 349)]
    [(partial,)] = q(grown_more, "SELECT count(*) FROM metrics WHERE name = 'train/acc'")
    assert partial < 350                        # what the folder alone holds now
    indexed = index_rows(mirror)
    indexer.rebuild(mirror)
    assert index_rows(mirror) == indexed


def test_a_log_deleted_before_it_was_read_whole_keeps_the_stored_run(tmp_path, syncing):
    syncing.log(0, 200)
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, syncing.root)
    stored, indexed = only_manifest(mirror), index_rows(mirror)
    last = syncing.logs()[-1]

    syncing.log(200, 300)                       # the last log grows and is followed by others
    syncing.ack_through(syncing.logs()[-1])     # then deleted: its lines after the fetch are lost to it
    assert last not in syncing.logs()
    kept = run_fetch(mirror, "neptune", str(syncing.root), FetchOptions())
    assert kept.failed == 1 and "kept the stored version" in kept.errors[0]
    assert (only_manifest(mirror), index_rows(mirror)) == (stored, indexed)


def test_a_log_missing_between_two_is_not_the_clients_doing(tmp_path, syncing):
    syncing.log(0, 200)
    mirror = Mirror.init(tmp_path / "m")
    fetch_cleanly(mirror, syncing.root)
    stored = only_manifest(mirror)
    first, _, third, *_ = syncing.logs()
    for name in (first, third):                 # the client deletes from the front, never between two left
        (syncing.path / name).unlink()
    kept = run_fetch(mirror, "neptune", str(syncing.root), FetchOptions())
    assert kept.failed == 1 and "kept the stored version" in kept.errors[0]
    assert only_manifest(mirror) == stored

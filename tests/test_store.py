"""The object store, refs, lock, verify and gc: dedup, crash safety, damage detection."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core_fixtures import KEY1, add_experiment, age, commit, fill, filled, mirror  # noqa: F401
from cometx_mirror.store.lock import LockedError
from cometx_mirror.store.mirror import Mirror, MirrorError
from cometx_mirror.store.objects import CODEC_RAW, CODEC_ZSTD, HEADER, ObjectError, hash_bytes
from cometx_mirror.store.refs import RefError
from cometx_mirror.sync import gc as gc_lib
from cometx_mirror.sync import verify as verify_lib


def object_files(m: Mirror) -> list[Path]:
    return [p for p in (m.root / "objects").rglob("*") if p.is_file()]


def codec_of(m: Mirror, oid: str) -> int:
    with open(m.objects.path(oid), "rb") as f:
        return HEADER.unpack(f.read(HEADER.size))[1]


def flip_bit(path: Path, at: int | None = None, bit: int = 0x40) -> None:
    """Damage a stored object in place: one bit of byte `at` (the middle by default) flipped."""
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 if at is None else at] ^= bit
    path.write_bytes(bytes(raw))


# -- objects -------------------------------------------------------------------

def test_same_bytes_are_stored_once(mirror):
    data = b"metric line\n" * 10_000
    a = mirror.objects.put_bytes(data)
    b, size = mirror.objects.put_stream(iter([data[:5000], data[5000:]]))
    c, _ = mirror.objects.put_stream(__import__("io").BytesIO(data))
    assert a == b == c == hash_bytes(data) and size == len(data)
    assert len(object_files(mirror)) == 1
    assert mirror.objects.get_bytes(a) == data


def test_text_is_compressed_random_bytes_are_stored_raw(mirror):
    text = mirror.objects.put_bytes(b'{"step": 1, "value": 0.5}\n' * 5000)
    noise = mirror.objects.put_bytes(os.urandom(200_000))
    assert codec_of(mirror, text) == CODEC_ZSTD
    assert mirror.objects.stored_size(text) < 5000 * 27 / 5
    assert codec_of(mirror, noise) == CODEC_RAW


def test_a_large_object_compressed_on_a_second_thread_reads_back_whole(mirror, tmp_path):
    """From PARALLEL_FROM on zstd compresses on a thread of its own: another body, the same id and bytes,
    and damage in it is caught as in any other."""
    from cometx_mirror.store.objects import PARALLEL_FROM
    lines = b"".join(b'{"step": %d, "value": %r}\n' % (i, 1 / (i + 1)) for i in range(PARALLEL_FROM // 20))
    assert len(lines) > PARALLEL_FROM
    (tmp_path / "big.jsonl").write_bytes(lines)
    oid, size = mirror.objects.put_file(tmp_path / "big.jsonl")
    assert (oid, size) == (hash_bytes(lines), len(lines)) and codec_of(mirror, oid) == CODEC_ZSTD
    assert mirror.objects.get_bytes(oid) == lines
    path = mirror.objects.path(oid)
    same = Mirror.init(tmp_path / "alone")
    assert same.objects.put_stream(iter([lines]))[0] == oid       # no size told: one thread, the same id
    assert same.objects.path(oid).read_bytes() != path.read_bytes()   # the bodies differ
    flip_bit(path)
    with pytest.raises(ObjectError, match="corrupt"):
        mirror.objects.check(oid)


def test_empty_object_round_trips(mirror):
    oid = mirror.objects.put_bytes(b"")
    assert mirror.objects.get_bytes(oid) == b""


def test_short_stream_with_expected_size_publishes_nothing(mirror):
    with pytest.raises(ObjectError, match="expected 100 bytes"):
        mirror.objects.put_stream(iter([b"x" * 50]), expected_size=100)
    assert object_files(mirror) == []
    assert list((mirror.root / "tmp").iterdir()) == []


def test_reads_verify_the_hash(mirror):
    oid = mirror.objects.put_bytes(os.urandom(5000))
    flip_bit(mirror.objects.path(oid), HEADER.size + 100, 0x01)
    with pytest.raises(ObjectError, match=f"{oid} is corrupt"):
        mirror.objects.get_bytes(oid)


def test_flipped_byte_in_zstd_object_is_caught(mirror):
    oid = mirror.objects.put_bytes(b"abcdefgh" * 20_000)
    assert codec_of(mirror, oid) == CODEC_ZSTD
    flip_bit(mirror.objects.path(oid))
    with pytest.raises(ObjectError, match="corrupt"):
        mirror.objects.check(oid)


def test_putting_again_heals_a_truncated_object_and_freshens_a_whole_one(mirror):
    data = os.urandom(10_000)
    oid = mirror.objects.put_bytes(data)
    path = mirror.objects.path(oid)
    age(path)
    old = path.stat().st_mtime
    mirror.objects.put_bytes(data)
    assert path.stat().st_mtime > old + 3600          # freshened for gc's grace period
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:500])
    assert not mirror.objects.body_length_ok(oid)
    mirror.objects.put_bytes(data)                    # a later fetch heals the store
    assert mirror.objects.get_bytes(oid) == data


def test_malformed_ids_never_touch_the_filesystem(mirror):
    with pytest.raises(ObjectError, match="malformed"):
        mirror.objects.path("../../etc/passwd")


KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    from cometx_mirror.store.mirror import Mirror
    m = Mirror.open(sys.argv[1])
    block = os.urandom(1 << 20)
    def chunks():
        for i in range(10_000):          # up to 10 GB: it never finishes
            if i == 3:
                print("writing", flush=True)
            yield block
    m.objects.put_stream(chunks())
    print("finished", flush=True)
""")


def test_kill_9_during_a_large_put_leaves_no_partial_object(mirror):
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(mirror.root)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        tmp = mirror.root / "tmp"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:      # wait for a few MB in the temp file
            files = list(tmp.iterdir())
            if files and files[0].stat().st_size > (8 << 20):
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert object_files(mirror) == []                   # nothing published
    leftovers = list((mirror.root / "tmp").iterdir())
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > (8 << 20)
    assert verify_lib.verify(mirror, read_data=True).ok
    assert gc_lib.gc(mirror).tmp_removed == []          # young tmp files are kept
    age(leftovers[0])
    assert gc_lib.gc(mirror).tmp_removed == [leftovers[0].name]
    assert list((mirror.root / "tmp").iterdir()) == []


# -- mirror, refs, lock ----------------------------------------------------------

def test_unknown_format_is_refused(tmp_path):
    m = Mirror.init(tmp_path / "m")
    (m.root / "config.json").write_text('{"format": 99, "object_hash": "xxh3-128"}')
    with pytest.raises(MirrorError, match="format 99"):
        Mirror.open(m.root)


def test_missing_mirror_is_one_clear_error(tmp_path):
    with pytest.raises(MirrorError, match="no mirror at"):
        Mirror.open(tmp_path / "nothing")


def test_ref_update_compares_the_old_value(mirror):
    sid = mirror.put_json({"type": "snapshot"})
    mirror.refs.update("coretest/x", sid, None, "one")
    with pytest.raises(RefError, match="moved"):
        mirror.refs.update("coretest/x", sid, None, "stale writer")
    assert [e["message"] for e in mirror.refs.log_entries()] == ["one"]


def test_torn_reflog_line_is_skipped(mirror):
    sid = mirror.put_json({"type": "snapshot"})
    mirror.refs.update("coretest/x", sid, None, "one")
    with open(mirror.refs.reflog, "a") as f:
        f.write('{"time": 1, "ref": "coretest/x", "ne')
    assert len(list(mirror.refs.log_entries())) == 1


def test_second_writer_gets_a_clear_message(mirror):
    with mirror.write_lock("fetch comet"):
        with pytest.raises(LockedError, match=r"busy: fetch comet \(pid \d+\) holds its write lock"):
            with mirror.write_lock("gc"):
                pass
        with pytest.raises(LockedError):
            gc_lib.gc(mirror)
    with mirror.write_lock("gc"):          # released: the next writer gets in
        pass


# -- the damaged-store table (store_design.md §3) ---------------------------------

def _damage_object(m: Mirror, oid: str, how: str) -> None:
    path = m.objects.path(oid)
    os.chmod(path, 0o644)
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:HEADER.size + 10])
    elif how == "zero-length":
        path.write_bytes(b"")
    elif how == "flipped":
        raw = bytearray(path.read_bytes())
        raw[-5] ^= 0xFF
        path.write_bytes(bytes(raw))


def _asset_object(m: Mirror) -> str:
    manifest = m.get_json(m.current_manifests()[f"coretest:experiment/ws/proj/{KEY1}"])
    return next(a["object"] for a in manifest["assets"] if a["file_name"] == "weights.bin")


def _wrong_name(m: Mirror) -> str:
    """Put another object's file (same size) under a referenced object's name."""
    victim = _asset_object(m)
    impostor = m.objects.put_bytes(os.urandom(m.objects.raw_size(victim)))
    target = m.objects.path(victim)
    os.chmod(target, 0o644)
    target.write_bytes(m.objects.path(impostor).read_bytes())
    return victim


def _unparsable_manifest(m: Mirror) -> str:
    bad = m.objects.put_bytes(b"{not json")
    commit(m, "bad", {"experiment/bad": bad}, refresh=False)
    return bad


def _ref_to_missing_manifest(m: Mirror) -> str:
    missing = "ab" * 16
    commit(m, "gone", {"experiment/gone": missing}, refresh=False)
    return missing


def _unreferenced(m: Mirror) -> str:
    oid = m.objects.put_bytes(b"nobody needs me" * 10)
    age(m.objects.path(oid))
    return oid


def _stale_tmp(m: Mirror) -> str:
    p = m.root / "tmp" / "obj-stale"
    p.write_bytes(b"partial")
    age(p)
    return p.name


# (name, damage, verify ok?, verify --read-data ok?, gc runs?, text the report must show)
DAMAGE = [
    ("missing object", lambda m: _damage_object(m, _asset_object(m), "missing") or _asset_object(m),
     False, False, False, "missing object"),
    ("truncated object", lambda m: _damage_object(m, _asset_object(m), "truncated") or _asset_object(m),
     False, False, False, "damaged object"),
    ("zero-length object", lambda m: _damage_object(m, _asset_object(m), "zero-length") or _asset_object(m),
     False, False, False, "damaged object"),
    ("flipped byte", lambda m: _damage_object(m, _asset_object(m), "flipped") or _asset_object(m),
     True, False, False, "damaged object"),     # --read-data quarantines it: then missing, gc refuses
    ("wrong name", _wrong_name, True, False, False, "damaged object"),
    ("unparsable manifest", _unparsable_manifest, False, False, False, "not JSON object"),
    ("ref to missing manifest", _ref_to_missing_manifest, False, False, False, "missing object"),
    ("unreferenced object", _unreferenced, True, True, True, "1 unreferenced objects"),
    ("stale tmp file", _stale_tmp, True, True, True, "1 stale tmp files"),
]


@pytest.mark.parametrize("name,damage,verify_ok,read_data_ok,gc_runs,shows", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_store_table(filled, name, damage, verify_ok, read_data_ok, gc_runs, shows):
    culprit = damage(filled)
    structural = verify_lib.verify(filled)
    full = verify_lib.verify(filled, read_data=True)
    assert structural.ok == verify_ok, structural.errors
    assert full.ok == read_data_ok, full.errors
    all_lines = full.errors + full.warnings + full.info
    assert any(shows in line for line in all_lines), all_lines
    if not read_data_ok:
        assert any(culprit in line for line in full.errors), full.errors
    if name in ("flipped byte", "wrong name"):
        assert culprit in full.damaged
    if gc_runs:
        report = gc_lib.gc(filled, grace=3600)
        if name == "unreferenced object":
            assert report.swept == [culprit] and not filled.objects.exists(culprit)
        if name == "stale tmp file":
            assert report.tmp_removed == [culprit]
        assert verify_lib.verify(filled).ok == verify_ok
    else:
        before = sorted(filled.objects.ids())
        with pytest.raises(gc_lib.GcRefused, match="referenced objects are missing or damaged"):
            gc_lib.gc(filled, grace=0)
        assert sorted(filled.objects.ids()) == before


def test_index_row_for_a_missing_object_is_an_error(filled):
    _damage_object(filled, _asset_object(filled), "missing")
    report = verify_lib.verify(filled)
    assert any("named by an index row" in e for e in report.errors)


def test_self_healing_fetch_restores_a_missing_object(filled):
    oid = _asset_object(filled)
    path = filled.objects.path(oid)
    data = filled.objects.get_bytes(oid)
    _damage_object(filled, oid, "missing")
    assert not verify_lib.verify(filled).ok
    filled.objects.put_bytes(data)             # what the next fetch of that asset does
    assert verify_lib.verify(filled, read_data=True).ok
    assert path.exists()


# -- gc ----------------------------------------------------------------------------

def test_gc_keeps_history_and_young_objects_and_sweeps_the_rest(filled):
    first = filled.current_manifests()
    # A second fetch changes one experiment: its old manifest stays reachable through the reflog.
    new_manifest = add_experiment(filled, "ws", "proj", KEY1, name="first-renamed", n_points=10)
    labels = {k.split(":", 1)[1]: v for k, v in first.items()}
    labels[f"experiment/ws/proj/{KEY1}"] = new_manifest
    commit(filled, "ws", labels)
    old_manifest = first[f"coretest:experiment/ws/proj/{KEY1}"]
    young = filled.objects.put_bytes(b"written by a fetch that has not committed yet")
    old = filled.objects.put_bytes(b"left behind by a crash long ago")
    age(filled.objects.path(old))

    dry = gc_lib.gc(filled, dry_run=True)
    assert dry.swept == [old] and filled.objects.exists(old)
    report = gc_lib.gc(filled)
    assert report.swept == [old] and report.kept_young == 1
    assert not filled.objects.exists(old) and filled.objects.exists(young)
    assert filled.objects.exists(old_manifest)               # reflog keeps history
    for oid in filled.get_json(old_manifest)["texts"].values():
        assert filled.objects.exists(oid["object"])
    assert verify_lib.verify(filled, read_data=True).ok


def test_gc_marks_any_hex_string_in_a_manifest(filled):
    hidden = filled.objects.put_bytes(b"named in a field gc was never taught about")
    age(filled.objects.path(hidden))
    manifest = {"type": "experiment", "deep": [{"x": {"some_new_field": hidden}}]}
    commit(filled, "more", {"experiment/more": filled.put_json(manifest)}, refresh=False)
    gc_lib.gc(filled, grace=0)
    assert filled.objects.exists(hidden)


def test_parse_duration():
    assert gc_lib.parse_duration("24h") == 86400
    assert gc_lib.parse_duration("30m") == 1800
    assert gc_lib.parse_duration("0") == 0
    with pytest.raises(ValueError):
        gc_lib.parse_duration("soon")


def test_a_damaged_old_snapshot_is_history_only(filled):
    from cometx_mirror.sync import indexer
    old = filled.refs.get("coretest/test/ws")
    labels = {k.split(":", 1)[1]: v for k, v in filled.current_manifests().items()}
    labels["experiment/ws/proj/newer"] = add_experiment(filled, "ws", "proj", "newer")
    commit(filled, "ws", labels)
    path = filled.objects.path(old)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:HEADER.size + 5])
    assert [s.id for s in filled.history()] == [filled.refs.get("coretest/test/ws")]
    assert indexer.rebuild(filled) == 6                     # the current state still indexes
    report = verify_lib.verify(filled)
    assert report.ok and any(old in w and "history only" in w for w in report.warnings), report.warnings
    with pytest.raises(gc_lib.GcRefused):                   # it might name objects we cannot see
        gc_lib.gc(filled)


COMMIT_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import core_fixtures
    from cometx_mirror.store.mirror import Mirror
    m = Mirror.open(sys.argv[1])
    with m.write_lock("fetch coretest"):
        core_fixtures.fill(m)
""")


@pytest.mark.parametrize("fault,ref_moved", [("before_ref_update", False), ("after_ref_update", True),
                                              ("after_index_entity:2", True)])
def test_kill_at_commit_points_leaves_a_consistent_store(mirror, fault, ref_moved):
    tests_dir = str(Path(__file__).parent)
    proc = subprocess.run([sys.executable, "-c", COMMIT_SCRIPT, str(mirror.root), tests_dir],
                          env=dict(os.environ, COMETX_MIRROR_FAULT=fault), capture_output=True, timeout=120)
    assert proc.returncode == 137, proc.stderr
    assert (mirror.refs.get("coretest/test/ws") is not None) == ref_moved
    report = verify_lib.verify(mirror, read_data=True)
    assert not any("object" in e for e in report.errors), report.errors   # no missing or damaged objects
    if ref_moved:                          # the index is behind the refs until the next read catches up
        # ... which is a note, not an error: the kill left nothing a read does not heal
        assert report.ok, report.errors
        assert any("index is behind" in w or "no index yet" in w for w in report.warnings), report.warnings
        assert len(__import__("cometx_mirror.sync.browse", fromlist=["ls"]).ls(mirror, "ws/proj").result.rows) == 2
    else:                                  # everything written is unreferenced: gc's to collect
        assert any("unreferenced objects" in line for line in report.info)
    assert verify_lib.verify(mirror).ok
    fill(mirror)                           # the next fetch converges to the same state
    assert verify_lib.verify(mirror, read_data=True).ok

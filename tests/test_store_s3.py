"""The mirror on S3-compatible object storage (moto's server on loopback).

The same store behind two backends: the backend contract on both, every read
and housekeeping command on a bucket equal to a local mirror, concurrent fetches
from several processes into one bucket equal to a serial fetch, a killed fetch
that resumes, and gc kept away from live writers by the remote lock.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cometx_mirror.cli import main
from cometx_mirror.store.backend import open_backend
from cometx_mirror.store.lock import LockedError
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.store.remote_lock import RemoteLock
from core_fixtures import fill

ROWS = {
    "experiments": "SELECT exp_id, name, state FROM experiments {where} ORDER BY exp_id",
    "metrics": "SELECT exp_id, name, step, value, text FROM metrics {where} ORDER BY ALL",
    "params": "SELECT exp_id, name, value FROM params {where} ORDER BY ALL",
    "assets": "SELECT exp_id, file_name, object_id, size FROM assets {where} ORDER BY ALL",
}


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def rows(location: str, projects: list[str] | None = None) -> dict:
    """The rows of each table through one `query` (each command on a bucket costs round
    trips); with `projects` ("WS/PROJ"), only theirs."""
    where = ("WHERE " + " OR ".join(f"exp_id LIKE 'comet:{p}/%'" for p in projects)) if projects else ""
    parts = [f"SELECT '{name}' AS t, (SELECT to_json(coalesce(list(r ORDER BY r), [])) FROM ({sql.format(where=where)}) r) AS j"
             for name, sql in ROWS.items()]
    r = cli("query", " UNION ALL ".join(parts), "--json", "--mirror", location)
    assert r.exit_code == 0, r.output
    # NaN read as text, so equal rows compare equal
    return {row["t"]: json.loads(row["j"], parse_constant=str) for row in json.loads(r.stdout)}


@pytest.fixture(scope="module")
def serial(seeded_server, tmp_path_factory):
    """Two seeded projects fetched one after the other into a local mirror, once for
    the tests that compare a bucket fetched concurrently or after a kill with it."""
    from server_fixtures import comet_environment
    home = tmp_path_factory.mktemp("serial-home")
    ws = seeded_server.seeded["workspace"]
    paths = [f"{ws}/{p}" for p in sorted(seeded_server.seeded["projects"])[:2]]
    mirror = str(home / "serial")
    with comet_environment(seeded_server, home):
        for path in paths:
            r = cli("fetch", path, "--mirror", mirror)
            assert r.exit_code == 0, r.output
    return mirror, paths


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path, moto_s3, monkeypatch):
    if request.param == "local":
        return open_backend(tmp_path / "b")
    for k, v in moto_s3.env.items():
        monkeypatch.setenv(k, v)
    return open_backend(f"s3://{moto_s3.new_bucket()}/p")


def test_backend_contract(backend):
    assert backend.put_bytes("a/one", b"1", if_absent=True)
    assert not backend.put_bytes("a/one", b"2", if_absent=True)       # create-only
    assert backend.read("a/one") == b"1" and backend.read_head("a/one", 13) == (b"1", 1)
    data, v1 = backend.load("refs/x")
    assert data is None and backend.swap("refs/x", b"A\n", None)
    assert not backend.swap("refs/x", b"B\n", None)                   # exists: no blind create
    data, v2 = backend.load("refs/x")
    assert data == b"A\n" and backend.swap("refs/x", b"B\n", v2)
    assert not backend.swap("refs/x", b"C\n", v2)                     # stale version: refused
    assert backend.load("refs/x")[0] == b"B\n"
    backend.append("logs/l", b"one\n")
    backend.append("logs/l", b"two\n")
    assert list(backend.lines("logs/l")) == [b"one\n", b"two\n"]
    assert backend.move("a/one", "q/one") and not backend.move("a/one", "q/two")
    assert [e.key for e in backend.list("q/")] == ["q/one"] and backend.stat("a/one") is None


def test_every_read_command_on_a_bucket_equals_a_local_mirror(s3_url, tmp_path):
    local = str(tmp_path / "local")
    fill(Mirror.init(local))
    fill(Mirror.init(s3_url))
    strip = lambda r: {k: [{c: v for c, v in row.items() if c != "object_id"} for row in rs]  # noqa: E731
                       for k, rs in r.items()}
    assert strip(rows(s3_url)) == strip(rows(local))
    for args in (["ls"], ["ls", "ws/proj"], ["show", "third"], ["cat", "first", "output"]):
        a, b = cli(*args, "--mirror", s3_url), cli(*args, "--mirror", local)
        assert a.exit_code == b.exit_code == 0 and a.stdout == b.stdout, (args, a.output, b.output)
    assert cli("log", "--mirror", s3_url).stdout.count("coretest/test/ws") == 1
    r = cli("verify", "--read-data", "--mirror", s3_url)
    assert r.exit_code == 0 and "no errors" in r.stdout, r.output
    r = cli("export", "ws", str(tmp_path / "out"), "--mirror", s3_url)
    assert r.exit_code == 0 and (tmp_path / "out").is_dir(), r.output
    assert cli("reindex", "--mirror", s3_url).exit_code == 0
    # served from the bucket, the latest and a named snapshot alike (a snapshot is indexed apart)
    snap = list(Mirror.open(s3_url).refs.log_entries())[-1]["new"]
    for kw in ({}, {"snapshot": snap[:12]}):
        assert _served_projects(s3_url, **kw) == ["other", "proj"], kw
    # an unreferenced object is swept from the bucket; everything referenced stays
    Mirror.open(s3_url).objects.put_bytes(b"nobody names me")
    r = cli("gc", "--grace", "0", "--mirror", s3_url)
    assert r.exit_code == 0 and "removed 1 unreferenced" in r.stdout, r.output
    assert cli("verify", "--read-data", "--mirror", s3_url).exit_code == 0


def _served_projects(location: str, **kw) -> list[str]:
    import requests
    from cometx_mirror.server.mirror_serve import serve_mirror
    handle = serve_mirror(location, **kw)
    try:
        r = requests.get(handle.url + "/api/rest/v2/projects", params={"workspaceName": "ws"},
                         headers={"Authorization": "k"}, timeout=30)
        return sorted(p["projectName"] for p in r.json()["projects"])
    finally:
        handle.stop()


def test_a_damaged_object_in_the_bucket_is_quarantined_and_reported(s3_url, s3_env):
    m = Mirror.init(s3_url)
    fill(m)
    oid = m.objects.put_bytes(b"x" * 5000)
    bucket = s3_url.split("/")[2]
    s3_env.client().put_object(Bucket=bucket, Key=f"mirror/{m.objects.key(oid)}",
                               Body=m.backend.read(m.objects.key(oid))[:-3] + b"zzz")
    with pytest.raises(Exception, match="corrupt"):
        Mirror.open(s3_url).objects.get_bytes(oid)
    fresh = Mirror.open(s3_url)
    assert [e.name for e in fresh.objects.quarantined()] == [oid] and not fresh.objects.exists(oid)


def test_gc_never_runs_beside_a_live_writer(s3_url):
    m = Mirror.init(s3_url)
    with RemoteLock(m.backend, "fetch comet", exclusive=False):
        with RemoteLock(m.backend, "fetch wandb", exclusive=False):     # writers share
            with pytest.raises(LockedError, match="fetch"):
                with m.write_lock("gc", exclusive=True):
                    pass
    with RemoteLock(m.backend, "gc", exclusive=True):
        with pytest.raises(LockedError, match="gc"):
            with RemoteLock(m.backend, "fetch comet", exclusive=False):
                pass
    with m.write_lock("gc", exclusive=True):      # all released: gc may run
        pass
    assert not list(m.backend.list("locks/"))


def _fetch(path: str, mirror: str, cache: str, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from cometx_mirror.cli import main; main()", "fetch", path, "--mirror", mirror],
                            env=dict(os.environ, COMETX_MIRROR_CACHE=cache, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_fetches_into_one_bucket_equal_a_serial_fetch(seeded_env, s3_env, tmp_path, serial):
    serial_mirror, paths = serial
    url = f"s3://{s3_env.new_bucket()}/shared"
    r = cli("init", "--mirror", url)
    assert r.exit_code == 0 and r.stdout.strip() == f"mirror ready at {url}", r.output
    # two projects and one of them twice, at once: two processes with a cache each (two
    # machines), and a third sharing the first one's cache folder (a second writer on it)
    caches = [str(tmp_path / "cache0"), str(tmp_path / "cache1"), str(tmp_path / "cache0")]
    procs = [_fetch(path, url, cache) for path, cache in zip(paths + paths[:1], caches)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    assert rows(url) == rows(serial_mirror)
    m = Mirror.open(url)
    refs = dict(m.refs.items())
    # every snapshot any writer made is reachable (reflog), and each ref's chain is whole
    logged = {e["new"] for e in m.refs.log_entries()}
    assert set(refs.values()) <= logged and len(logged) >= len(refs)
    r = cli("verify", "--read-data", "--mirror", url)
    assert r.exit_code == 0 and "no errors" in r.stdout, r.output


def test_a_killed_fetch_on_object_storage_resumes(seeded_env, s3_env, tmp_path, serial):
    serial_mirror, paths = serial
    url = f"s3://{s3_env.new_bucket()}/m"
    cache = str(tmp_path / "cache")      # s3_env's: the fetch resumed in this process uses it too
    killed = _fetch(paths[0], url, cache, COMETX_MIRROR_FAULT="before_ref_update")
    killed.communicate(timeout=240)
    assert killed.returncode == 137
    assert not list(Mirror.open(url).refs.names())       # died before its ref moved
    r = cli("fetch", paths[0], "--mirror", url)
    assert r.exit_code == 0, r.output
    assert rows(url) == rows(serial_mirror, paths[:1])
    assert cli("verify", "--read-data", "--mirror", url).exit_code == 0


def test_a_second_writer_on_one_cache_folder_takes_its_own(s3_url):
    m = Mirror.init(s3_url)
    fill(m)
    with m.write_lock("fetch comet"):          # a writer on this machine holds the cache
        r = cli("reindex", "--mirror", s3_url)
        assert r.exit_code == 0 and "reindexed 5 entities" in r.stdout, r.output
        assert "holds this machine's cache of the mirror" in r.stderr and ".w1)" in r.stderr, r.output
        assert rows(s3_url)["experiments"]       # a reader meanwhile reads the shared cache as it is
    spare = m.root.parent / f"{m.root.name}.w1" / "index.duckdb"
    assert spare.exists() and not (m.root.parent / f"{m.root.name}.w2").exists()


def test_push_and_diff_from_a_bucket(comet_server, s3_env):
    url = f"s3://{s3_env.new_bucket()}/m"
    m = Mirror.init(url)
    labels = fill(m)
    first = m.refs.get("coretest/test/ws")
    r = cli("push", "ws", "dest", "--mirror", url)
    assert r.exit_code == 0 and "3 new" in r.stdout, r.output
    r = cli("push", "ws", "dest", "--mirror", url)
    assert r.exit_code == 0 and "0 new" in r.stdout and "0 writes" in r.stdout, r.output
    from core_fixtures import commit
    commit(m, "ws", {k: v for k, v in labels.items() if "runthree" not in k})
    r = cli("diff", first, m.refs.get("coretest/test/ws"), "--mirror", url)
    assert r.exit_code == 0 and "runthree" in r.stdout, r.output

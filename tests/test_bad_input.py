"""Bad input and damaged mirrors: each is one line on stderr and a non-zero exit, never a
traceback, and nothing stored is lost (issue 10, section 4)."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from core_fixtures import KEY1, filled, mirror  # noqa: F401
from cometx_mirror.cli import main
from cometx_mirror.store.mirror import Mirror


def run(m, *args, ok=True, env=None):
    result = CliRunner().invoke(main, [*args, "--mirror", str(m.root if isinstance(m, Mirror) else m)], env=env)
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def assert_one_line_error(result, text: str):
    assert result.exit_code != 0, result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert text in lines[0], lines[0]


# -- paths -----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["ws//proj", "ws/./proj", "ws/..", "../x", "ws/proj/."])
def test_empty_dot_and_dotdot_parts_are_refused_by_every_command(filled, tmp_path, path):
    for args in (["ls", path], ["export", path, str(tmp_path / "out")], ["show", path],
                 ["fetch", path, "--api-key", "k", "--url-override", "http://127.0.0.1:9"]):
        assert_one_line_error(run(filled, *args, ok=False), f"bad {'experiment' if args[0] == 'show' else 'path'}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("src,dst,what", [("ws", "../x", "destination"), ("ws/proj", "a//b", "destination"),
                                          ("ws/../ws", "x", "source path")])
def test_push_refuses_dotdot_and_empty_parts_before_any_request(filled, src, dst, what):
    r = run(filled, "push", src, dst, "--to-api-key", "k", "--to-url-override", "http://127.0.0.1:9", ok=False)
    assert_one_line_error(r, f"bad {what}")


def test_a_trailing_slash_is_forgiven(filled):
    assert run(filled, "ls", "ws/").stdout == run(filled, "ls", "ws").stdout


# -- the reflog and the index ----------------------------------------------------

def test_invalid_utf8_in_the_reflog_is_skipped_not_a_traceback(filled):
    good = run(filled, "log", "--json").stdout
    sid = json.loads(good)[0]["snapshot"]
    with open(filled.refs.reflog, "ab") as f:
        f.write(b'{"message": "caf\xe9", "new": "' + sid.encode() + b'", "old": null, '
                b'"ref": "coretest/test/ws", "time": 5.0}\n')   # a damaged message, good ids
        f.write(b"\xff\xfe\x00 not json at all\n")
        f.write(b'{"new": 7, "time": "soon"}\n')                    # JSON, but not an entry
    entries = json.loads(run(filled, "log", "--json").stdout)
    assert [e["snapshot"] for e in entries] == [sid, sid]
    assert "caf\ufffd" == entries[0]["message"]
    assert run(filled, "log").stdout.count(sid) == 2
    r = run(filled, "verify", ok=False)
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    assert filled.refs.bad_log_lines() == [2, 3, 4]


def test_an_index_cut_to_half_is_moved_aside_and_rebuilt_by_the_next_read(filled):
    want = run(filled, "show", f"ws/proj/{KEY1}", "--json").stdout
    size = filled.index_path.stat().st_size
    os.truncate(filled.index_path, size // 2)
    r = run(filled, "show", f"ws/proj/{KEY1}", "--json")
    assert r.stdout == want
    assert r.stderr.count("note:") == 1 and "damaged" in r.stderr and "rebuilt" in r.stderr, r.stderr
    assert (filled.root / "index.duckdb.damaged").stat().st_size == size // 2
    assert run(filled, "show", f"ws/proj/{KEY1}", "--json").stderr == ""     # healed: no second note
    os.truncate(filled.index_path, filled.index_path.stat().st_size // 2)
    r = run(filled, "verify", ok=False)
    assert "Traceback" not in r.output and not isinstance(r.exception, Exception) or \
        isinstance(r.exception, SystemExit), repr(r.exception)


# -- pipes and ports --------------------------------------------------------------

def test_a_closed_pipe_ends_quietly_like_a_unix_tool(filled):
    code = ("import sys; sys.path.insert(0, %r); import core_fixtures; from cometx_mirror.cli import main; "
            "sys.argv = ['cometx-mirror', 'query', 'SELECT i FROM range(200000) t(i)', '--csv', '--mirror', %r]; "
            "main()") % (str(Path(__file__).parent), str(filled.root))
    shell = f"{sys.executable} -c \"{code}\" | head -2; exit ${{PIPESTATUS[0]}}"
    r = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
    assert r.stdout.splitlines() == ["i", "0"]
    assert r.stderr == ""
    assert r.returncode in (0, 141), r.returncode


def test_serve_with_a_bad_or_busy_port_is_one_line():
    r = CliRunner().invoke(main, ["serve", "--port", "99999"])
    assert_one_line_error(r, "--port 99999")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = CliRunner().invoke(main, ["serve", "--port", str(port)])
        assert_one_line_error(r, f"cannot listen on 127.0.0.1:{port}")


# -- servers that are not Comet ------------------------------------------------------

class _Canned:
    """A tiny HTTP server on loopback answering every GET with one canned body, or
    forwarding to a real server except for the paths it overrides; counts requests."""

    def __init__(self, body: bytes = b"", content_type: str = "application/json", upstream: str | None = None,
                 overrides: dict[str, bytes] | None = None):
        self.overrides = dict(overrides or {})
        import http.server
        import threading
        import urllib.request
        canned = self
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                canned.hits += 1
                path = self.path.split("?")[0]
                status, ctype, data = 200, content_type, body
                if upstream and path not in canned.overrides:
                    req = urllib.request.Request(upstream + self.path, headers=dict(self.headers))
                    try:
                        with urllib.request.urlopen(req) as r:
                            status, ctype, data = r.status, r.headers.get("Content-Type", ""), r.read()
                    except urllib.error.HTTPError as e:
                        status, ctype, data = e.code, e.headers.get("Content-Type", ""), e.read()
                elif path in canned.overrides:
                    data = canned.overrides[path]
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _fetch(mirror_root, path, url, *extra):
    return CliRunner().invoke(main, ["fetch", path, "--api-key", "k", "--url-override", url,
                                     "--mirror", str(mirror_root), *extra])


@pytest.mark.parametrize("body", [b"[]", b'"hello"', b"null", b'{"workspaceNames": [{"name": "ws"}]}',
                                  b'{"workspaceNames": "ws"}'])
def test_valid_json_of_the_wrong_shape_is_one_line_not_a_type_error(tmp_path, body):
    with _Canned(body) as server:
        r = _fetch(tmp_path / "m", "ws", server.url)
    assert_one_line_error(r, f"the server at {server.url} answered something that is not Comet's API for workspaces")


def test_an_html_page_with_200_is_not_comet_said_at_once_without_retries(tmp_path):
    import time
    page = b"<!doctype html><html><body>Sign in to the corporate proxy</body></html>"
    with _Canned(page, content_type="text/html; charset=utf-8") as server:
        t0 = time.monotonic()
        r = _fetch(tmp_path / "m", "ws", server.url)
        took = time.monotonic() - t0
    assert_one_line_error(r, f"the server at {server.url} answered something that is not Comet's API")
    assert "text/html" in r.stderr and "unparsable" not in r.stderr
    assert server.hits == 1 and took < 5, (server.hits, took)


def test_a_wrong_shape_on_a_later_fetch_replaces_nothing_stored(seeded_env, tmp_path):
    root = tmp_path / "m"
    project = sorted(seeded_env.seeded["projects"])[0]
    path = f"{seeded_env.seeded['workspace']}/{project}"
    with _Canned(upstream=seeded_env.url) as server:      # one origin for both fetches
        first = CliRunner().invoke(main, ["fetch", path, "--url-override", server.url, "--mirror", str(root)])
        assert first.exit_code == 0, first.output
        before = Mirror.open(root).current_manifests()
        # parameters are re-read on every fetch; now their rows lack the name
        server.overrides["/api/rest/v2/experiment/parameters"] = b'{"values": [{"valueCurrent": "1"}]}'
        r = CliRunner().invoke(main, ["fetch", path, "--url-override", server.url, "--mirror", str(root)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    errors = r.stderr.strip().splitlines()
    assert errors and all(line.startswith("error: ") and "is not Comet's API for experiment/parameters" in line
                          and "has no 'name'" in line for line in errors), errors
    assert Mirror.open(root).current_manifests() == before


def test_a_password_in_the_url_is_never_echoed(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # nothing listens here
    r = _fetch(tmp_path / "m", "ws", f"http://user:s3cret-pw@127.0.0.1:{port}")
    assert_one_line_error(r, "cannot reach the Comet server at")
    assert "s3cret-pw" not in r.output and "user:***@" in r.stderr
    with _Canned(b"[]") as server:
        r = _fetch(tmp_path / "m", "ws", server.url.replace("http://", "http://user:s3cret-pw@"))
    assert_one_line_error(r, "not Comet's API")
    assert "s3cret-pw" not in r.output
    refs_dir = tmp_path / "m" / "refs"
    assert not refs_dir.exists() or "s3cret" not in " ".join(str(p) for p in refs_dir.rglob("*"))


# -- export into a folder that is not empty ------------------------------------------

def test_export_refuses_a_folder_that_is_not_empty_without_force(filled, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert_one_line_error(run(filled, "export", "ws/proj", str(out), ok=False), "is not empty: pass --force")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    run(filled, "export", "ws/proj", str(out), "--force")
    assert (out / "mine.txt").read_text() == "keep me"
    assert (out / "ws" / "proj" / KEY1 / "metadata.json").exists()


def test_export_never_follows_a_link_out_of_the_target_even_with_force(filled, tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("untouched")
    (out / "ws").mkdir(parents=True)
    os.symlink(outside, out / "ws" / "proj")                        # a folder the export writes into
    first = run(filled, "export", "ws/proj", str(tmp_path / "fresh")).stdout
    victim = outside / "victim.json"
    victim.write_text("untouched")
    (tmp_path / "fresh").rename(tmp_path / "unused")
    run(filled, "export", "ws/proj", str(out), "--force")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "victim.json"]
    assert victim.read_text() == "untouched"
    assert not (out / "ws" / "proj").is_symlink() and (out / "ws" / "proj" / KEY1 / "metadata.json").is_file()
    meta = out / "ws" / "proj" / KEY1 / "metadata.json"
    meta.unlink()
    os.symlink(victim, meta)                                       # a file the export writes
    os.symlink(victim, meta.with_name("metadata.json.part"))      # and its temp name
    assert run(filled, "export", "ws/proj", str(out), "--force").stdout == first
    assert victim.read_text() == "untouched"
    assert not meta.is_symlink() and json.loads(meta.read_text())["experimentKey"] == KEY1


def test_export_writes_the_git_patch_as_text_not_the_zip_comet_answers(mirror, tmp_path):
    import io
    import zipfile
    from core_fixtures import add_experiment, commit
    patch = b"diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-lr=1\n+lr=2\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("git_diff.patch", patch)
    manifest = add_experiment(mirror, "ws", "proj", KEY1, name="p", n_points=0, assets={},
                              texts={"git_patch": buf.getvalue(), "code": b"print(1)\n"})
    commit(mirror, "ws", {f"experiment/ws/proj/{KEY1}": manifest})
    run(mirror, "export", "ws/proj", str(tmp_path / "out"))
    written = tmp_path / "out" / "ws" / "proj" / KEY1 / "run" / "git_diff.patch"
    assert written.read_bytes() == patch


# -- permissions and secrets ------------------------------------------------------------

def test_a_new_mirror_and_what_a_fetch_writes_are_the_owners_only(seeded_env, tmp_path):
    saved = os.umask(0o022)            # a usual umask: without the fix, everything is world-readable
    try:
        root = tmp_path / "m"
        project = sorted(seeded_env.seeded["projects"])[0]
        r = CliRunner().invoke(main, ["fetch", f"{seeded_env.seeded['workspace']}/{project}", "--mirror", str(root)])
        assert r.exit_code == 0, r.output
        assert os.umask(0o022) == 0o022        # the lock gave the umask back
    finally:
        os.umask(saved)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    made = list(root.rglob("*"))
    assert any(p.parent.parent.name == "objects" for p in made) and (root / "index.duckdb").exists()
    loose = [(str(p.relative_to(root)), oct(stat.S_IMODE(p.stat().st_mode))) for p in made
             if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert loose == []


def test_push_reads_the_destination_key_from_the_environment(filled):
    # the key never needs the command line; a wrong one is refused by the (unreachable) server's absence,
    # so check what push resolved: the key from COMET_TO_API_KEY, the server from COMET_TO_URL_OVERRIDE
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"COMET_TO_API_KEY": "env-key", "COMET_TO_URL_OVERRIDE": f"http://127.0.0.1:{port}/",
           "COMET_API_KEY": None, "COMET_URL_OVERRIDE": None}
    r = run(filled, "push", "ws/proj", "dest", ok=False, env=env)
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "no Comet API key" not in r.output and f"127.0.0.1:{port}" in r.output, r.output
    assert "COMET_TO_API_KEY" in CliRunner().invoke(main, ["push", "--help"]).stdout


def test_a_password_in_the_destination_url_is_never_echoed(filled):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run(filled, "push", "ws/proj", "dest", ok=False,
            env={"COMET_TO_API_KEY": "k", "COMET_TO_URL_OVERRIDE": f"http://user:s3cret-pw@127.0.0.1:{port}/"})
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "s3cret-pw" not in r.output, r.output

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

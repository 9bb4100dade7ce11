"""`cometx-mirror demo` runs the whole job on two local servers, as the README promises."""
from __future__ import annotations

import os
import re
import subprocess
import sys


def _demo(tmp_path, *args):
    env = dict(os.environ, HOME=str(tmp_path), COMET_ERROR_TRACKING_ENABLE="false")
    return subprocess.run([sys.executable, "-m", "cometx_mirror", "demo", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)


def test_demo_fetches_pushes_twice_and_checks(tmp_path):
    done = _demo(tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    pushes = [line for line in out.splitlines() if " new, " in line and " writes, " in line]
    writes = [int(re.search(r"(\d+) writes", line).group(1)) for line in pushes]
    assert len(writes) == 2 and writes[0] > 0 and writes[1] == 0, pushes
    assert "the destination holds everything checked" in out
    assert "$ cometx-mirror fetch" in out and "$ cometx-mirror check" in out
    assert "COMET WARNING" not in out + done.stderr and "COMET INFO" not in out + done.stderr
    assert (tmp_path / "cometx-mirror-demo" / "config.json").exists()


def test_demo_refuses_an_existing_folder(tmp_path):
    (tmp_path / "cometx-mirror-demo").mkdir()
    (tmp_path / "cometx-mirror-demo" / "keep.txt").write_text("mine")
    done = _demo(tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("error:") and len(done.stderr.splitlines()) == 1
    assert (tmp_path / "cometx-mirror-demo" / "keep.txt").read_text() == "mine"

"""Shared by the bench scripts: disk usage, and rewriting one section of docs/benchmarks.md."""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Figures printed by the scripts in `bench/`, each rewriting its own section below. Timings are from one
run on the machine named in each section; requests are counted by the local server, and are the figure
that carries over to a real server, where each one costs a round trip and counts against rate limits.
"""


def disk_usage(path: str | os.PathLike) -> int:
    """Bytes of all regular files under `path`, as the filesystem holds them."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.stat(p).st_blocks * 512
    return total


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"


def write_section(key: str, title: str, body: str) -> None:
    """Replace the section between this key's markers, or append it."""
    text = DOC.read_text() if DOC.exists() else HEADER
    block = f"<!-- {key}:start -->\n## {title}\n\nMachine: {machine()}.\n\n{body}\n<!-- {key}:end -->"
    pattern = re.compile(rf"<!-- {re.escape(key)}:start -->.*?<!-- {re.escape(key)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)

"""A mirror holding Comet, W&B and Neptune data, served read-only (module use: test_serve_*)."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from cometx_mirror.sync.fetch import FetchOptions, run_fetch
from cometx_mirror.store.mirror import Mirror
from neptune_fixtures import row, run1_rows, sanitize, write_files, write_part

WANDB_DIR = Path(__file__).parent / "data" / "wandb-0.19.11" / "wandb"


def build_mixed_mirror(seeded, folder: Path) -> Path:
    """The Comet mirror of push_fixtures.seeded, plus a W&B offline run and two Neptune runs."""
    path = folder / "mirror"
    shutil.copytree(seeded.mirror, path)
    mirror = Mirror.open(path)
    run_fetch(mirror, "wandb", str(WANDB_DIR), FetchOptions())
    exports = folder / "exports"
    pdir = exports / "data" / sanitize("ws/proj")
    part0, part1 = run1_rows()
    write_part(pdir, "RUN-1", 0, part0)
    write_part(pdir, "RUN-1", 1, part1)
    write_run2(exports, seed=42)
    write_files(exports / "files" / sanitize("ws/proj"))
    run_fetch(mirror, "neptune", str(exports), FetchOptions())
    return path


def write_run2(exports: Path, seed: int) -> None:
    """The second Neptune run of the export, its `params/seed` = seed."""
    write_part(exports / "data" / sanitize("ws/proj"), "RUN-2", 0, [
        row("RUN-2", "sys/id", "string", string_value="RUN-2"),
        row("RUN-2", "sys/name", "string", string_value="second"),
        row("RUN-2", "params/seed", "int", int_value=seed)])


def index(path: Path, sql: str, args=()) -> list[tuple]:
    con = duckdb.connect(str(path / "index.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(args)).fetchall()
    finally:
        con.close()
